#!/usr/bin/env bash
# Copies the PodTask CRD that `podtask crd` wrote to crds/ (repo root) into the Helm chart, byte for byte.
# Run it after regenerating crds/podtasks.podtask.dev.yaml; deploy/test/check-crd-sync.sh (and the Rust test
# suite) fail while the two differ.
#
#   deploy/sync-crd.sh            # copy crds/ -> deploy/helm/podtask/crds/
#   deploy/sync-crd.sh --generate # first regenerate crds/ with `cargo run -- crd`, then copy
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$repo/crds/podtasks.podtask.dev.yaml"
dst="$repo/deploy/helm/podtask/crds/podtasks.podtask.dev.yaml"

if [ "${1:-}" = "--generate" ]; then
  mkdir -p "$repo/crds"
  (cd "$repo" && cargo run --quiet -- crd) >"$src.tmp"
  mv "$src.tmp" "$src"
fi
if [ ! -f "$src" ]; then
  echo "sync-crd: $src does not exist; generate it with: cargo run -- crd > crds/podtasks.podtask.dev.yaml" >&2
  exit 1
fi
mkdir -p "$(dirname "$dst")"
if cmp -s "$src" "$dst"; then
  echo "sync-crd: chart CRD already up to date"
else
  cp "$src" "$dst"
  echo "sync-crd: copied crds/podtasks.podtask.dev.yaml -> deploy/helm/podtask/crds/"
fi
# deploy/manifests/podtask.yaml carries the CRD too.
# shellcheck source=deploy/find-helm.sh
. "$repo/deploy/find-helm.sh"
if command -v "$HELM" >/dev/null 2>&1; then
  HELM="$HELM" bash "$repo/deploy/render-manifests.sh"
else
  echo "sync-crd: no helm found: run deploy/render-manifests.sh once helm is there (HELM=/path/to/helm)" >&2
fi
