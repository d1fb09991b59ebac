#!/usr/bin/env bash
# mmdebstrap's customize hook (build.sh): puts Vigil into the fresh root file system "$1" and
# makes the tree reproducible. Inputs come from build.sh's VIGIL_IMAGE_* variables.
set -euo pipefail
rootfs=$1
here=$VIGIL_IMAGE_HERE
work=$VIGIL_IMAGE_WORK
in_root() { chroot "$rootfs" "$@"; }

# --- configuration and units -----------------------------------------------------------------
cp -a --no-preserve=ownership "$here/rootfs/." "$rootfs/"
install -m 0644 -t "$rootfs/usr/lib/systemd/system/" "$here/systemd/vigil.service" \
  "$here/systemd/vigil-firstboot.service" "$here/systemd/vigil-factory-reset.service" \
  "$here/systemd/vigil-boot-check.service" "$here/systemd/vigil-update-settle.service" \
  "$here/systemd/vigil-update.path" "$here/systemd/vigil-update.service"
install -D -m 0644 "$here/README.md" "$rootfs/usr/share/doc/vigil/README.md"
in_root useradd --system --uid 990 --user-group --home-dir /var/lib/vigil --no-create-home \
  --shell /usr/sbin/nologin --comment "Vigil appliance" vigil
in_root systemctl enable --quiet vigil.service vigil-firstboot.service vigil-factory-reset.service \
  vigil-boot-check.service vigil-update-settle.service vigil-update.path \
  systemd-networkd.service systemd-networkd-wait-online.service systemd-resolved.service \
  systemd-timesyncd.service
# The read-only root keeps no machine id: systemd makes a transient one at each boot.
: > "$rootfs/etc/machine-id"

mkdir -p "$rootfs/boot/efi"   # the ESP, mounted on demand (fstab)

# --- Vigil: binary, OpenVINO runtime, models ---------------------------------------------------
objcopy --strip-all "$VIGIL_IMAGE_BIN" "$rootfs/usr/bin/vigil"
chmod 0755 "$rootfs/usr/bin/vigil"
# Only what the CPU plugin and the TensorFlow Lite models need of the wheel's libraries.
ov=$rootfs/usr/lib/vigil/openvino
mkdir -p "$ov"
(cd "$VIGIL_IMAGE_OPENVINO" && cp -t "$ov" libopenvino.so.* libopenvino_c.so.* \
  libopenvino_intel_cpu_plugin.so libopenvino_tensorflow_lite_frontend.so.* \
  libtbb.so.* libtbbmalloc.so.* libhwloc.so.*)
# The release this root is, and the key its updates must be signed with (update::mod).
printf 'version=%s\nsource_date_epoch=%s\n' "$VIGIL_IMAGE_VERSION" "$SOURCE_DATE_EPOCH" \
  > "$rootfs/usr/lib/vigil/release"
if [ -n "$VIGIL_IMAGE_UPDATE_KEY" ]; then
  install -D -m 0644 "$VIGIL_IMAGE_UPDATE_KEY" "$rootfs/usr/share/vigil/update-key.pem"
fi
mkdir -p "$rootfs/usr/share/vigil/models"
install -m 0644 -t "$rootfs/usr/share/vigil/models" "$VIGIL_IMAGE_MODELS"/*
if in_root ldd /usr/bin/vigil | grep 'not found'; then
  echo "image: /usr/bin/vigil misses the libraries above; add their packages to packages.list" >&2
  exit 1
fi

# --- kernel: drop what an appliance box never drives, then rebuild the initramfs ---------------
for modules in "$rootfs"/lib/modules/*; do
  (cd "$modules/kernel" && rm -rf sound drivers/media drivers/net/wireless net/wireless \
     net/mac80211 drivers/bluetooth net/bluetooth drivers/infiniband drivers/staging drivers/isdn \
     drivers/gpu/drm/amd drivers/gpu/drm/nouveau drivers/gpu/drm/radeon)
  in_root depmod "$(basename "$modules")"
done
in_root update-initramfs -u -k all >/dev/null

# --- the package set, then what would differ between two builds ----------------------------------
in_root dpkg-query -W -f='${Package} ${Version}\n' | sort > "$work/installed"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/var/cache/ldconfig/aux-cache \
  "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
  "$rootfs"/etc/passwd- "$rootfs"/etc/group- "$rootfs"/etc/shadow- "$rootfs"/etc/gshadow- \
  "$rootfs"/etc/subuid- "$rootfs"/etc/subgid-
mkdir -p "$rootfs/var/log"
