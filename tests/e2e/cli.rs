//! `podtask run` refuses to start, quickly and readably, when it cannot work: a wrong kubeconfig, an API server
//! it cannot reach, a cluster without the CRD.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use crate::harness::{kubeconfig, log_dir};

/// Run `podtask run` with this KUBECONFIG; it must exit on its own within 20s.
fn run_with_kubeconfig(kubeconfig: &Path) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_podtask"))
        .args(["run", "--http-addr", "127.0.0.1:0", "--namespaces", "default"])
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start podtask run");
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("podtask run did not give up within 20s: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().expect("output"), start.elapsed())
}

fn kubeconfig_for(server: &str, name: &str) -> std::path::PathBuf {
    let path = log_dir().join(format!("{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  \
         context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: e2e\n"
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

fn assert_fails_with(out: &Output, took: Duration, what: &str, wanted: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{what}: exit {:?} after {took:?}: {stderr}", out.status.code());
    assert_eq!(out.status.code(), Some(2), "{what}: exit status {:?}: {stderr}", out.status);
    for w in wanted {
        assert!(stderr.contains(w), "{what}: stderr lacks {w:?}: {stderr}");
    }
    assert!(took < Duration::from_secs(10), "{what}: took {took:?} to fail");
}

#[test]
fn run_fails_fast_when_the_kubeconfig_does_not_exist() {
    kubeconfig(); // the suite needs a cluster; this case does not, but keep the contract uniform
    let missing = log_dir().join("no-such.kubeconfig");
    let (out, took) = run_with_kubeconfig(&missing);
    assert_fails_with(&out, took, "nonexistent kubeconfig", &["cannot load a Kubernetes configuration", "KUBECONFIG"]);
}

#[test]
fn run_fails_fast_when_the_api_server_is_unreachable() {
    kubeconfig();
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let cfg = kubeconfig_for(&format!("https://127.0.0.1:{port}"), "closed-port");
    let (out, took) = run_with_kubeconfig(&cfg);
    let address = format!("https://127.0.0.1:{port}");
    assert_fails_with(
        &out,
        took,
        "closed port",
        &["cannot reach the Kubernetes API server", &address, "kubectl version"],
    );
    // Default text logs, not on a terminal: plain text, no colour escape codes (they would litter `kubectl logs`).
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("checking the API server"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in a log that is not a terminal: {logs:?}");
}

/// An address that accepts connections and never answers (a black hole, as a service IP without a route can
/// be): podtask gives up within seconds, naming the address, instead of waiting silently for a liveness probe.
#[test]
fn run_fails_fast_when_the_api_server_never_answers() {
    kubeconfig();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = vec![];
        for stream in listener.incoming().flatten() {
            held.push(stream); // accepted, never answered
        }
    });
    let cfg = kubeconfig_for(&format!("https://127.0.0.1:{port}"), "black-hole");
    let (out, took) = run_with_kubeconfig(&cfg);
    let address = format!("https://127.0.0.1:{port}");
    assert_fails_with(&out, took, "black hole", &["cannot reach the Kubernetes API server", &address]);
}

/// The CRD cannot be uninstalled while other tests run, so this case talks to a stand-in API server that answers
/// like a real one without the CRD: `/version` works, and the podtasks path is a plain-text `404 page not found`
/// (what kube-apiserver returns for an API group it does not serve).
#[test]
fn run_fails_fast_when_the_crd_is_missing() {
    kubeconfig();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let (status, kind, body) = if path.starts_with("/version") {
                (
                    "200 OK",
                    "application/json",
                    r#"{"major":"1","minor":"36","gitVersion":"v1.36.4","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":"linux/amd64"}"#,
                )
            } else {
                ("404 Not Found", "text/plain; charset=utf-8", "404 page not found\n")
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let cfg = kubeconfig_for(&format!("http://127.0.0.1:{port}"), "no-crd");
    let (out, took) = run_with_kubeconfig(&cfg);
    assert_fails_with(
        &out,
        took,
        "CRD missing",
        &["the CRD podtasks.podtask.dev is not installed", "podtask crd | kubectl apply --server-side -f -"],
    );
}

/// An identity without podtask's permissions: `podtask run` names every missing verb and resource, and who it is,
/// instead of crash-looping on watch errors.
#[test]
fn run_fails_fast_naming_what_rbac_forbids() {
    kubeconfig();
    let ns = format!("e2e-rbac-{}", std::process::id());
    let k = |args: &[&str]| {
        let (ok, out) = crate::harness::kubectl(args);
        assert!(ok, "kubectl {args:?}: {out}");
        out
    };
    k(&["create", "namespace", &ns]);
    k(&["-n", &ns, "create", "serviceaccount", "nobody"]);
    let token = k(&["-n", &ns, "create", "token", "nobody", "--duration=10m"]);
    let server = k(&["config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]);
    let ca =
        k(&["config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}"]);
    let path = log_dir().join("rbac-nobody.kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    \
         token: {}\n",
        server.trim(),
        ca.trim(),
        token.trim()
    );
    std::fs::write(&path, text).expect("write kubeconfig");

    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_podtask"))
        .args(["run", "--http-addr", "127.0.0.1:0", "--namespaces", &ns])
        .env("KUBECONFIG", &path)
        .output()
        .expect("podtask run");
    let took = start.elapsed();
    let _ = crate::harness::kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    assert_fails_with(
        &out,
        took,
        "no permissions",
        &[
            "RBAC forbids what podtask needs",
            &format!("system:serviceaccount:{ns}:nobody"),
            &format!("create pods (core) in namespace {ns}"),
            &format!("watch podtasks (podtask.dev) in namespace {ns}"),
            &format!("update podtasks/status (podtask.dev) in namespace {ns}"),
            &format!("create events (events.k8s.io) in namespace {ns}"),
        ],
    );
}
