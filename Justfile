# Every task a person runs. `./just <recipe>` works on a fresh machine (it installs `just` itself).

set shell := ["bash", "-euo", "pipefail", "-c"]

# The release profile everywhere: tests run real models on real images and share the run build.
cargo := "cargo"
testdata := justfile_directory() / ".." / "shared" / "testdata"

default:
    @just --list

# Install what the build and tests need (Debian packages, OpenVINO runtime, models). Idempotent.
setup:
    tools/setup.sh

# Build the vigil binary.
build: setup
    {{cargo}} build --release --locked -p vigil

# Run the appliance daemon (everything on 127.0.0.1 by default); ARGS go to `vigil run`. With no
# ARGS and no camera configured, the built-in demo runs instead (tools/run.sh).
run *ARGS: build
    tools/run.sh {{ARGS}}

# The built-in demo: a local RTSP server with the test video, its people enrolled, alerts printed.
demo: build
    tools/demo.sh

# Run every test: formatting, lints, unit and end-to-end tests on the real runtime and models.
# Every step runs even when one fails; the exit status says whether all passed (tools/test.sh).
test: setup
    VIGIL_TESTDATA={{testdata}} tools/test.sh

# Benchmarks: print medians (detection, embedding, matching, enrolment). Figures, not assertions.
bench: setup
    VIGIL_TESTDATA={{testdata}} {{cargo}} bench --locked -p vigil

# The appliance disk image (raw and qcow2) into target/image: reproducible, see image-build/README.md.
image: build
    image-build/build.sh target/image

# Re-pin image-build/packages.lock to the mirror's current Debian 12 versions (security updates):
# prints what moved; review the diff, commit, then `./just image`. image-build/README.md, "Updates".
image-relock: setup
    image-build/build.sh --relock

# A signed update bundle of the current tree into target/image (vigil-VERSION.bundle), and the
# image that takes it: KEY is the release's Ed25519 private key (never committed).
# image-build/README.md, "Updates".
update-bundle KEY: build
    image-build/bundle.sh {{KEY}} target/image

# Boot target/image/vigil.qcow2 in QEMU: the web UI and ONVIF on https://127.0.0.1:8443.
image-run:
    image-build/run-qemu.sh target/image/vigil.qcow2

# Verification accuracy on the test pairs.
eval: build
    target/release/vigil eval pairs {{testdata}}/faces/pairs.csv
