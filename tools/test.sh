#!/usr/bin/env bash
# `./just test` after set-up: formatting, lints, then every test suite. Each step runs even
# when an earlier one failed (cargo's --no-fail-fast for the suites), so one red suite does
# not hide the others; the exit status is non-zero when any step failed, and a summary names
# them. Warnings the suites leave behind (a stale image lock) are printed last, where they
# are seen.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export VIGIL_TESTDATA=${VIGIL_TESTDATA:-$root/../shared/testdata}
drift=$root/target/image-test/lock-drift.txt
rm -f "$drift"

started=$(date +%s)
failed=()
step() { # NAME COMMAND...
  local name=$1 t0
  shift
  t0=$(date +%s)
  echo "test: $name: $*" >&2
  if "$@"; then
    echo "test: $name passed ($(($(date +%s) - t0)) s)" >&2
  else
    echo "test: $name FAILED ($(($(date +%s) - t0)) s)" >&2
    failed+=("$name")
  fi
}
step format cargo fmt --all -- --check
step clippy cargo clippy --release --locked --all-targets -- -D warnings
# The appliance's suites build the very `vigil` binary `./just run` builds (same features). The
# two libraries are tested on their own, with only their own dependencies' features.
step "appliance suites" cargo test --release --locked -p vigil --no-fail-fast
step "library suites" cargo test --release --locked -p onvif-device -p vigil-web --no-fail-fast

echo >&2
if [ -s "$drift" ]; then
  echo "test: WARNING: image-build/packages.lock pins versions Debian's mirror no longer serves." >&2
  echo "test: The image test built from today's versions instead; a release build (./just image)" >&2
  echo "test: refuses this lock. Re-pin with ./just image-relock, review, commit. Pinned -> served:" >&2
  sed 's/^/test:   /' "$drift" >&2
fi
elapsed=$(($(date +%s) - started))
if [ ${#failed[@]} -gt 0 ]; then
  echo "test: FAILED: ${failed[*]} (${elapsed} s; the failing suites are named in cargo's summary above)" >&2
  exit 1
fi
echo "test: all passed (${elapsed} s)" >&2
