//! Every example in examples/ is a PodTask the operator can read, with the parts a reader is told about.

use podtask::crd::PodTask;

#[test]
fn every_example_is_a_valid_podtask() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let task: PodTask =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: not a PodTask: {e}", path.display()));
        let spec = task.spec.template.spec.as_ref().unwrap_or_else(|| panic!("{}: no pod spec", path.display()));
        assert!(!spec.containers.is_empty(), "{}", path.display());
        assert!(
            spec.restart_policy.as_deref().is_none_or(|p| p == "Never"),
            "{}: restartPolicy must be Never or absent",
            path.display()
        );
        names.push(task.metadata.name.unwrap());
    }
    names.sort();
    assert_eq!(names, ["bad-image", "flaky", "hello", "nothing-to-do", "nowhere", "rate-limited", "too-slow"]);
}
