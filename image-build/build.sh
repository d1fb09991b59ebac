#!/usr/bin/env bash
# Builds the Vigil appliance disk image (raw and qcow2) from Debian 12 packages pinned in
# packages.lock, the release vigil binary, the OpenVINO runtime and the models. Two builds of
# the same inputs give byte-identical images: every time stamp is SOURCE_DATE_EPOCH, every
# UUID and seed is fixed below. Layout and update procedure: README.md beside this file.
#
#   build.sh [--lock LOCK] OUT_DIR    build OUT_DIR/vigil.img, vigil.qcow2, SHA256SUMS from
#                                     LOCK's versions (default packages.lock); a version the
#                                     mirror no longer serves fails the build, naming it
#   build.sh --resolve OUT [--lock LOCK]
#                                     no image: resolve the versions the mirror serves now,
#                                     LOCK's where it still has them, into the lock file OUT
#                                     (what the test suite builds from, so a stale LOCK does
#                                     not fail it), and name the packages that moved
#   build.sh --relock                 re-pin packages.lock to the mirror's current versions
#                                     (security updates) and print what moved: review, commit
#
# Environment: VIGIL_BIN (default target/release/vigil), SOURCE_DATE_EPOCH (default: the
# commit's time), VIGIL_IMAGE_MIRROR (default http://deb.debian.org, e.g. a snapshot.debian.org
# archive URL base), VIGIL_IMAGE_CACHE (downloaded .debs, default target/image-cache),
# VIGIL_UPDATE_PUBKEY (the release's Ed25519 public key, PEM: the image takes only updates
# signed with its private key; without it the image takes no updates), VIGIL_RELEASE_VERSION
# (default: the package version and the commit). OUT_DIR/release/ keeps the root file
# system, kernel, initrd and command line that `./just update-bundle` signs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

usage() { sed -n '7,25s/^# \{0,1\}//p' "$0" >&2; exit 2; }
mode=build lock=$here/packages.lock out='' resolved=''
while [ $# -gt 0 ]; do
  case "$1" in
    --lock) [ $# -ge 2 ] || usage; lock=$2; shift 2 ;;
    --resolve) [ $# -ge 2 ] || usage; mode=resolve; resolved=$2; shift 2 ;;
    --relock) mode=relock; shift ;;
    -*) usage ;;
    *) [ -z "$out" ] || usage; out=$1; shift ;;
  esac
done
case "$mode" in
  build) [ -n "$out" ] || usage; out=$(mkdir -p "$out" && cd "$out" && pwd) ;;
  *) [ -z "$out" ] || usage ;;
esac
[ "$mode" = relock ] || [ -r "$lock" ] || { echo "image: cannot read the lock $lock" >&2; exit 1; }

bin=${VIGIL_BIN:-$root/target/release/vigil}
mirror=${VIGIL_IMAGE_MIRROR:-http://deb.debian.org}
cache=${VIGIL_IMAGE_CACHE:-$root/target/image-cache}
openvino=$root/.deps/openvino/openvino/libs
models=$root/.deps/models
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct)}
version=${VIGIL_RELEASE_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)+g$(git -C "$root" rev-parse --short=12 HEAD)}
update_key=${VIGIL_UPDATE_PUBKEY:-}
export LC_ALL=C.UTF-8 TZ=UTC

# Fixed identities: the GPT disk and partitions, the file systems.
disk_guid=5c3a1f6e-7b1d-4c47-9a55-0f1e2d3c4b5a
esp_uuid=3f6a0c52-1d7e-4a8b-8c11-6e2f9d0b7a01
root_a_uuid=8d2b4f17-5c6e-4e93-a1d0-7b3c2e9f4a02
root_b_uuid=1e7c9a3d-2f4b-4d85-b6e2-9a0d5c8f1b03
data_uuid=6b0e2d94-8a1c-4f37-9e5b-3c7d1a2f8e04
data_fs_uuid=c41f3e2a-9b7d-4e06-8a15-d2e3f4a5b6c7
esp_volume_id=5649474c     # "VIGL"

# Sizes in MiB. Two root slots: the update writes the other one (README.md).
esp_mib=256
root_slot_mib=1024
data_mib=256

[ "$(id -u)" -eq 0 ] || { echo "image: mmdebstrap's root mode needs root" >&2; exit 1; }
tools=(mmdebstrap)
[ "$mode" = build ] && tools+=(mksquashfs mkfs.vfat mcopy mmd sfdisk mkfs.ext4 qemu-img)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing (./just setup installs it)" >&2; exit 1; }
done
if [ "$mode" = build ]; then
  [ -x "$bin" ] || { echo "image: no vigil binary at $bin (./just build)" >&2; exit 1; }
  [ -d "$openvino" ] || { echo "image: no OpenVINO runtime in $openvino (./just setup)" >&2; exit 1; }
  [ -f "$models/manifest" ] || { echo "image: no models in $models (./just setup)" >&2; exit 1; }
  if [ -n "$update_key" ]; then
    openssl pkey -pubin -in "$update_key" -noout 2>/dev/null \
      || { echo "image: VIGIL_UPDATE_PUBKEY=$update_key is not a PEM public key" >&2; exit 1; }
  else
    echo "image: no VIGIL_UPDATE_PUBKEY: this image will take no updates" >&2
  fi
fi

started=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache/debs"

# --- packages -------------------------------------------------------------------------------
includes=$(grep -v '^\s*#' "$here/packages.list" | awk 'NF {print $1}' | paste -sd, -)
# Every package of the lock at its version. Where the mirror no longer has a pinned version,
# apt takes its candidate: a build then fails the check below, a resolve records the new one.
# A relock pins nothing.
preferences=$work/vigil-lock.pref
: > "$preferences"
if [ "$mode" != relock ]; then
  awk '!/^#/ && NF {printf "Package: %s\nPin: version %s\nPin-Priority: 1001\n\n", $1, $2}' \
    "$lock" > "$preferences"
fi

# Scratch space for the hooks: what goes in, and what they report.
export VIGIL_IMAGE_BIN=$bin VIGIL_IMAGE_OPENVINO=$openvino VIGIL_IMAGE_MODELS=$models \
  VIGIL_IMAGE_HERE=$here VIGIL_IMAGE_WORK=$work VIGIL_IMAGE_VERSION=$version \
  VIGIL_IMAGE_UPDATE_KEY=$update_key

if [ "$mode" = build ]; then
  echo "image: debootstrapping Debian 12 (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)" >&2
  finish=(--customize-hook="'$here/customize.sh' \"\$1\"")
else
  # Only the versions are wanted: no Vigil, and no initramfs (the kernel's hook skips it).
  echo "image: resolving the package set against $mirror" >&2
  export INITRD=No
  finish=(--customize-hook="dpkg-query --admindir=\"\$1/var/lib/dpkg\" -W -f='\${Package} \${Version}\\n' | sort > '$work/installed'")
fi
mmdebstrap --mode=root --variant=minbase --format=directory \
  --include="$includes" \
  --aptopt='Acquire::Retries "3"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --skip=download/empty --skip=cleanup/apt/cache \
  --setup-hook='mkdir -p "$1/etc/apt/preferences.d" "$1/var/cache/apt/archives"' \
  --setup-hook="cp '$preferences' \"\$1/etc/apt/preferences.d/vigil-lock.pref\"" \
  --setup-hook="find '$cache/debs' -name '*.deb' -exec cp -t \"\$1/var/cache/apt/archives/\" {} +" \
  --customize-hook="find \"\$1/var/cache/apt/archives\" -name '*.deb' -exec cp -n -t '$cache/debs/' {} +" \
  "${finish[@]}" \
  bookworm "$work/rootfs" \
  "deb $mirror/debian bookworm main" \
  "deb $mirror/debian bookworm-updates main" \
  "deb $mirror/debian-security bookworm-security main"

# --- the package set against the lock ------------------------------------------------------
header() { # HOW
  echo "# Every package of the image at its version, written by image-build/build.sh $1"
  echo "# from $mirror on $(date -u +%F)."
}
case "$mode" in
  resolve)
    { header "--resolve (pins: ${lock#"$root/"})"; cat "$work/installed"; } > "$resolved"
    echo "image: wrote $resolved ($(wc -l < "$work/installed") packages) in $(( $(date +%s) - started )) s" >&2
    if moved=$("$here/lock-diff.sh" "$lock" "$resolved"); then
      echo "image: the mirror still serves every version ${lock#"$root/"} pins" >&2
    else
      echo "image: the mirror no longer serves every version ${lock#"$root/"} pins; resolved instead:" >&2
      printf '%s\n' "$moved" >&2
    fi
    exit 0 ;;
  relock)
    cp "$here/packages.lock" "$work/packages.lock.old" 2>/dev/null || : > "$work/packages.lock.old"
    { header --relock; cat "$work/installed"; } > "$here/packages.lock"
    echo "image: wrote $here/packages.lock ($(wc -l < "$work/installed") packages)" >&2
    if moved=$("$here/lock-diff.sh" "$work/packages.lock.old" "$here/packages.lock"); then
      echo "image: nothing moved" >&2
    else
      echo "image: moved (review, then commit packages.lock and build with ./just image):" >&2
      printf '%s\n' "$moved" >&2
    fi
    exit 0 ;;
esac
if ! moved=$("$here/lock-diff.sh" "$lock" "$work/installed"); then
  echo "image: the installed packages differ from ${lock#"$root/"}: the mirror no longer has" >&2
  echo "image: a pinned version, or packages.list changed. Re-pin with ./just image-relock (then" >&2
  echo "image: review the lock's diff), or point VIGIL_IMAGE_MIRROR at a snapshot.debian.org" >&2
  echo "image: archive of the lock's date. Pinned -> installed:" >&2
  printf '%s\n' "$moved" >&2
  exit 1
fi

# --- partitions -----------------------------------------------------------------------------
rootfs=$work/rootfs
# apt's binary caches, rebuilt by mmdebstrap's clean-up after the customize hook, differ from
# build to build, and nothing on a read-only root reads them.
rm -f "$rootfs"/var/cache/apt/*.bin
kernel=$(cd "$rootfs/boot" && ls vmlinuz-* | sort -V | tail -1)
initrd=initrd.img-${kernel#vmlinuz-}
# The slot's root= comes first; updates give their slot its own (update::entries). panic=10:
# a kernel or initramfs that cannot go on reboots instead of waiting for a person, so an
# update's trial boot that fails that early falls back to the old slot too.
options="rootfstype=squashfs ro panic=10 console=tty0 console=ttyS0,115200 loglevel=4"
cmdline="root=PARTUUID=$root_a_uuid $options"

echo "image: boot partition (systemd-boot, $kernel)" >&2
esp=$work/esp.img
mkdir -p "$work/esp/EFI/BOOT" "$work/esp/loader/entries" "$work/esp/vigil-a"
cp "$rootfs/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$work/esp/EFI/BOOT/BOOTX64.EFI"
cp "$rootfs/boot/$kernel" "$work/esp/vigil-a/vmlinuz"
cp "$rootfs/boot/$initrd" "$work/esp/vigil-a/initrd.img"
printf 'default vigil-a.conf\ntimeout 0\neditor no\n' > "$work/esp/loader/loader.conf"
entry() { # FILE TITLE OPTIONS
  printf 'title %s\nlinux /vigil-a/vmlinuz\ninitrd /vigil-a/initrd.img\noptions %s\n' "$2" "$3" \
    > "$work/esp/loader/entries/$1"
}
entry vigil-a.conf "Vigil (slot A)" "$cmdline"
# Chosen from the boot menu (hold a key at power-on), or by the LoaderEntryOneShot variable.
entry vigil-a-reset.conf "Vigil: factory reset (erases all data)" "$cmdline vigil.factory_reset=1"
find "$work/esp" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
truncate -s "${esp_mib}M" "$esp"
mkfs.vfat -F 32 -n VIGIL-ESP -i "$esp_volume_id" --invariant "$esp" >/dev/null
# mtools stamps the directories it makes with SOURCE_DATE_EPOCH, and files with their own
# times (-m), which were just set to it.
export MTOOLS_SKIP_CHECK=1
(cd "$work/esp" && find . -mindepth 1 -type d | sort | sed 's|^\./||' | while read -r d; do
   mmd -i "$esp" "::$d"; done
 find . -type f | sort | sed 's|^\./||' | while read -r f; do mcopy -m -i "$esp" "$f" "::$f"; done)

echo "image: root file system (squashfs)" >&2
root_img=$work/root.squashfs
mksquashfs "$rootfs" "$root_img" -noappend -comp zstd -b 1M \
  -reproducible \
  -no-progress -quiet -processors "$(nproc)" >/dev/null
root_mib=$(( ($(stat -c %s "$root_img") + 1048575) / 1048576 ))
[ "$root_mib" -le "$root_slot_mib" ] || { echo "image: root file system ${root_mib} MiB exceeds its ${root_slot_mib} MiB slot" >&2; exit 1; }

echo "image: data partition (ext4, empty)" >&2
data_img=$work/data.img
truncate -s "${data_mib}M" "$data_img"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L vigil-data -U "$data_fs_uuid" \
  -E "hash_seed=$data_fs_uuid,root_owner=0:0,lazy_itable_init=0" "$data_img"

# --- the disk -------------------------------------------------------------------------------
echo "image: disk (GPT)" >&2
raw=$work/vigil.img
start=1 # MiB; partitions aligned to 1 MiB
esp_start=$start
root_a_start=$((esp_start + esp_mib))
root_b_start=$((root_a_start + root_slot_mib))
data_start=$((root_b_start + root_slot_mib))
total_mib=$((data_start + data_mib + 1)) # 1 MiB for the backup GPT
truncate -s "${total_mib}M" "$raw"
sfdisk --quiet --no-reread --no-tell-kernel "$raw" <<EOF
label: gpt
label-id: $disk_guid
unit: sectors
sector-size: 512
first-lba: 2048

start=$((esp_start * 2048)), size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$esp_uuid, name="vigil-esp"
start=$((root_a_start * 2048)), size=$((root_slot_mib * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$root_a_uuid, name="vigil-root-a"
start=$((root_b_start * 2048)), size=$((root_slot_mib * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$root_b_uuid, name="vigil-root-b"
start=$((data_start * 2048)), size=$((data_mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$data_uuid, name="vigil-data"
EOF
dd if="$esp" of="$raw" bs=1M seek="$esp_start" conv=notrunc,sparse status=none
dd if="$root_img" of="$raw" bs=1M seek="$root_a_start" conv=notrunc,sparse status=none
dd if="$data_img" of="$raw" bs=1M seek="$data_start" conv=notrunc,sparse status=none

qemu-img convert -q -f raw -O qcow2 -c "$raw" "$work/vigil.qcow2"
mv "$raw" "$work/vigil.qcow2" "$out/"
# What an update bundle of this release carries (./just update-bundle signs it).
mkdir -p "$out/release"
mv "$root_img" "$out/release/root.squashfs"
cp "$rootfs/boot/$kernel" "$out/release/vmlinuz"
cp "$rootfs/boot/$initrd" "$out/release/initrd.img"
printf '%s\n' "$options" > "$out/release/cmdline"
printf '%s\n' "$version" > "$out/release/version"
root_img=$out/release/root.squashfs
cp "$work/installed" "$out/packages.installed"
(cd "$out" && sha256sum vigil.img vigil.qcow2 packages.installed > SHA256SUMS)
{
  echo "built_in_s=$(( $(date +%s) - started ))"
  echo "source_date_epoch=$SOURCE_DATE_EPOCH"
  echo "kernel=${kernel#vmlinuz-}"
  echo "version=$version"
  echo "update_key_sha256=$([ -n "$update_key" ] && openssl pkey -pubin -in "$update_key" -outform DER | sha256sum | cut -d' ' -f1)"
  echo "root_squashfs_bytes=$(stat -c %s "$root_img")"
  echo "raw_bytes=$(stat -c %s "$out/vigil.img")"
  echo "raw_allocated_bytes=$(( $(stat -c %b "$out/vigil.img") * 512 ))"
  echo "qcow2_bytes=$(stat -c %s "$out/vigil.qcow2")"
  # Per partition, to tell which one differs when two builds do.
  for part in "$esp" "$root_img" "$data_img"; do
    echo "sha256_$(basename "$part")=$(sha256sum < "$part" | cut -d' ' -f1)"
  done
} > "$out/build-info"
cat "$out/SHA256SUMS" "$out/build-info" >&2
