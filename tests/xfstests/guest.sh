#!/bin/bash
# The guest half of scripts/xfstests: runs a list of xfstests tests on ext4
# over two loop devices, per driver and per direct I/O mode, and appends one
# line per test to the results file.
#
#   tests/xfstests/guest.sh --kdir KDIR --xfstests BUILD --list FILE
#       --results FILE --drivers "rloop c" --dio "on off"
#
# The loop devices are files on ext4 on the scratch disk (/dev/vda): TEST_DEV
# on /dev/loop0 and SCRATCH_DEV on /dev/loop1, 8 GiB each, sparse. Each test
# runs as its own ./check call, under a timeout, so that a hang costs one
# test and every finished test is kept. A results line is
#   DRIVER DIO TEST STATUS SECONDS [REASON]
# with STATUS pass, fail, notrun, timeout or splat (a kernel splat in dmesg
# while the test ran: the test is counted as failed).
set -u
cd "$(dirname "$0")/../.."
REPO=$PWD
KDIR= BUILD= LIST= RESULTS= DRIVERS="rloop c" DIOS="on off" TIMEOUT=900
while [ $# -gt 0 ]; do
    case "$1" in
        --kdir) KDIR=$2; shift 2 ;;
        --xfstests) BUILD=$2; shift 2 ;;
        --list) LIST=$2; shift 2 ;;
        --results) RESULTS=$2; shift 2 ;;
        --drivers) DRIVERS=$2; shift 2 ;;
        --dio) DIOS=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        *) echo "guest.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for v in KDIR BUILD LIST RESULTS; do
    [ -n "${!v}" ] || { echo "guest.sh: --${v,,} is required" >&2; exit 2; }
done

ko() { if [ "$1" = c ]; then echo "$KDIR/drivers/block/loop.ko"; else echo "$REPO/loop.ko"; fi; }
splat='BUG:|WARNING:|KASAN:|Oops|Call Trace|lockdep is turned off|INFO: task .* blocked|general protection fault|UBSAN:'

# The users some tests switch to.
for u in fsgqa fsgqa2 123456-fsgqa; do id "$u" >/dev/null 2>&1 || useradd -m "$u"; done
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug

BACK=/tmp/xfstests-back
mkdir -p $BACK /tmp/test /tmp/scratch
mkfs.ext4 -q -F /dev/vda && mount /dev/vda $BACK || { echo "guest.sh: no scratch disk"; exit 2; }

for driver in $DRIVERS; do
    for dio in $DIOS; do
        [ -d /sys/module/loop ] && rmmod loop
        insmod "$(ko $driver)" || { echo "insmod $driver failed"; exit 1; }
        rm -f $BACK/test.img $BACK/scratch.img
        truncate -s 8G $BACK/test.img $BACK/scratch.img
        losetup --direct-io=$dio /dev/loop0 $BACK/test.img
        losetup --direct-io=$dio /dev/loop1 $BACK/scratch.img
        want=$([ $dio = on ] && echo 1 || echo 0)
        for d in loop0 loop1; do
            [ "$(cat /sys/block/$d/loop/dio)" = $want ] || { echo "$d: dio is not $want"; exit 1; }
        done
        mkfs.ext4 -q -F /dev/loop0
        cat >$BUILD/local.config <<CFG
export FSTYP=ext4
export TEST_DEV=/dev/loop0
export TEST_DIR=/tmp/test
export SCRATCH_DEV=/dev/loop1
export SCRATCH_MNT=/tmp/scratch
CFG
        echo "== $driver, dio $dio"
        while read -r t; do
            [ -n "$t" ] || continue
            seen=$(dmesg | wc -l)
            t0=$SECONDS
            out=$(cd $BUILD && timeout -k 30 $TIMEOUT ./check "$t" 2>&1)
            rc=$?
            secs=$((SECONDS - t0))
            reason=
            if [ $rc = 124 ] || [ $rc = 137 ]; then
                status=timeout
            elif echo "$out" | grep -q "^Not run:.* $t\b\|^Not run: $t\b"; then
                status=notrun
                reason=$(echo "$out" | grep -m1 "\[not run\]" | sed 's/.*\[not run\] *//')
            elif echo "$out" | grep -q "^Failures:"; then
                status=fail
                reason=$(echo "$out" | grep -m1 -e "- output mismatch" -e "\[failed" -e "_check_" | sed "s|^$t *||" | cut -c1-120)
            elif echo "$out" | grep -q "^Passed all 1 tests"; then
                status=pass
            else
                status=fail; reason="no result from check (exit $rc)"
            fi
            if dmesg | tail -n +$((seen + 1)) | grep -Eq "$splat"; then
                status=splat
                reason=$(dmesg | tail -n +$((seen + 1)) | grep -E -m1 "$splat" | cut -c1-120)
            fi
            echo "$driver $dio $t $status $secs $reason" | tee -a "$RESULTS"
            # A failed test may leave its mounts behind.
            umount /tmp/scratch 2>/dev/null
            if [ $status = timeout ]; then umount -l /tmp/test 2>/dev/null; fi
        done <"$LIST"
        umount /tmp/test /tmp/scratch 2>/dev/null
        losetup -D
        udevadm settle
        rmmod loop || echo "rmmod $driver failed after the run"
    done
done
umount $BACK
