#!/bin/bash
# The guest half of `scripts/bench --profile`: a system-wide perf profile of
# fio on the raw loop device with DIO, per driver (the C loop.ko of KDIR,
# then ours), for each job given as RW:BS:IODEPTH.
#
#   tests/bench/profile.sh KDIR OUT SECONDS JOB...
#
# Writes OUT/DRIVER-JOB.{fio,flat,dso}: fio's result (terse), the samples per
# symbol and per binary. The bench kernel has no kallsyms, so kernel samples
# stay addresses here; scripts/bench resolves them with the kernel's
# System.map on the host.
set -euo pipefail
kdir=$1 out=$2 secs=$3; shift 3
KDIR=$kdir REPO=$PWD  # for loop_ko
. tests/guest/lib.sh
no_loop_autoload
back=/tmp/profile-back
mkfs.ext4 -q -F /dev/vda
mkdir -p $back && mount /dev/vda $back
# Written data, as in the benchmark (unwritten space reads as zeroes).
fio --name=fill --filename=$back/raw.img --size=1024M --rw=write --bs=1M \
    --ioengine=libaio --iodepth=8 --direct=1 >/dev/null
for driver in c rloop; do
    insmod "$(loop_ko $driver)"
    dev=$(losetup --direct-io=on -f --show $back/raw.img)
    [ "$(cat /sys/block/${dev#/dev/}/loop/dio)" = 1 ] || { echo "profile: $dev: no DIO" >&2; exit 1; }
    for job in "$@"; do
        IFS=: read -r rw bs depth <<<"$job"
        name=$driver-$rw-$bs-qd$depth
        sync; echo 3 >/proc/sys/vm/drop_caches
        # Dropping the caches drops fio and its libraries too: read them back
        # before recording, so the profile does not show them loaded over 9p.
        fio --version >/dev/null
        perf record -q -a -g -e cpu-clock -F 1999 -o /tmp/perf.data -- \
            fio --name=p --filename="$dev" --size=1024M --rw="$rw" --bs="$bs" \
                --ioengine=libaio --iodepth="$depth" --direct=1 --time_based \
                --runtime="$secs" --invalidate=0 --output-format=terse \
                >"$out/$name.fio" 2>/dev/null
        perf report -i /tmp/perf.data --no-children --sort sym --stdio -g none \
            --percent-limit 0.2 >"$out/$name.flat" 2>/dev/null
        perf report -i /tmp/perf.data --no-children --sort dso --stdio -g none \
            >"$out/$name.dso" 2>/dev/null
        echo "profile: $name done"
    done
    losetup -d "$dev"
    udevadm settle
    rmmod loop
done
umount $back
