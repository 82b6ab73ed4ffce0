#!/usr/bin/env bash
# Writes every file generated from the code: the CRD (crds/ and the Helm chart's crds/) from `podtask crd`, the
# chart's RBAC rules (files/*-rules.yaml) from `podtask rbac`, then re-renders deploy/manifests/. Run it after
# changing the CRD types or the permissions; tests/generated_drift.rs fails while any copy differs from the code.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cargo build --quiet --bin podtask
bin=target/debug/podtask
chart=deploy/helm/podtask
mkdir -p crds "$chart/crds" "$chart/files"
"$bin" crd >crds/podtasks.podtask.dev.yaml
cp crds/podtasks.podtask.dev.yaml "$chart/crds/podtasks.podtask.dev.yaml"
"$bin" rbac >"$chart/files/work-rules.yaml"
"$bin" rbac --lease >"$chart/files/lease-rules.yaml"
echo "sync-generated: CRD and RBAC rules written"
# deploy/manifests/podtask.yaml is the chart rendered with its defaults.
# shellcheck source=deploy/find-helm.sh
. "$repo/deploy/find-helm.sh"
if command -v "$HELM" >/dev/null 2>&1; then
  HELM="$HELM" bash "$repo/deploy/render-manifests.sh"
else
  echo "sync-generated: no helm found: run deploy/render-manifests.sh once helm is there (HELM=/path/to/helm)" >&2
fi
