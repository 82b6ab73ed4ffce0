#!/usr/bin/env bash
# Renders deploy/manifests/podtask.yaml: the Helm chart with its default values (release `podtask`, namespace
# `podtask-system`, all namespaces watched), CRD included, preceded by the Namespace, for installs without Helm:
#
#   kubectl apply --server-side -f deploy/manifests/podtask.yaml
#
#   deploy/render-manifests.sh          # rewrite the file
#   deploy/render-manifests.sh --check  # fail when the file differs from the chart's output
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/find-helm.sh
. "$repo/deploy/find-helm.sh"
out="$repo/deploy/manifests/podtask.yaml"
ns=podtask-system

render() {
  cat <<YAML
# podtask: plain install manifests, rendered from deploy/helm/podtask by deploy/render-manifests.sh; do not edit.
# Release "podtask" in namespace "$ns", all namespaces watched, chart defaults otherwise.
# Install:  kubectl apply --server-side -f deploy/manifests/podtask.yaml
# For other settings (watched namespaces, ServiceMonitor, ...) use the Helm chart.
---
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels:
    app.kubernetes.io/name: podtask
    app.kubernetes.io/part-of: podtask
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/audit: restricted
YAML
  # Helm's "managed-by" labels stay: they are harmless, and `helm install` can adopt nothing anyway.
  "$HELM" template podtask "$repo/deploy/helm/podtask" --namespace "$ns" --include-crds
}

if [ "${1:-}" = "--check" ]; then
  tmp="$(mktemp)"
  trap 'rm -f "$tmp"' EXIT
  render >"$tmp"
  if ! diff -u "$out" "$tmp" >/dev/null 2>&1; then
    echo "render-manifests: deploy/manifests/podtask.yaml is out of date with the chart; run deploy/render-manifests.sh" >&2
    diff -u "$out" "$tmp" | head -30 >&2 || true
    exit 1
  fi
  echo "render-manifests: deploy/manifests/podtask.yaml is up to date"
else
  mkdir -p "$(dirname "$out")"
  render >"$out.tmp"
  mv "$out.tmp" "$out"
  echo "render-manifests: wrote deploy/manifests/podtask.yaml ($(grep -c '^kind:' "$out") objects)"
fi
