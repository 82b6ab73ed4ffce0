# Shared by the deploy/test scripts (sourced): a scratch directory removed on exit, and TAP-like counters.
# shellcheck shell=bash
tmp="$(mktemp -d)"
# shellcheck disable=SC2064 # expand now: the path is fixed
trap "rm -rf '$tmp'" EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
