fn main() {
    print!("{}", podtask::crd::definition_yaml());
}
