#!/usr/bin/env bash
# Boots an image in QEMU for a look: UEFI (OVMF), the console on this terminal, a
# copy-on-write overlay so the image stays pristine, user networking with no route out and
# the web UI and ONVIF on https://127.0.0.1:8443 (port 80 on 127.0.0.1:8080). Ctrl-A X quits.
#   image-build/run-qemu.sh IMAGE.qcow2 [DISK_SIZE, default 8G]
set -euo pipefail
image=$(realpath "$1"); size=${2:-8G}
dir=$(dirname "$image")/run
mkdir -p "$dir"
[ -f "$dir/disk.qcow2" ] || qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$dir/disk.qcow2" "$size"
[ -f "$dir/OVMF_VARS.fd" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$dir/OVMF_VARS.fd"
accel=tcg,thread=multi
# KVM where it works (it does not in every nested sandbox: VIGIL_QEMU_ACCEL=tcg then).
[ -w /dev/kvm ] && accel=${VIGIL_QEMU_ACCEL:-kvm}
exec qemu-system-x86_64 -machine q35 -accel "$accel" -cpu max -m 3072 -smp 2 -nographic \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive if=pflash,format=raw,file="$dir/OVMF_VARS.fd" \
  -drive file="$dir/disk.qcow2",if=virtio,format=qcow2 \
  -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:8443-:443 \
  -device virtio-net-pci,netdev=net0 \
  -chardev socket,id=qga,path="$dir/qga.sock",server=on,wait=off \
  -device virtio-serial -device virtserialport,chardev=qga,name=org.qemu.guest_agent.0
