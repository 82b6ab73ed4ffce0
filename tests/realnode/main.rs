//! The real-node tier: podtask installed by Helm as a container, against a real kubelet + containerd node pulling
//! from a local registry behind a fault-injecting proxy. No kwok here: every pod status comes from the kubelet.
//!
//! Run: `hack/realnode/test.sh` (starts the node, builds and pushes the operator image, installs the chart,
//! runs this suite, stops everything). Needs root on Linux: see hack/README.md, "The real node".

mod finishing;
mod harness;
mod node_faults;
mod operator;
mod pulls;
mod real_pods;
