use std::process::ExitCode;

use clap::{Parser, Subcommand};
use podtask::operator::run::{RunArgs, run};

/// podtask: run one pod per PodTask, reliably — an absolute deadline, a startup timeout per attempt, image-pull
/// trouble retried rather than fatal, and nothing left behind.
#[derive(Parser)]
#[command(name = "podtask", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print the PodTask CustomResourceDefinition (what crds/ holds): `podtask crd | kubectl apply --server-side -f -`.
    Crd,
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", podtask::crd::definition_yaml());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("podtask {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("podtask: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("podtask: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
