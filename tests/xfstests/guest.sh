#!/bin/bash
# The guest half of scripts/xfstests: runs a list of xfstests tests on a
# filesystem (ext4 or xfs) over two loop devices, per driver and per direct
# I/O mode, and appends one line per test to the results file.
#
#   tests/xfstests/guest.sh --kdir KDIR --xfstests BUILD --list FILE
#       --results FILE [--fs ext4|xfs] --drivers "rloop c" --dio "on off"
#
# The loop devices are files on ext4 on the scratch disk (/dev/vda): TEST_DEV
# on /dev/loop0 and SCRATCH_DEV on /dev/loop1, 8 GiB each, sparse. One
# ./check runs the list (a check call per test costs about 30 s more each
# under TCG); each test's line is recorded as soon as it ends, and a hang
# costs one test (see run_check). A results line is
#   FS DRIVER DIO TEST STATUS SECONDS [REASON]
# with STATUS pass, fail, notrun, excluded, timeout or error. check's own
# dmesg check fails a test that leaves a kernel splat.
set -u
cd "$(dirname "$0")/../.."
REPO=$PWD
KDIR= BUILD= LIST= RESULTS= FS=ext4 DRIVERS="rloop c" DIOS="on off" TIMEOUT=900
while [ $# -gt 0 ]; do
    case "$1" in
        --kdir) KDIR=$2; shift 2 ;;
        --xfstests) BUILD=$2; shift 2 ;;
        --list) LIST=$2; shift 2 ;;
        --results) RESULTS=$2; shift 2 ;;
        --fs) FS=$2; shift 2 ;;
        --drivers) DRIVERS=$2; shift 2 ;;
        --dio) DIOS=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        *) echo "guest.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for v in KDIR BUILD LIST RESULTS; do
    [ -n "${!v}" ] || { echo "guest.sh: --${v,,} is required" >&2; exit 2; }
done

. "$REPO/tests/guest/lib.sh"
no_loop_autoload || { echo "guest.sh: cannot stop modprobe from loading loop" >&2; exit 2; }

# The users some tests switch to.
# (useradd cannot rewrite /etc/shadow in the guest's /etc overlay, so the
# entries are appended. Their password field is "*", not "x": with "x",
# pam_unix's account check looks for a shadow entry, finds none, and
# `su fsgqa` fails, which xfstests' _require_user reports as "fsgqa cannot
# execute commands".)
uid=31000
for u in fsgqa fsgqa2 123456-fsgqa; do
    uid=$((uid + 1))
    id "$u" >/dev/null 2>&1 && continue
    echo "$u:*:$uid:$uid::/tmp/home-$u:/bin/sh" >>/etc/passwd
    echo "$u:x:$uid:" >>/etc/group
    mkdir -p /tmp/home-$u && chown $uid:$uid /tmp/home-$u
done
id fsgqa >/dev/null || echo "guest.sh: could not add the user fsgqa" >&2
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug

# run_check DRIVER DIO TEST...: one ./check for the tests, its output
# parsed as it comes, one results line per test as each ends. When check
# prints nothing for TIMEOUT seconds, the test it is in is recorded as
# "timeout" and check is killed; when check ends before a test reports,
# that test is recorded as "error". The caller runs the rest again.
run_check() {
    local driver=$1 dio=$2; shift 2
    local out=/tmp/xfstests-check.out line t status secs reason
    : >$out
    (cd $BUILD && exec setsid ./check "$@" >$out 2>&1) &
    local pid=$! last=$SECONDS size=0 timed_out=0 done=0
    while :; do
        if ! kill -0 $pid 2>/dev/null; then done=1; fi
        if [ "$(stat -c %s $out)" != "$size" ]; then size=$(stat -c %s $out); last=$SECONDS; fi
        if [ $done = 0 ] && [ $((SECONDS - last)) -ge "$TIMEOUT" ]; then
            timed_out=1
            echo "guest.sh: no output for ${TIMEOUT}s"; dump_blocked
            kill -KILL -- -$pid 2>/dev/null; wait $pid 2>/dev/null; done=1
        fi
        # Lines of finished tests: "generic/NNN ..." ended by a newline.
        while IFS= read -r line; do
            t=${line%% *}
            grep -q "^$FS $driver $dio $t " "$RESULTS" && continue
            secs=$(echo "$line" | grep -o '[0-9]\+s *$' | tr -d 's ')
            reason=
            case "$line" in
                *"[not run]"*) status=notrun; reason=${line#*\[not run\] } ;;
                *"[expunged]"*) status=excluded ;;
                *"output mismatch"*|*"[failed"*|*_check_*|*"no qualified output"*)
                    status=fail; reason=$(echo "${line#"$t"}" | sed 's/^[ 0-9s.]*//' | cut -c1-120) ;;
                *) if [ -n "$secs" ]; then status=pass; else continue; fi ;;
            esac
            echo "$FS $driver $dio $t $status ${secs:-0} $reason" | tee -a "$RESULTS"
        done < <(grep -a '^[a-z0-9]*/[0-9]\+ ' $out)
        [ $done = 1 ] && break
        sleep 2
    done
    # The test that was running, or the first that never reported.
    for t in "$@"; do
        grep -q "^$FS $driver $dio $t " "$RESULTS" && continue
        if [ $timed_out = 1 ]; then status=timeout; reason="no output for ${TIMEOUT}s"
        else status=error; reason="check ended before it: $(tail -n 1 $out | cut -c1-100)"; fi
        echo "$FS $driver $dio $t $status 0 $reason" | tee -a "$RESULTS"
        break
    done
    # A killed or failed test may leave its mounts behind.
    umount /tmp/scratch 2>/dev/null
    if [ $timed_out = 1 ]; then umount -l /tmp/test /tmp/scratch 2>/dev/null; fi
    return 0
}

BACK=/tmp/xfstests-back
mkdir -p $BACK /tmp/test /tmp/scratch
mkfs.ext4 -q -F /dev/vda && mount /dev/vda $BACK || { echo "guest.sh: no scratch disk"; exit 2; }

for driver in $DRIVERS; do
    for dio in $DIOS; do
        [ -d /sys/module/loop ] && rmmod loop
        insmod "$(loop_ko $driver)" || { echo "insmod $driver failed"; exit 1; }
        rm -f $BACK/test.img $BACK/scratch.img
        truncate -s 8G $BACK/test.img $BACK/scratch.img
        losetup --direct-io=$dio /dev/loop0 $BACK/test.img
        losetup --direct-io=$dio /dev/loop1 $BACK/scratch.img
        want=$([ $dio = on ] && echo 1 || echo 0)
        for d in loop0 loop1; do
            [ "$(cat /sys/block/$d/loop/dio)" = $want ] || { echo "$d: dio is not $want"; exit 1; }
        done
        case $FS in
            ext4) mkfs.ext4 -q -F /dev/loop0 ;;
            xfs) mkfs.xfs -q -f /dev/loop0 ;;
            *) echo "guest.sh: no filesystem $FS"; exit 2 ;;
        esac
        cat >$BUILD/local.config <<CFG
export FSTYP=$FS
export TEST_DEV=/dev/loop0
export TEST_DIR=/tmp/test
export SCRATCH_DEV=/dev/loop1
export SCRATCH_MNT=/tmp/scratch
CFG
        echo "== $FS, $driver, dio $dio ($(date +%T))"
        mapfile -t remaining < <(grep -v '^$' "$LIST")
        while [ ${#remaining[@]} -gt 0 ]; do
            run_check "$driver" "$dio" "${remaining[@]}"
            mapfile -t remaining < <(for t in "${remaining[@]}"; do
                grep -q "^$FS $driver $dio $t " "$RESULTS" || echo "$t"; done)
        done
        umount /tmp/test /tmp/scratch 2>/dev/null
        losetup -D
        udevadm settle
        rmmod loop || echo "rmmod $driver failed after the run"
    done
done
umount $BACK
