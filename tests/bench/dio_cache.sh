#!/bin/bash
# Buffered versus direct I/O, C loop.ko versus ours, as issue 4 asks to
# measure: ext4 on the loop device, the backing file on ext4 on the virtio
# scratch disk. For each cell: a file is written through the loop device's
# filesystem, caches are dropped, and fio reads it (psync, 4 jobs, 4k) for a
# fixed time, sequentially and then at random. Prints the system-wide context switches (ctxt of /proc/stat)
# over the read, per I/O, and Buffers, Cached and the backing file's page
# cache residency (fincore) after it.
#
#   scripts/vm --flavour bench -- tests/bench/dio_cache.sh --kdir KDIR [SIZE_MB] [SECONDS]
set -eu
cd "$(dirname "$0")/../.."
[ "$1" = --kdir ] || { echo "usage: $0 --kdir KDIR [SIZE_MB] [SECONDS]" >&2; exit 2; }
KDIR=$2 SIZE=${3:-768} SECS=${4:-15}
SCRATCH=/tmp/scratch MNT=/tmp/mnt
mkdir -p $SCRATCH $MNT
mkfs.ext4 -q -F /dev/vda && mount /dev/vda $SCRATCH
meminfo() { awk -v k="$1:" '$1 == k { printf "%d", $2 / 1024 }' /proc/meminfo; }
ctxt() { awk '$1 == "ctxt" { print $2 }' /proc/stat; }

printf '%-6s %-4s %-9s %9s %10s %9s %10s %11s %12s\n' driver dio rw IOPS ctxt ctxt/IO Buffers_MB Cached_MB backing_MB
for impl in c rloop; do
    for dio in off on; do
        if [ $impl = c ]; then insmod "$KDIR/drivers/block/loop.ko"; else insmod loop.ko; fi
        rm -f $SCRATCH/backing
        truncate -s $((SIZE * 3 / 2))M $SCRATCH/backing
        dev=$(losetup --direct-io=$dio -f --show $SCRATCH/backing)
        mkfs.ext4 -q $dev
        mount $dev $MNT
        fio --name=fill --filename=$MNT/f --size=${SIZE}M --rw=write --bs=1M \
            --ioengine=psync --end_fsync=1 --invalidate=0 --minimal >/dev/null
        for rw in read randread; do
            sync
            echo 3 >/proc/sys/vm/drop_caches
            c0=$(ctxt)
            out=$(fio --name=r --filename=$MNT/f --size=${SIZE}M --rw=$rw --bs=4k --numjobs=4 \
                --ioengine=psync --time_based --runtime=$SECS --invalidate=0 --group_reporting \
                --output-format=terse --terse-version=3)
            c1=$(ctxt)
            # Terse v3: field 6 is the KiB read, field 8 the read IOPS.
            ios=$(echo "$out" | awk -F';' '{ print int($6 / 4) }')
            iops=$(echo "$out" | awk -F';' '{ print $8 }')
            backing=$(fincore -b -n -o RES $SCRATCH/backing | awk '{ printf "%d", $1 / 1048576 }')
            printf '%-6s %-4s %-9s %9s %10s %9.2f %10s %11s %12s\n' $impl $dio $rw "$iops" $((c1 - c0)) \
                "$(echo "$c1 $c0 $ios" | awk '{ printf "%.2f", ($1 - $2) / ($3 > 0 ? $3 : 1) }')" \
                "$(meminfo Buffers)" "$(meminfo Cached)" "$backing"
        done
        umount $MNT
        losetup -d $dev
        rmmod loop
    done
done
umount $SCRATCH
