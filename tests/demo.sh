#!/bin/bash
# The demo, run in the guest by `make demo` (scripts/demo passes the
# kernel tree): load rloop's loop.ko, attach a file with direct I/O the way
# util-linux does, put ext4 on it and run a short fio with verification;
# then a short fio of buffered against direct I/O, ours against the C
# loop.ko of the same kernel, as a table.
#
#   tests/demo.sh KDIR
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
KDIR=${1:?usage: tests/demo.sh KDIR}
. tests/guest/lib.sh
show() { printf '\n$ %s\n' "$*"; "$@"; }

no_loop_autoload
mkdir -p /tmp/scratch /tmp/mnt
mkfs.ext4 -q -F /dev/vda && mount /dev/vda /tmp/scratch
show uname -r
show insmod "$(loop_ko rloop)"
show grep -E '^ *7 ' /proc/devices
show ls -l /dev/loop-control
show truncate -s 512M /tmp/scratch/demo.img
printf '\n$ %s\n' "losetup --direct-io=on -f --show /tmp/scratch/demo.img"
dev=$(losetup --direct-io=on -f --show /tmp/scratch/demo.img)
echo "$dev"
name=${dev#/dev/}
show losetup -l "$dev"
show cat /sys/block/$name/loop/dio
[ "$(cat /sys/block/$name/loop/dio)" = 1 ] || { echo "rloop demo: direct I/O is off"; exit 1; }
show mkfs.ext4 -q "$dev"
show mount "$dev" /tmp/mnt
# fio's full report goes to a file; its summary lines are shown.
fio_cmd=(fio --name=demo --filename=/tmp/mnt/fio.dat --size=64M --rw=randwrite --bs=4k
    --ioengine=psync --verify=crc32c --do_verify=1 --verify_state_save=0 --invalidate=0)
printf '\n$ %s\n' "${fio_cmd[*]}"
(cd /tmp && "${fio_cmd[@]}") >/tmp/demo-fio.txt 2>&1 || { cat /tmp/demo-fio.txt; exit 1; }
grep -E 'err=|^ *(read|write): IOPS' /tmp/demo-fio.txt
show df -h /tmp/mnt
show umount /tmp/mnt
show fsck.ext4 -fn "$dev"
show losetup -d "$dev"
show rmmod loop

# The side by side: 4k random reads and writes at depth 16 on the raw
# device, with the caches dropped first, each driver buffered and direct.
echo
echo "4k random I/O at depth 16 on the raw loop device, ${SECS:=5} s a cell"
if [ -f "$KDIR/rloop/loop.ko" ]; then
    echo "(Debian's own kernel under emulation: compare the rows, not the figures):"
else
    echo "(a debug kernel under emulation: compare the rows, not the figures):"
fi
dd if=/dev/zero of=/tmp/scratch/bench.img bs=1M count=256 oflag=direct status=none
# iops RW DEV: the IOPS of one fio run.
iops() {
    echo 3 >/proc/sys/vm/drop_caches
    (cd /tmp && fio --name=cell --filename="$2" --rw="$1" --bs=4k --iodepth=16 \
        --ioengine=libaio --direct=1 --time_based --runtime="$SECS" --size=256M \
        --output-format=json) |
        python3 -c 'import json, sys
j = json.load(sys.stdin)["jobs"][0]
print(round(j["read"]["iops"] + j["write"]["iops"]))'
}
printf '\n%-6s %-9s %14s %15s\n' driver mode "randread IOPS" "randwrite IOPS"
for impl in c rloop; do
    insmod "$(loop_ko $impl)"
    for dio in off on; do
        dev=$(losetup --direct-io=$dio -f --show /tmp/scratch/bench.img)
        r=$(iops randread "$dev")
        w=$(iops randwrite "$dev")
        losetup -d "$dev"
        mode=buffered; [ $dio = off ] || mode=direct
        printf '%-6s %-9s %14s %15s\n' "$([ $impl = c ] && echo C || echo rloop)" $mode "$r" "$w"
    done
    udevadm settle
    rmmod loop
done
umount /tmp/scratch
echo
echo "rloop demo: done"
