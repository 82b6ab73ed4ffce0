#!/usr/bin/env bash
# Fails when the Helm chart's CRD differs from crds/podtasks.podtask.dev.yaml (what `podtask crd` prints).
# Fix a failure with deploy/sync-crd.sh.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$repo/crds/podtasks.podtask.dev.yaml"
dst="$repo/deploy/helm/podtask/crds/podtasks.podtask.dev.yaml"
for f in "$src" "$dst"; do
  if [ ! -f "$f" ]; then
    echo "check-crd-sync: FAIL: ${f#"$repo"/} is missing (generate crds/ with \`cargo run -- crd\`, then run deploy/sync-crd.sh)" >&2
    exit 1
  fi
done
if ! cmp -s "$src" "$dst"; then
  echo "check-crd-sync: FAIL: deploy/helm/podtask/crds/podtasks.podtask.dev.yaml differs from crds/podtasks.podtask.dev.yaml:" >&2
  diff -u "$src" "$dst" | head -40 >&2 || true
  echo "check-crd-sync: run deploy/sync-crd.sh" >&2
  exit 1
fi
echo "check-crd-sync: chart CRD matches crds/podtasks.podtask.dev.yaml"
