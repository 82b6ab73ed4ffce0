# Sourced by the deploy/ scripts: sets HELM to a helm binary.
# Order: $HELM if set; `helm` on PATH; the newest one hack/cluster.sh built under ~/.cache/podtask/helm/.
if [ -z "${HELM:-}" ]; then
  if command -v helm >/dev/null 2>&1; then
    HELM=helm
  else
    for _h in $(ls -1d "${PODTASK_CACHE:-$HOME/.cache/podtask}"/helm/*/bin/helm 2>/dev/null | sort -V -r); do
      [ -x "$_h" ] && HELM="$_h" && break
    done
    unset _h
  fi
fi
HELM="${HELM:-helm}"
