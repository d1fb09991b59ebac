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
    return 1
  fi
}
# The image suite (appliance/tests/image.rs: two image builds, a QEMU guest booted several
# times) is the longest, and leaves a core idle much of the time (downloads, dpkg, a guest
# waiting). It runs in the background, niced so the other suites keep the CPU they ask for,
# from when its binary is built until the end; the other suites skip it by its exact name.
image_test=image_builds_reproducibly_boots_serves_and_restarts_the_daemon
image_log=$root/target/image-test.log
image_pid=
start_image_suite() {
  mkdir -p "$(dirname "$image_log")"
  echo "test: image suite: in the background, its output in ${image_log#"$root/"}" >&2
  # Its own process group (setsid), so that an interrupted run takes QEMU and the image
  # builds down with it.
  setsid nice -n 10 cargo test --release --locked -p vigil --test image -- --exact "$image_test" \
    >"$image_log" 2>&1 &
  image_pid=$!
  trap 'kill -- -"$image_pid" 2>/dev/null' EXIT
  trap 'exit 130' INT TERM
}
wait_image_suite() {
  local status
  wait "$image_pid"
  status=$?
  trap - EXIT INT TERM
  echo "test: image suite output (${image_log#"$root/"}), $(($(date +%s) - image_started)) s from its start:" >&2
  sed 's/^/image: /' "$image_log" >&2
  return "$status"
}

step format cargo fmt --all -- --check
# The appliance's suites build the very `vigil` binary `./just run` builds (same features).
if step "appliance build" cargo test --release --locked -p vigil --no-run; then
  image_started=$(date +%s)
  start_image_suite
else
  echo "test: image suite: not started, the appliance's build failed" >&2
fi
step clippy cargo clippy --release --locked --all-targets -- -D warnings
step "appliance suites" cargo test --release --locked -p vigil --no-fail-fast -- --exact --skip "$image_test"
# The two libraries are tested on their own, with only their own dependencies' features.
step "library suites" cargo test --release --locked -p onvif-device -p vigil-web --no-fail-fast
if [ -n "$image_pid" ]; then
  step "image suite" wait_image_suite
fi

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
