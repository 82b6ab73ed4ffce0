# shellcheck shell=bash
# Sourced by the deploy/ scripts: sets HELM to a helm binary.
# Order: $HELM if set; `helm` on PATH; the newest one hack/cluster.sh built under ~/.cache/podtask/helm/.
if [ -z "${HELM:-}" ]; then
  if command -v helm >/dev/null 2>&1; then
    HELM=helm
  else
    while IFS= read -r _h; do
      [ -x "$_h" ] && HELM="$_h" && break
    done < <(printf '%s\n' "${PODTASK_CACHE:-$HOME/.cache/podtask}"/helm/*/bin/helm | sort -V -r)
    unset _h
  fi
fi
HELM="${HELM:-helm}"
