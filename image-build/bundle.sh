#!/usr/bin/env bash
# Builds a signed update bundle of the current tree: the appliance image (build.sh, with the
# key's public half as the one its updates must be signed with), then its root file system,
# kernel and initrd signed with the Ed25519 private key KEY into
# OUT_DIR/vigil-VERSION.bundle. Reproducible like the image: same inputs, same bytes.
#
#   bundle.sh KEY OUT_DIR
#
# Make a release key once, and keep it off every machine that builds in public:
#   openssl genpkey -algorithm ed25519 -out vigil-release-key.pem
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
[ $# -eq 2 ] || { sed -n '7,10s/^# \{0,1\}//p' "$0" >&2; exit 2; }
key=$1 out=$2
bin=${VIGIL_BIN:-$root/target/release/vigil}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct)}

work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
openssl pkey -in "$key" -pubout -out "$work/update-key.pem" 2>/dev/null \
  || { echo "bundle: $key is not a PEM private key" >&2; exit 1; }
VIGIL_UPDATE_PUBKEY=$work/update-key.pem "$here/build.sh" "$out"
release=$out/release
version=$(cat "$release/version")
bundle=$out/vigil-$version.bundle
"$bin" update pack --key "$key" --version "$version" --cmdline "$(cat "$release/cmdline")" \
  --root "$release/root.squashfs" --kernel "$release/vmlinuz" --initrd "$release/initrd.img" \
  --out "$bundle"
cp "$work/update-key.pem" "$out/update-key.pem"
(cd "$out" && sha256sum "$(basename "$bundle")" update-key.pem >> SHA256SUMS)
echo "bundle: $bundle (version $version); the image in $out takes it" >&2
