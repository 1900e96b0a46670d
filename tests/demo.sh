#!/bin/bash
# The demo, run in the guest by `make demo`: load rloop's loop.ko, attach a
# file the way util-linux does, put ext4 on it and run a short fio with
# verification. Direct I/O comes with the DIO path; until then the device
# runs buffered.
set -euo pipefail
cd "$(dirname "$0")/.."
show() { printf '\n$ %s\n' "$*"; "$@"; }

mkdir -p /tmp/scratch /tmp/mnt
mkfs.ext4 -q -F /dev/vda && mount /dev/vda /tmp/scratch
show insmod loop.ko
show grep -E '^ *7 ' /proc/devices
show ls -l /dev/loop-control
show truncate -s 512M /tmp/scratch/demo.img
dev=$(losetup -f --show /tmp/scratch/demo.img)
echo "losetup -f --show: $dev"
show losetup -l
show mkfs.ext4 -q "$dev"
show mount "$dev" /tmp/mnt
cd /tmp
show fio --name=demo --filename=/tmp/mnt/fio.dat --size=64M --rw=randwrite --bs=4k \
    --ioengine=psync --verify=crc32c --do_verify=1 --verify_state_save=0 --invalidate=0
cd - >/dev/null
show df -h /tmp/mnt
show umount /tmp/mnt
show fsck.ext4 -fn "$dev"
show losetup -d "$dev"
show rmmod loop
umount /tmp/scratch
echo
echo "rloop demo: done"
