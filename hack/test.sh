#!/usr/bin/env bash
# The project's test command (README "Test it"; .ci/run calls it):
#   1. lint: cargo fmt --check, cargo clippy -D warnings (skip with PODTASK_SKIP_LINT=1)
#   2. unit tests: the pure core's tables, the shell against a scripted mock API, CRD drift
#   3. chart, monitoring and GitOps checks: helm lint/template, RBAC/security assertions, the dashboard and alerts
#      (promtool rule tests; every query's metrics scraped from a running operator), the Argo CD Lua health check
#   4. end to end: a real local control plane (built from the Go module proxy on first use and cached under
#      ~/.cache/podtask), the real podtask binary, every behaviour of the contract
#   5. Airflow provider (hack/airflow-e2e.sh): ruff, pytest, then real Airflow in a venv cached under
#      ~/.cache/podtask/airflow running DAGs of PodTaskOperator against this cluster (PODTASK_SKIP_AIRFLOW=1 skips it)
#   6. real node (hack/realnode/test.sh): its own control plane plus a real kubelet and containerd, the operator
#      image built here and installed by Helm; skipped when not root (PODTASK_SKIP_REALNODE=1 skips it too)
#   7. fault suite, short version (hack/faults.sh): a mixed load on a second control plane whose components it
#      kills, with an invariant checker (PODTASK_SKIP_FAULTS=1 skips it)
# The cluster is stopped afterwards unless PODTASK_KEEP_CLUSTER=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }
started=$SECONDS

if [[ ${PODTASK_SKIP_LINT:-0} != 1 ]]; then
	step "lint"
	cargo fmt --check
	cargo clippy --all-targets --features e2e,realnode,faults -- -D warnings
fi

step "unit tests"
cargo test

step "control plane"
hack/cluster.sh build
# keep a running cluster only when asked to (a developer's loop); otherwise start from empty etcd data, whatever an
# interrupted run left behind
[[ ${PODTASK_KEEP_CLUSTER:-0} == 1 ]] || hack/cluster.sh down >/dev/null 2>&1 || true
hack/cluster.sh up
# shellcheck source=/dev/null
source hack/test-env.sh
trap '[[ ${PODTASK_KEEP_CLUSTER:-0} == 1 ]] || hack/cluster.sh down >/dev/null 2>&1 || true' EXIT

step "chart, monitoring and GitOps checks"
HELM=$(command -v helm) deploy/test/chart-test.sh
HELM=$(command -v helm) PODTASK_BIN=target/debug/podtask deploy/test/monitoring-test.sh
deploy/test/argocd-health-test.sh
# the real binary with the chart's arguments, as the chart's ServiceAccount (RBAC is sufficient, no Secrets)
PODTASK_BIN=target/debug/podtask deploy/test/operator-rbac-e2e.sh

step "end-to-end suite"
cargo test --features e2e --test e2e -- --nocapture 2>&1 | tee target/e2e.log | grep -E "^test |MEASURE|test result|panicked|FAILED" || true
# the failures' own messages (the filter above keeps only their first line)
grep -q "^test result: ok" target/e2e.log || { sed -n '/^failures:$/,/^test result/p' target/e2e.log | tail -n 120; exit 1; }

step "Airflow provider: lint, unit tests, airflow dags test against this cluster (skip: PODTASK_SKIP_AIRFLOW=1)"
if [[ ${PODTASK_SKIP_AIRFLOW:-0} == 1 ]]; then echo "skipped (PODTASK_SKIP_AIRFLOW=1)"; else hack/airflow-e2e.sh; fi

step "real-node tier: kubelet + containerd + registry faults, operator installed by Helm"
if [[ ${PODTASK_SKIP_REALNODE:-0} == 1 ]]; then echo "skipped (PODTASK_SKIP_REALNODE=1)"; else hack/realnode/test.sh; fi

step "fault suite (short): operator kills, API server and etcd restarts, watch expiry, throttling, failover"
if [[ ${PODTASK_SKIP_FAULTS:-0} == 1 ]]; then echo "skipped (PODTASK_SKIP_FAULTS=1)"; else
	# its own cluster (other state dir and ports): it kills and restarts control-plane components
	env -u KUBECONFIG hack/faults.sh 2>&1 | tee target/faults.log |
		grep -E "^test |MEASURE|VIOLATION|EXPLAINED|test result|panicked|FAILED" || true
	grep -q "^test result: ok" target/faults.log || { sed -n '/^failures:$/,/^test result/p' target/faults.log | tail -n 120; exit 1; }
fi

step "done in $((SECONDS - started))s"
