#!/usr/bin/env bash
# Tests docs/argocd-health.lua (the Argo CD health check for PodTasks):
#   1. deploy/test/argocd-health/health_test.lua under every Lua interpreter found (lua5.1, lua5.4, ...);
#      Debian's lua5.4 is installed when none is there (needs root and apt-get).
#   2. the same under gopher-lua, the interpreter Argo CD embeds (needs go and the Go module proxy or a warm module
#      cache; skipped with a notice otherwise, or when ARGOCD_HEALTH_GOPHERLUA=0).
#   3. mutants of the script (a wrong mapping) must make the tests fail: the tests can fail.
#   4. the script embedded in docs/gitops.md's argocd-cm example is the same as docs/argocd-health.lua.
# Prints "N passed, M failed" and exits non-zero when anything failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
script="$repo/docs/argocd-health.lua"
tests="$here/argocd-health/health_test.lua"
# shellcheck source=deploy/test/lib.sh
. "$repo/deploy/test/lib.sh"   # $tmp, ok, bad, $passed, $failed

interpreters=()
find_lua() {
  interpreters=()
  for l in lua5.1 lua5.2 lua5.3 lua5.4 luajit; do
    command -v "$l" >/dev/null 2>&1 && interpreters+=("$l")
  done
  if [ ${#interpreters[@]} -eq 0 ] && command -v lua >/dev/null 2>&1; then interpreters+=(lua); fi
}
find_lua
if [ ${#interpreters[@]} -eq 0 ]; then
  echo "argocd-health-test: no Lua interpreter; installing Debian's lua5.4" >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get install -y -qq lua5.4 || { apt-get update -qq && apt-get install -y -qq lua5.4; }; } >&2
  fi
  find_lua
fi
if [ ${#interpreters[@]} -eq 0 ]; then
  echo "argocd-health-test: FAIL: no Lua interpreter and lua5.4 could not be installed (apt-get install lua5.4)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# run_tests RUNNER... : runs health_test.lua against $script_under_test, output in $tmp/out
script_under_test="$script"
run_tests() { "$@" "$tests" "$script_under_test" >"$tmp/out" 2>&1; }

# --- 1. every Lua interpreter
for l in "${interpreters[@]}"; do
  if run_tests "$l"; then
    ok "$("$l" -v 2>&1 | head -1 | cut -d' ' -f1-2): $(tail -1 "$tmp/out")"
  else
    bad "$l: $(tail -1 "$tmp/out")"; grep -v '^ok' "$tmp/out"
  fi
done

# --- 2. gopher-lua, as in Argo CD
gopher=()
if [ "${ARGOCD_HEALTH_GOPHERLUA:-1}" != 0 ] && command -v go >/dev/null 2>&1; then
  if (cd "$here/argocd-health/gopherlua" && GOFLAGS=-mod=mod nice -n 10 go build -o "$tmp/gopherlua" .) >"$tmp/build" 2>&1; then
    gopher=("$tmp/gopherlua")
  else
    echo "skip - gopher-lua: could not build the runner ($(tail -1 "$tmp/build"))"
  fi
else
  echo "skip - gopher-lua (no go, or ARGOCD_HEALTH_GOPHERLUA=0)"
fi
if [ ${#gopher[@]} -gt 0 ]; then
  if run_tests "${gopher[@]}"; then ok "gopher-lua (Argo CD's interpreter): $(tail -1 "$tmp/out")"; else bad "gopher-lua: $(tail -1 "$tmp/out")"; grep -v '^ok' "$tmp/out"; fi
fi

# --- 3. mutants: a wrong mapping must be caught
runner=("${gopher[@]:-${interpreters[0]}}")
mutant() { # mutant NAME SED-EXPRESSION
  sed -e "$2" "$script" >"$tmp/mutant.lua"
  if cmp -s "$script" "$tmp/mutant.lua"; then bad "mutant $1: the edit did not apply"; return; fi
  script_under_test="$tmp/mutant.lua"
  if run_tests "${runner[@]}"; then
    bad "mutant $1 survived: the tests accept a wrong mapping"
  else
    ok "mutant $1 is caught ($(tail -1 "$tmp/out"))"
  fi
  script_under_test="$script"
}
mutant "Failed->Progressing" 's/return { status = "Degraded", message = describe(status.reason/return { status = "Progressing", message = describe(status.reason/'
mutant "Succeeded->Progressing" '0,/status = "Healthy"/s//status = "Progressing"/'
mutant "ignore observedGeneration" 's/observed < generation/observed < 0/'
mutant "Running not in progress" 's/phase == "Running"/phase == "Nope"/'
mutant "message without reason" 's/return reason .. ": " .. message/return message/'

# --- 4. the argocd-cm example in docs/gitops.md carries the same script
if python3 - "$repo/docs/gitops.md" "$script" <<'EOF'
import re, sys, textwrap
doc, script = open(sys.argv[1]).read(), open(sys.argv[2]).read()
m = re.search(r"resource\.customizations\.health\.podtask\.dev_PodTask: \|\n((?:(?: {4}.*)?\n)+)", doc)
if not m:
    sys.exit("docs/gitops.md has no argocd-cm block with resource.customizations.health.podtask.dev_PodTask")
embedded = textwrap.dedent(m.group(1)).rstrip("\n") + "\n"
if embedded != script:
    import difflib
    sys.stdout.writelines(difflib.unified_diff(script.splitlines(True), embedded.splitlines(True), "argocd-health.lua", "gitops.md"))
    sys.exit(1)
EOF
then ok "docs/gitops.md embeds docs/argocd-health.lua verbatim"; else bad "docs/gitops.md's argocd-cm example differs from docs/argocd-health.lua"; fi

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
