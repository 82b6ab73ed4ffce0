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
    /// `podtask crd wait` waits until the API server serves it.
    Crd {
        #[command(subcommand)]
        action: Option<CrdAction>,
    },
    /// Print the RBAC rules podtask needs (what the Helm chart grants), as a YAML list of PolicyRules.
    Rbac {
        /// The leader-election rules (for the operator's own namespace) instead of the work rules.
        #[arg(long)]
        lease: bool,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum CrdAction {
    /// Wait until the CRD is installed and Established (served by the API server), using the kubeconfig.
    Wait {
        /// Give up after this long.
        #[arg(long, default_value = "60s")]
        timeout: podtask::duration::Duration,
    },
}

/// jemalloc: at 10,000 tasks the operator peaked at 81 MiB resident with it and 94 MiB with glibc's allocator, in
/// the same session (docs/performance.md); it returns freed memory to the system where glibc keeps it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read once when it starts (`_RJEM_MALLOC_CONF` in the environment still overrides them):
/// one arena for the whole process (the operator's few threads gain nothing from one per CPU, and each arena keeps
/// its own free pages), and freed pages returned to the system after 1 s rather than 10 s. At 10,000 tasks, with
/// the release profile's size optimisation, 63 MiB peak resident against 67.6 MiB (docs/performance.md).
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: JemallocConf = JemallocConf(c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string pointer, as jemalloc reads its `malloc_conf` symbol.
#[repr(transparent)]
struct JemallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a string literal, never written; jemalloc only reads it.
unsafe impl Sync for JemallocConf {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { action: None } => {
            print!("{}", podtask::crd::definition_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { action: Some(CrdAction::Wait { timeout }) } => {
            match runtime()
                .and_then(|r| r.block_on(podtask::operator::preflight::wait_crd_established(timeout.as_std())))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("podtask: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Rbac { lease } => {
            print!("{}", podtask::rbac::yaml(if lease { podtask::rbac::LEASE } else { podtask::rbac::WORK }));
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("podtask {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let runtime = match runtime() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("podtask: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(run(*args));
            // Not the runtime's drop, which waits for every worker to finish what it is doing however long that
            // takes: `run` has given in-flight work its grace already.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("podtask: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
