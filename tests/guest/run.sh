#!/bin/bash
# The guest test suite. Runs as root inside scripts/vm, on the test kernel:
#
#   tests/guest/run.sh --kdir KDIR [--driver rloop|c|both]
#                      [--tier quick|check|long|stack] [--fio-dir DIR] [TEST...]
#
# --fio-dir DIR puts DIR first in PATH: the fio of scripts/build-fio, which
# starts in a sixth of the time of Debian's under TCG (scripts/check
# passes it; without it, Debian's fio).
# The tier (default check) picks the tests and their sizes: quick, the
# core attach, I/O, detach and direct I/O tests, for every edit; check,
# every test, at the sizes CI can afford (what make check and CI run);
# long, every test at full size, the 100,000-call ioctl fuzzer, and the
# direct I/O tests once more with NOWAIT submission off, and stack's; stack,
# the stacked topologies (tests/guest/stack.sh) and their deepest stack,
# too slow for CI (about 9 minutes a driver). README.md,
# "Tests", lists what each tier adds.
#
# Each test starts and ends with no loop module loaded. Every test holds for
# the C driver too, the reference: --driver c runs the suite against the C
# loop.ko of KDIR, both runs each test on C first and then on ours. Ends with
# one line "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
REPO=$PWD
KDIR= DRIVER=rloop TIER=check
while [ $# -gt 0 ]; do
    case "$1" in
        --kdir) KDIR=$2; shift 2 ;;
        --driver) DRIVER=$2; shift 2 ;;
        --tier) TIER=$2; shift 2 ;;
        --fio-dir) PATH=$2:$PATH; shift 2 ;;
        *) break ;;
    esac
done
[ -n "$KDIR" ] || { echo "run.sh: --kdir is required" >&2; exit 2; }
case "$TIER" in quick|check|long|stack) ;; *) echo "run.sh: no tier '$TIER'" >&2; exit 2 ;; esac
ONLY=("$@")

. "$REPO/tests/guest/lib.sh"
. "$REPO/tests/guest/stack.sh"
. "$REPO/tests/guest/cgroup.sh"
RLOOP_KO=$(loop_ko rloop)
C_KO=$(loop_ko c)
TEST_KO=$REPO/tests/kmod/rloop_test.ko
[ ! -f "$KDIR/rloop/rloop_test.ko" ] || TEST_KO=$KDIR/rloop/rloop_test.ko
LOOPCTL=$REPO/target/debug/loopctl
# The tests' cmp: GNU cmp's semantics and exit status, in 1 MiB reads
# instead of the files' 4 KiB blocks (tests/loopctl/cmp.rs). A 64 MiB
# comparison of two cached files took 402 ms instead of 681 in the guest.
cmp() { "$LOOPCTL" cmp "$@"; }
# Each test's output and its trace (TEST_LOG_DIR, e.g. a scripts/vm --rwdir,
# keeps them for a look at where a test's time goes: every trace line
# starts with the time it ran at).
LOG=${TEST_LOG_DIR:-$(mktemp -d)}
pass=0 fail=0 failed=() skipped=() times=()

# The module under test, set per run: "rloop" or "c".
IMPL=rloop
# The module file of each, looked up without a fork (see "Under TCG" below).
declare -A KO=([rloop]=$RLOOP_KO [c]=$C_KO)
# Module parameters every load of a run adds (the NOWAIT-off rerun).
LOAD_ARGS=
# The kernel's CONFIG_BLK_DEV_LOOP_MIN_COUNT, max_loop's default: how many
# devices a load creates unasked, with either driver (0 on the test kernel,
# 8 on Debian's). The tests count on none, so on a kernel with more, load
# asks for 0 unless the test gives max_loop itself; min_count_default
# checks the default.
MIN_COUNT=$(sed -n 's/^CONFIG_BLK_DEV_LOOP_MIN_COUNT=//p' "$KDIR/.config")
load() {
    if [ "${MIN_COUNT:-0}" = 0 ] || [[ " $* " == *" max_loop="* ]]; then
        insmod "${KO[$IMPL]}" $LOAD_ARGS "$@"
    else
        insmod "${KO[$IMPL]}" $LOAD_ARGS max_loop=0 "$@"
    fi
}
# udev may still hold a device open after a change event (a deferred
# autoclear then keeps the module busy): let it finish first.
unload() { udevadm settle 2>/dev/null; rmmod loop; }
loaded() { [ -d /sys/module/loop ]; }
# settle SECS: wait for udev's event queue to drain. Not draining in SECS
# fails, with the blocked tasks shown: a worker stuck in the driver is a hang.
settle() {
    udevadm settle --timeout="$1" && return 0
    dump_blocked
    die "udev's queue did not drain in $1 s"
}

die() { echo "FAIL: $*"; return 1; }
# needs_config SYM...: skips the test (run_test reports it, and it counts as
# neither passed nor failed) unless KDIR's kernel has every CONFIG_SYM, y or
# m. Only for what a kernel may lack (Debian's has no fault injection), never
# for what the driver does.
needs_config() {
    local s
    for s in "$@"; do
        grep -Eq "^CONFIG_$s=[ym]$" "$KDIR/.config" || { echo "this kernel has no CONFIG_$s"; exit 77; }
    done
}
# sz LONG CHECK: a size or a count of a soak, LONG in the long tier and
# CHECK in the others. CHECK still meets every bound the test checks.
sz() { if [ "$TIER" = long ]; then echo "$1"; else echo "$2"; fi; }
# expect WANT CMD...: CMD's stdout (loopctl prints "ok N" or "err ENAME").
expect() {
    local want=$1; shift
    local got
    # The exit code is part of the output ("err ..." exits 1).
    got=$("$@" 2>&1) || true
    [ "$got" = "$want" ] || die "$*: want '$want', got '$got'"
}
sysfs_eq() {
    local got
    got=$(<"$1") || got="(cannot read it)"
    [ "$got" = "$2" ] || die "$1: want '$2', got '$got'"
}

# Under TCG a fork and exec on the debug kernel takes about 0.1 s (300 of
# /bin/true in 28 to 33 s), so the harness below forks little: builtins,
# one awk for the splat check, and run_test counts the PIDs each test
# gives out (the last PID of /proc/loadavg, wrapping at pid_max).

read -r PID_MAX </proc/sys/kernel/pid_max
# cpu_ticks VAR: sets VAR to the guest's busy and total CPU ticks, all
# CPUs, as "BUSY TOTAL" (/proc/stat, read by the shell itself, no fork;
# VAR must not be one of the functions' own locals).
# busy_pct VAR A B: sets VAR to the busy share between two of them, in
# percent of all the vCPUs: how much of a test's time is CPU, and how much
# waiting (naps, timeouts, udev, the host's disk).
cpu_ticks() {
    local _cpu u n s i w q sq st _r
    read -r _cpu u n s i w q sq st _r </proc/stat
    printf -v "$1" '%s %s' "$((u + n + s + q + sq + st))" "$((u + n + s + i + w + q + sq + st))"
}
busy_pct() {
    local b0 t0 b1 t1; read -r b0 t0 <<<"$2"; read -r b1 t1 <<<"$3"
    printf -v "$1" '%s' "$(( t1 > t0 ? 100 * (b1 - b0) / (t1 - t0) : 0 ))"
}
cpu_ticks SUITE_CPU

# mounted DIR: DIR is a mount point (from /proc/mounts, without a fork).
mounted() {
    local _d m _r
    while read -r _d m _r; do [ "$m" != "$1" ] || return 0; done </proc/mounts
    return 1
}

# nap SECS: sleep without a fork and exec of sleep(1) (see above): a read
# that times out on a pipe that no one writes.
exec {NAP_FD}<> <(:)
nap() { read -r -t "$1" -u "$NAP_FD" _ || true; }

# run_test NAME IMPL [LABEL]: LABEL tells a rerun apart (for example the
# module parameters it loads with).
run_test() {
    local name=$1 impl=$2 tag=$2${3:+ $3}
    if [ ${#ONLY[@]} -gt 0 ] && [[ ! " ${ONLY[*]} " =~ " $name " ]]; then return; fi
    IMPL=$impl
    local log="$LOG/$name.${tag// /.}" t0=$SECONDS mark="rloop-test: begin $name [$tag]"
    local p0 p1 _l c0 c1 busy; read -r _l _l _l _l p0 </proc/loadavg
    cpu_ticks c0
    echo "$mark" >/dev/kmsg
    # Not in a condition: errexit is off in any command that is tested
    # with if, || or &&, subshells included, and every step must count.
    # A trace on its own descriptor shows the step that failed.
    (set -e; exec 9>"$log.trace"; BASH_XTRACEFD=9; PS4='+ ${EPOCHREALTIME} ${LINENO}: '; set -x
     "t_$name") >"$log" 2>&1
    local rc=$?
    # A splat in dmesg since the test began fails it, with the report.
    # Each report line and the 12 after it, 40 lines at most. busybox's
    # static dmesg and awk: 74 ms a test under TCG against 167 for
    # util-linux's and mawk (2026-12-07).
    local splat; splat=$(busybox dmesg | busybox awk -v m="$mark" -v re="$SPLAT_RE" '
        index($0, m) { on = 1; out = ""; n = 0; a = 0; next }
        on && n < 40 { if ($0 ~ re) a = 13; if (a > 0) { out = out $0 "\n"; n++; a-- } }
        END { printf "%s", out }')
    if [ -n "$splat" ]; then
        echo "FAIL: kernel splat in dmesg:" >>"$log"
        echo "$splat" >>"$log"
        [ $rc != 0 ] || rc=1
    fi
    read -r _l _l _l _l p1 </proc/loadavg
    cpu_ticks c1; busy_pct busy "$c0" "$c1"
    times+=("$((SECONDS - t0)) $(( (p1 - p0 + PID_MAX) % PID_MAX )) $busy $name [$tag]")
    if [ $rc = 77 ]; then
        # needs_config: this kernel lacks what the test needs.
        skipped+=("$name[$tag]"); echo "skip $name [$tag]: $(tail -n 1 "$log")"
    elif [ $rc = 0 ]; then
        pass=$((pass + 1)); echo "ok   $name [$tag] ($((SECONDS - t0))s)"
        # A passing test may report figures in lines that start "note: ".
        while IFS= read -r _l; do
            [[ $_l != 'note: '* ]] || echo "    | ${_l#note: }"
        done <"$log"
    else
        fail=$((fail + 1)); failed+=("$name[$tag]"); echo "FAIL $name [$tag] ($((SECONDS - t0))s)"
        sed 's/^/    | /' "$log"
        tail -n 3 "$log.trace" | sed 's/^/    | trace /'
    fi
    # Leave no mount, binding or module behind for the next test, nor the
    # scsi_debug disk of a test that failed before it removed it.
    ! mounted /tmp/mnt || umount /tmp/mnt
    if loaded; then
        losetup -D 2>/dev/null
        udevadm settle 2>/dev/null
        rmmod loop 2>/dev/null || echo "    | (loop could not be unloaded)"
    fi
    if [ -d /sys/module/scsi_debug ]; then
        umount /tmp/sd 2>/dev/null
        rmmod scsi_debug 2>/dev/null || echo "    | (scsi_debug could not be unloaded)"
    fi
}

# --- Tests --------------------------------------------------------------------

t_insmod_rmmod_10x() {
    for i in $(seq 10); do
        load || die "insmod #$i"
        loaded || die "no /sys/module/loop after insmod #$i"
        unload || die "rmmod #$i"
        ! loaded || die "/sys/module/loop left after rmmod #$i"
    done
}

t_proc_devices_and_nodes() {
    load
    grep -Eq '^ *7 loop$' /proc/devices || die "no '7 loop' in /proc/devices"
    sysfs_eq /sys/class/misc/loop-control/dev 10:237
    [ -c /dev/loop-control ] || die "/dev/loop-control is not a character device"
    [ "$(stat -c %t:%T /dev/loop-control)" = a:ed ] || die "/dev/loop-control is not 10:237"
    [ "$(modinfo -F name "${KO[$IMPL]}")" = loop ] || die "module name is not loop"
    unload
    ! grep -Eq '^ *7 loop$' /proc/devices || die "major 7 still registered after rmmod"
    [ ! -e /sys/class/misc/loop-control ] || die "loop-control still registered after rmmod"
}

t_max_loop_precreates() {
    load max_loop=4
    for i in 0 1 2 3; do
        sysfs_eq /sys/block/loop$i/dev 7:$i
        [ -b /dev/loop$i ] || die "/dev/loop$i missing"
        sysfs_eq /sys/block/loop$i/size 0
    done
    [ ! -e /sys/block/loop4 ] || die "loop4 exists with max_loop=4"
    # Ours has no /sys/module/loop/parameters yet (README, known differences).
    if [ "$IMPL" = c ]; then sysfs_eq /sys/module/loop/parameters/max_loop 4; fi
    unload
    [ ! -e /sys/block/loop0 ] || die "loop0 left after rmmod"
}

# Loaded without max_loop, either driver creates the kernel's
# CONFIG_BLK_DEV_LOOP_MIN_COUNT devices and shows that as max_loop, as
# loop_init(); more come on open (probe_on_open).
t_min_count_default() {
    insmod "${KO[$IMPL]}" $LOAD_ARGS
    local i
    for ((i = 0; i < MIN_COUNT; i++)); do
        sysfs_eq /sys/block/loop$i/dev 7:$i
    done
    [ ! -e /sys/block/loop$MIN_COUNT ] || die "loop$MIN_COUNT exists with CONFIG_BLK_DEV_LOOP_MIN_COUNT=$MIN_COUNT"
    # Ours has no /sys/module/loop/parameters yet (README, known differences).
    if [ "$IMPL" = c ]; then sysfs_eq /sys/module/loop/parameters/max_loop "$MIN_COUNT"; fi
    unload
}

t_max_part_minors() {
    load max_loop=2 max_part=3
    sysfs_eq /sys/block/loop0/dev 7:0
    sysfs_eq /sys/block/loop1/dev 7:4
    sysfs_eq /sys/block/loop1/ext_range 256
    unload
}

t_bad_params_refused() {
    for p in max_part=256 max_part=1000000 hw_queue_depth=0 hw_queue_depth=-1 \
             max_loop=-1 max_loop=1048577 "max_loop=65537 max_part=15"; do
        # shellcheck disable=SC2086
        if load $p 2>/dev/null; then unload; die "insmod $p succeeded"; fi
        ! loaded || die "module loaded after a refused insmod $p"
    done
}

t_hw_queue_depth() {
    load max_loop=1
    sysfs_eq /sys/block/loop0/queue/nr_requests 128
    grep -q '\[none\]' /sys/block/loop0/queue/scheduler || die "scheduler is not none"
    unload
    load max_loop=1 hw_queue_depth=7
    sysfs_eq /sys/block/loop0/queue/nr_requests 7
    if [ "$IMPL" = c ]; then sysfs_eq /sys/module/loop/parameters/hw_queue_depth 7; fi
    unload
}

t_ctl_add_remove_get_free() {
    load
    expect "ok 0" "$LOOPCTL" add 0
    expect "err EEXIST" "$LOOPCTL" add 0
    [ -b /dev/loop0 ] || die "/dev/loop0 not created by LOOP_CTL_ADD"
    expect "ok 5" "$LOOPCTL" add 5
    # A negative index adds the lowest free one.
    expect "ok 1" "$LOOPCTL" add -1
    expect "ok 2" "$LOOPCTL" add 0xffffffff
    # The argument is an int: the high bits of the long are dropped.
    expect "err EEXIST" "$LOOPCTL" add 0x100000005
    # Beyond the minor space: add_disk refuses it.
    expect "err EINVAL" "$LOOPCTL" add 1048576
    # GET_FREE gives the lowest unbound device.
    expect "ok 0" "$LOOPCTL" get-free
    expect "err ENODEV" "$LOOPCTL" remove 3
    expect "err EINVAL" "$LOOPCTL" remove -1
    expect "ok 0" "$LOOPCTL" remove 5
    expect "err ENODEV" "$LOOPCTL" remove 5
    [ ! -e /sys/block/loop5 ] || die "loop5 still in sysfs after remove"
    # An open device cannot be removed.
    exec 3</dev/loop1
    expect "err EBUSY" "$LOOPCTL" remove 1
    exec 3<&-
    expect "ok 0" "$LOOPCTL" remove 1
    expect "ok 0" "$LOOPCTL" remove 0
    # Removed devices free their index for GET_FREE and ADD.
    expect "ok 2" "$LOOPCTL" get-free
    expect "ok 0" "$LOOPCTL" remove 2
    expect "ok 0" "$LOOPCTL" get-free
    expect "ok 1" "$LOOPCTL" add -1
    # Unknown commands.
    expect "err ENOSYS" "$LOOPCTL" raw-ctl 0x4C83 0
    expect "err ENOSYS" "$LOOPCTL" raw-ctl 0x4C00 0
    unload
}

t_ctl_many_devices() {
    load
    for i in $(seq 0 15); do expect "ok $i" "$LOOPCTL" add $i; done
    [ "$(ls -d /sys/block/loop* | wc -l)" = 16 ] || die "not 16 devices"
    for i in $(seq 0 2 14); do expect "ok 0" "$LOOPCTL" remove $i; done
    expect "ok 1" "$LOOPCTL" get-free
    expect "ok 0" "$LOOPCTL" add -1
    expect "ok 2" "$LOOPCTL" add -1
    unload
    [ -z "$(ls -d /sys/block/loop* 2>/dev/null)" ] || die "devices left after rmmod"
}

t_probe_on_open() {
    load
    [ ! -e /sys/block/loop7 ] || die "loop7 exists before the open"
    mknod /tmp/probe-loop7 b 7 7
    # Opening a node with no disk creates the device, as the C probe does.
    exec 3</tmp/probe-loop7
    exec 3<&-
    rm -f /tmp/probe-loop7
    sysfs_eq /sys/block/loop7/dev 7:7
    expect "ok 0" "$LOOPCTL" remove 7
    unload
    # With max_loop given, probes beyond it create nothing.
    load max_loop=2
    mknod /tmp/probe-loop5 b 7 5
    if cat /tmp/probe-loop5 >/dev/null 2>&1; then die "open of 7:5 succeeded"; fi
    rm -f /tmp/probe-loop5
    [ ! -e /sys/block/loop5 ] || die "probe created loop5 beyond max_loop=2"
    unload
}

t_losetup_f() {
    load
    local dev
    dev=$(losetup -f) || die "losetup -f failed"
    [ "$dev" = /dev/loop0 ] || die "losetup -f printed '$dev'"
    [ -b "$dev" ] || die "$dev is not a block device"
    sysfs_eq /sys/block/loop0/dev 7:0
    dev=$(losetup -f) || die "second losetup -f failed"
    [ "$dev" = /dev/loop0 ] || die "unbound loop0 is not free: '$dev'"
    unload
}

t_unbound_io() {
    load max_loop=1
    sysfs_eq /sys/block/loop0/size 0
    # read(2) of a 0-byte device is end of file, not an error and not a hang.
    local out
    out=$(timeout 30 dd if=/dev/loop0 of=/dev/null bs=4k count=1 2>&1) || die "dd: $out"
    echo "$out" | grep -q '^0+0 records in' || die "dd read data: $out"
    out=$(timeout 30 dd if=/dev/zero of=/dev/loop0 bs=4k count=1 oflag=direct 2>&1) &&
        die "write to an unbound device succeeded"
    echo "$out" | grep -q 'No space left on device' || die "write: $out"
    # A data bio fails with EIO in the block core: the capacity is 0.
    local report='rloop_test: read of 4096 bytes from 7:0: -5' seen
    seen=$(dmesg | grep -c "$report" || true)
    out=$(timeout 30 insmod "$TEST_KO" read_minor=0 2>&1) && { rmmod rloop_test; die "read bio succeeded"; }
    echo "$out" | grep -q 'Input/output error' || die "read bio: $out"
    [ "$(dmesg | grep -c "$report")" -gt "$seen" ] || die "no rloop_test report"
    # An empty bio passes that check and reaches queue_rq: EIO, no hang.
    out=$(timeout 30 insmod "$TEST_KO" read_minor=0 read_bytes=0 2>&1) && { rmmod rloop_test; die "empty read bio succeeded"; }
    echo "$out" | grep -q 'Input/output error' || die "empty read bio: $out"
    unload
}

t_rmmod_while_open() {
    load max_loop=1
    exec 3</dev/loop0
    if rmmod loop 2>/dev/null; then die "rmmod succeeded with loop0 open"; fi
    exec 3<&-
    exec 3</dev/loop-control
    if rmmod loop 2>/dev/null; then die "rmmod succeeded with loop-control open"; fi
    exec 3<&-
    unload
}

t_device_ioctl_unbound() {
    load max_loop=1
    # Not a loop ioctl on /dev/loop0: the block layer's own ioctls still work.
    [ "$(blockdev --getsize64 /dev/loop0)" = 0 ] || die "BLKGETSIZE64 of unbound loop0 is not 0"
    [ "$(blockdev --getss /dev/loop0)" = 512 ] || die "logical block size of unbound loop0 is not 512"
    unload
}

# --- Attach, detach, status, buffered data ----------------------------------
# Backing files live on ext4 on the scratch disk (/dev/vda, cache=none).

SCRATCH=/tmp/scratch
LOOPCTL_DEV() { "$LOOPCTL" dev "$@"; }
# A file of N MiB of random data, each from a seed of its own. loopctl
# fill writes 64 MiB in 1.7 s in the guest, dd from the debug kernel's
# /dev/urandom in 4.3 s (writing zeros: 1.9 s).
mkimg() { "$LOOPCTL" fill "$1" "$2" $SRANDOM; }

t_attach_read_write() {
    load
    mkimg $SCRATCH/img 16
    local dev; dev=$(losetup -f --show $SCRATCH/img)
    [ "$dev" = /dev/loop0 ] || die "losetup -f --show printed $dev"
    [ "$(blockdev --getsize64 $dev)" = 16777216 ] || die "size $(blockdev --getsize64 $dev)"
    cmp $dev $SCRATCH/img || die "device reads differ from the file"
    mkimg $SCRATCH/data 4
    dd if=$SCRATCH/data of=$dev bs=64k seek=16 oflag=direct status=none
    dd if=$SCRATCH/data of=$dev bs=4k seek=2048 conv=fsync status=none
    cmp -n 4194304 $SCRATCH/data <(dd if=$SCRATCH/img bs=1M skip=1 count=4 status=none) || die "write 1 not in file"
    cmp -n 4194304 $SCRATCH/data <(dd if=$SCRATCH/img bs=1M skip=8 count=4 status=none) || die "write 2 not in file"
    sysfs_eq /sys/block/loop0/loop/backing_file $SCRATCH/img
    sysfs_eq /sys/block/loop0/loop/offset 0
    sysfs_eq /sys/block/loop0/loop/autoclear 0
    sysfs_eq /sys/block/loop0/ro 0
    losetup -l -n -O NAME,BACK-FILE | grep -q "^/dev/loop0 *$SCRATCH/img$" || die "losetup -l: $(losetup -l)"
    losetup -d $dev
    sysfs_eq /sys/block/loop0/size 0
    [ ! -e /sys/block/loop0/loop ] || die "loop/ sysfs left after detach"
    [ -z "$(losetup -l -n)" ] || die "losetup -l after detach: $(losetup -l)"
    unload
}

t_status_offset_ro() {
    load
    mkimg $SCRATCH/img 8
    local dev; dev=$(losetup -f --show -o 4096 --sizelimit 1048576 -r $SCRATCH/img)
    [ "$(losetup -l -n -O OFFSET,SIZELIMIT,RO,AUTOCLEAR $dev | tr -s ' ')" = " 4096 1048576 1 0" ] ||
        die "losetup -l: $(losetup -l -n -O OFFSET,SIZELIMIT,RO,AUTOCLEAR $dev)"
    [ "$(blockdev --getsize64 $dev)" = 1048576 ] || die "size"
    sysfs_eq /sys/block/loop0/ro 1
    sysfs_eq /sys/block/loop0/loop/offset 4096
    sysfs_eq /sys/block/loop0/loop/sizelimit 1048576
    cmp $dev <(dd if=$SCRATCH/img bs=4096 skip=1 count=256 status=none) || die "offset data differs"
    if dd if=/dev/zero of=$dev bs=4k count=1 oflag=direct status=none 2>/dev/null; then die "write to ro device worked"; fi
    expect "number=0 offset=4096 sizelimit=1048576 flags=1 name=$SCRATCH/img" LOOPCTL_DEV $dev get-status64
    LOOPCTL_DEV $dev get-status | grep -q "^number=0 offset=4096 flags=1 " || die "legacy GET_STATUS"
    # SET_STATUS64 changes offset and size limit; flags other than
    # AUTOCLEAR and PARTSCAN are ignored (AUTOCLEAR would detach the
    # device when loopctl closes it, so PARTSCAN here).
    expect "ok 0" LOOPCTL_DEV $dev set-status64 8192 0 $((8 | 16 | 2))
    expect "number=0 offset=8192 sizelimit=0 flags=9 name=$SCRATCH/img" LOOPCTL_DEV $dev get-status64
    [ "$(blockdev --getsize64 $dev)" = $((8 * 1048576 - 8192)) ] || die "size after SET_STATUS64"
    losetup -d $dev
    unload
}

# A read-only device never writes its backing file, as loop_handle_cmd():
# a write, a discard and a write-zeroes bio from a kernel module (the block
# core lets them through to a read-only disk, with a warning) each fail
# with an I/O error, in both modes, and the file is unchanged.
t_ro_device_bios() {
    load
    local dio dev op out
    for dio in off on; do
        mkimg $SCRATCH/img 8
        cp $SCRATCH/img $SCRATCH/orig
        dev=$(losetup -r --direct-io=$dio -f --show $SCRATCH/img)
        sysfs_eq /sys/block/${dev#/dev/}/ro 1
        [ "$(</sys/block/${dev#/dev/}/queue/discard_max_bytes)" -gt 0 ] ||
            die "dio=$dio: the device takes no discards"
        for op in write discard write_zeroes; do
            if out=$(timeout 30 insmod "$TEST_KO" write_minor=${dev#/dev/loop} write_op=$op 2>&1); then
                rmmod rloop_test
                die "dio=$dio: a $op bio to the read-only device succeeded"
            fi
            case "$out" in *"Input/output error"*) ;; *) die "dio=$dio: $op: $out" ;; esac
        done
        losetup -d $dev
        cmp $SCRATCH/img $SCRATCH/orig || die "dio=$dio: the read-only device wrote its file"
    done
    unload
}

t_autoclear() {
    load
    mkimg $SCRATCH/img 4
    losetup /dev/loop0 $SCRATCH/img
    exec 3</dev/loop0
    losetup -d /dev/loop0
    sysfs_eq /sys/block/loop0/size 8192
    sysfs_eq /sys/block/loop0/loop/autoclear 1
    # The detach is at the last close, whoever's: udev's probe after the
    # bind may still hold the device (CI saw the umount below leave it
    # bound, 2026-12-07), so it must be done before the close that is
    # meant to be the last.
    settle 30
    exec 3<&-
    sysfs_eq /sys/block/loop0/size 0
    # mount -o loop sets autoclear: umount detaches.
    truncate -s 64M $SCRATCH/fs.img
    mkfs.ext4 -q $SCRATCH/fs.img
    mkdir -p /tmp/mnt
    mount -o loop $SCRATCH/fs.img /tmp/mnt
    sysfs_eq /sys/block/loop0/loop/autoclear 1
    settle 30
    umount /tmp/mnt
    sysfs_eq /sys/block/loop0/size 0
    unload
}

t_ioctl_errors() {
    load max_loop=2
    mkimg $SCRATCH/img 1
    expect "err ENXIO" LOOPCTL_DEV /dev/loop0 get-status64
    expect "err ENXIO" LOOPCTL_DEV /dev/loop0 clr
    expect "err ENXIO" LOOPCTL_DEV /dev/loop0 set-capacity
    expect "err ENXIO" LOOPCTL_DEV /dev/loop0 set-block-size 4096
    expect "err EBADF" LOOPCTL_DEV /dev/loop0 set-fd-raw 1000
    expect "err EBADF" LOOPCTL_DEV /dev/loop0 set-fd /dev/loop0
    # A loop device backed by an unbound loop device.
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 set-fd /dev/loop1
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 configure $SCRATCH/img 0 0x40 0 0
    expect "ok 0" LOOPCTL_DEV /dev/loop0 set-fd $SCRATCH/img
    expect "err EBUSY" LOOPCTL_DEV /dev/loop0 set-fd $SCRATCH/img
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 get-status64-null
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 get-status-null
    expect "err EFAULT" LOOPCTL_DEV /dev/loop0 set-status64-null
    expect "err EFAULT" LOOPCTL_DEV /dev/loop0 set-status-null
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 set-block-size 1000
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 set-block-size 256
    # Past the block layer's largest block size (blk_validate_block_size):
    # a page, or 64 KiB with transparent huge pages (Debian's kernel).
    local bmax=4096
    ! grep -q '^CONFIG_TRANSPARENT_HUGEPAGE=y$' "$KDIR/.config" || bmax=65536
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 set-block-size $((bmax * 2))
    expect "ok 0" LOOPCTL_DEV /dev/loop0 set-block-size 4096
    sysfs_eq /sys/block/loop0/queue/logical_block_size 4096
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 raw 0x4CFF 0
    # Loop on a bound loop device works; a bound device cannot bind again.
    expect "ok 0" LOOPCTL_DEV /dev/loop1 set-fd /dev/loop0
    expect "err EBUSY" LOOPCTL_DEV /dev/loop0 set-fd /dev/loop1
    expect "ok 0" LOOPCTL_DEV /dev/loop1 clr
    expect "ok 0" LOOPCTL_DEV /dev/loop0 clr
    expect "err ENXIO" LOOPCTL_DEV /dev/loop0 clr
    # A cycle is refused by the chain check: read-only loop1 on read-only
    # loop0, then loop0 changed onto loop1 (EBADF: loop1's chain leads back
    # to loop0), and loop0 changed onto itself.
    losetup -r /dev/loop0 $SCRATCH/img
    losetup -r /dev/loop1 /dev/loop0
    expect "err EBADF" LOOPCTL_DEV /dev/loop0 change-fd /dev/loop1
    expect "err EBADF" LOOPCTL_DEV /dev/loop0 change-fd /dev/loop0
    sysfs_eq /sys/block/loop0/loop/backing_file $SCRATCH/img
    losetup -d /dev/loop1
    udevadm settle
    losetup -d /dev/loop0
    udevadm settle
    wait_until 30 "the devices to detach" bash -c '[ -z "$(losetup -l -n)" ]'
    sysfs_eq /sys/block/loop0/size 0
    # LOOP_CONFIGURE applies block size, offset, size limit and flags (not
    # AUTOCLEAR here: each loopctl call closes the device).
    expect "ok 0" LOOPCTL_DEV /dev/loop0 configure $SCRATCH/img 4096 1 4096 65536
    expect "number=0 offset=4096 sizelimit=65536 flags=1 name=" LOOPCTL_DEV /dev/loop0 get-status64
    sysfs_eq /sys/block/loop0/queue/logical_block_size 4096
    sysfs_eq /sys/block/loop0/size 128
    expect "ok 0" LOOPCTL_DEV /dev/loop0 clr
    unload
}

# A backing file whose filesystem refuses a fallocate mode (tmpfs has no
# FALLOC_FL_ZERO_RANGE) loses the matching limit at the first refusal, as
# lo_fallocate() clears it: write-zeroes with NOUNMAP (BLKZEROOUT) then
# zeroes by writing, and discards, which tmpfs does, keep theirs.
t_fallocate_unsupported() {
    load
    mkdir -p /tmp/tmpfs
    mount -t tmpfs -o size=32m none /tmp/tmpfs
    mkimg /tmp/tmpfs/img 4
    cp /tmp/tmpfs/img $SCRATCH/orig
    local dev; dev=$(losetup -f --show /tmp/tmpfs/img)
    local q=/sys/block/${dev#/dev/}/queue
    [ "$(<$q/write_zeroes_max_bytes)" != 0 ] || die "no write-zeroes limit to begin with"
    [ "$(<$q/discard_max_bytes)" != 0 ] || die "no discard limit to begin with"
    blkdiscard -z -o 0 -l 1MiB $dev || die "BLKZEROOUT failed"
    sysfs_eq $q/write_zeroes_max_bytes 0
    [ "$(<$q/discard_max_bytes)" != 0 ] || die "the discard limit went too"
    cmp -n 1048576 /dev/zero /tmp/tmpfs/img || die "the zeroed range is not zero"
    cmp -i 1048576 /tmp/tmpfs/img $SCRATCH/orig || die "data past the zeroed range changed"
    # Zeroing again goes by writing, and discards still punch holes.
    blkdiscard -z -o 1MiB -l 1MiB $dev || die "the second BLKZEROOUT failed"
    blkdiscard -o 2MiB -l 1MiB $dev || die "discard failed"
    cmp -n 3145728 /dev/zero /tmp/tmpfs/img || die "the zeroed and discarded ranges are not zero"
    cmp -i 3145728 /tmp/tmpfs/img $SCRATCH/orig || die "data past the discarded range changed"
    losetup -d $dev
    settle 30
    umount /tmp/tmpfs
    unload
}

t_change_fd() {
    load
    mkimg $SCRATCH/a 4
    mkimg $SCRATCH/b 4
    mkimg $SCRATCH/c 8
    expect "ok 0" "$LOOPCTL" add 0
    expect "ok 0" LOOPCTL_DEV /dev/loop0 set-fd $SCRATCH/a
    # Only a read-only device may change its file.
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 change-fd $SCRATCH/b
    expect "ok 0" LOOPCTL_DEV /dev/loop0 clr
    losetup -r /dev/loop0 $SCRATCH/a
    cmp /dev/loop0 $SCRATCH/a || die "data of a"
    expect "err EINVAL" LOOPCTL_DEV /dev/loop0 change-fd $SCRATCH/c
    expect "err EBADF" LOOPCTL_DEV /dev/loop0 raw 0x4C06 1000
    expect "ok 0" LOOPCTL_DEV /dev/loop0 change-fd $SCRATCH/b
    echo 3 >/proc/sys/vm/drop_caches
    cmp /dev/loop0 $SCRATCH/b || die "data after LOOP_CHANGE_FD is not b's"
    sysfs_eq /sys/block/loop0/loop/backing_file $SCRATCH/b
    losetup -d /dev/loop0
    expect "err ENXIO" LOOPCTL_DEV /dev/loop0 change-fd $SCRATCH/b
    unload
}

# Two read-only devices racing to change onto each other with
# LOOP_CHANGE_FD, round after round (loopctl swap-race): one may win a
# round, never both, which would be the cycle A -> B -> A (C serialises
# the chain check with loop_validate_mutex).
t_change_fd_race() {
    load
    mkimg $SCRATCH/a 1
    mkimg $SCRATCH/b 1
    local a b
    a=$(losetup -r -f --show $SCRATCH/a)
    b=$(losetup -r -f --show $SCRATCH/b)
    "$LOOPCTL" swap-race $a $b $SCRATCH/a $SCRATCH/b $(sz 1000 200) >/tmp/race.out 2>&1 ||
        die "$(cat /tmp/race.out)"
    echo "note: $(cat /tmp/race.out)"
    cmp $a $SCRATCH/a || die "$a reads wrong data after the race"
    cmp $b $SCRATCH/b || die "$b reads wrong data after the race"
    losetup -d $a $b
    unload
}

t_losetup_listing() {
    load
    mkimg $SCRATCH/img 2
    local dev; dev=$(losetup -r -f --show $SCRATCH/img)
    [ "$dev" = /dev/loop0 ] || die "--show of a read-only attach: $dev"
    sysfs_eq /sys/block/loop0/ro 1
    losetup -f $SCRATCH/img
    losetup -a | grep -q "^/dev/loop1: \[.*\]:[0-9]* ($SCRATCH/img)" || die "losetup -a: $(losetup -a)"
    losetup -J | grep -q '"name": *"/dev/loop1"' || die "losetup -J: $(losetup -J)"
    [ "$(losetup -j $SCRATCH/img | wc -l)" = 2 ] || die "losetup -j: $(losetup -j $SCRATCH/img)"
    losetup -D
    [ -z "$(losetup -a)" ] || die "losetup -D left: $(losetup -a)"
    unload
}

# cap_sys_admin_checks CMD...: how many failed capable(CAP_SYS_ADMIN)
# calls (ret != 0) were made under a block device ioctl while CMD ran, from
# the cap_capable tracepoint with its stack (memory accounting asks too, but
# not under an ioctl). CMD's own output is dropped.
cap_sys_admin_checks() {
    local tr=/sys/kernel/tracing
    [ -d $tr/events ] || mount -t tracefs none $tr
    echo 'cap == 21 && ret != 0' >$tr/events/capability/cap_capable/filter
    echo 1 >$tr/options/stacktrace
    echo >$tr/trace
    echo 1 >$tr/events/capability/cap_capable/enable
    "$@" >/dev/null 2>&1 || true
    echo 0 >$tr/events/capability/cap_capable/enable
    echo 0 >$tr/options/stacktrace
    # Each event line is followed by its stack, one " => function" a line.
    awk '/ cap_capable: / { ev = $0; ioctl = 0; next }
         / => blkdev_ioctl/ && ev != "" && !ioctl { ioctl = 1; n++; print ev > "/dev/stderr" }
         END { print n + 0 }' $tr/trace
}

t_unprivileged_eperm() {
    load max_loop=1
    mkimg $SCRATCH/img 2
    losetup /dev/loop0 $SCRATCH/img
    # udev resets the node's mode on the attach's change event.
    settle 30
    chmod 0666 /dev/loop0
    local as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
    # Opened read-only by an unprivileged user: status reads, no changes.
    expect "number=0 offset=0 sizelimit=0 flags=0 name=$SCRATCH/img" $as_nobody "$LOOPCTL" dev-ro /dev/loop0 get-status64
    expect "err EPERM" $as_nobody "$LOOPCTL" dev-ro /dev/loop0 set-status64 512 0 0
    expect "err EPERM" $as_nobody "$LOOPCTL" dev-ro /dev/loop0 set-block-size 4096
    expect "err EPERM" $as_nobody "$LOOPCTL" dev-ro /dev/loop0 set-capacity
    expect "err EPERM" $as_nobody "$LOOPCTL" dev-ro /dev/loop0 set-direct-io 0
    # Opened for writing, the same user may.
    expect "ok 0" $as_nobody "$LOOPCTL" dev /dev/loop0 set-capacity
    # CAP_SYS_ADMIN is asked only where C asks it, for a change from a
    # read-only opener: a denied capable() is what an LSM or audit logs,
    # so a status read must not ask. Counted by the cap_capable tracepoint.
    local n
    n=$(cap_sys_admin_checks $as_nobody "$LOOPCTL" dev-ro /dev/loop0 get-status64)
    [ "$n" = 0 ] || die "get-status64 from a read-only opener asked capable(CAP_SYS_ADMIN) $n times"
    n=$(cap_sys_admin_checks $as_nobody "$LOOPCTL" dev /dev/loop0 set-capacity)
    [ "$n" = 0 ] || die "set-capacity from a writer asked capable(CAP_SYS_ADMIN) $n times"
    # The count can fail: a change from a read-only opener asks.
    n=$(cap_sys_admin_checks $as_nobody "$LOOPCTL" dev-ro /dev/loop0 set-capacity)
    [ "$n" -ge 1 ] || die "set-capacity from a read-only opener asked capable(CAP_SYS_ADMIN) $n times, want >= 1"
    chmod 0660 /dev/loop0
    losetup -d /dev/loop0
    unload
}

t_rotational() {
    load
    mkimg $SCRATCH/img 2
    local dev; dev=$(losetup -f --show $SCRATCH/img)
    sysfs_eq /sys/block/loop0/queue/rotational "$(</sys/block/vda/queue/rotational)"
    # Writeback throttling is on by default, as on any disk (7.3's C
    # driver does not turn it off): 2 ms on a non-rotational queue.
    sysfs_eq /sys/block/loop0/queue/wbt_lat_usec 2000
    losetup -d $dev
    # A rotational backing device makes a rotational loop device.
    echo 1 >/sys/block/vda/queue/rotational
    dev=$(losetup -f --show $SCRATCH/img)
    sysfs_eq /sys/block/loop0/queue/rotational 1
    losetup -d $dev
    echo 0 >/sys/block/vda/queue/rotational
    unload
}

# wait_unbound loopN: a detach with the device open is deferred to its last
# close (udev's, for one): wait up to 10 s for it.
wait_unbound() {
    local i
    for i in $(seq 100); do
        [ -e /sys/block/$1/loop ] || return 0
        nap 0.1
    done
    die "$1 still bound 10 s after its detach"
}

# The uevents of loop0, step by step, are C's: which steps send a change
# event, how many, and which say RESIZE=1 or DISK_MEDIA_CHANGE=1.
t_uevents() {
    load
    mkimg $SCRATCH/a 4
    mkimg $SCRATCH/b 8
    # Both exist before the monitor starts: its first event is the attach's.
    [ -e /sys/block/loop0 ] || expect "ok 0" "$LOOPCTL" add 0
    [ -e /sys/block/loop1 ] || expect "ok 1" "$LOOPCTL" add 1
    settle 30
    udevadm monitor --kernel --property --subsystem-match=block >$SCRATCH/uevents 2>&1 &
    local mon=$!
    nap 1
    # uevent_mark N: the events so far are one step's. A synthetic change
    # event of loop1 with its own UUID separates them.
    uevent_mark() {
        settle 30
        echo "change 00000000-0000-0000-0000-00000000000$1" >/sys/block/loop1/uevent
    }
    # Detach, and wait for the deferred clear if udev still had it open.
    detach_wait() { losetup -d /dev/loop0; wait_unbound loop0; }
    losetup /dev/loop0 $SCRATCH/a; uevent_mark 1
    truncate -s 8M $SCRATCH/a
    losetup -c /dev/loop0; uevent_mark 2
    losetup -c /dev/loop0; uevent_mark 3
    detach_wait; uevent_mark 4
    losetup -r /dev/loop0 $SCRATCH/a; uevent_mark 5
    expect "ok 0" LOOPCTL_DEV /dev/loop0 change-fd $SCRATCH/b; uevent_mark 6
    detach_wait; uevent_mark 7
    nap 1
    kill $mon; wait $mon 2>/dev/null || true
    # One word per event of loop0 from the kernel: its action, and whether
    # it says RESIZE=1 or DISK_MEDIA_CHANGE=1; "|" for a mark. Events that
    # user space asked for (SYNTH_UUID: udev's watch after a writer
    # closes) are not the driver's.
    local got
    got=$(awk 'BEGIN { RS = "" } {
            dev = ""; act = ""; flag = ""; synth = ""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^DEVPATH=/) { n = split($i, p, "/"); dev = p[n] }
                else if ($i ~ /^ACTION=/) act = substr($i, 8)
                else if ($i == "RESIZE=1") flag = flag ":resize"
                else if ($i == "DISK_MEDIA_CHANGE=1") flag = flag ":media"
                else if ($i ~ /^SYNTH_UUID=/) synth = substr($i, 12)
            }
            if (dev == "loop1" && synth ~ /^00000000-/) printf "| "
            else if (dev == "loop0" && synth == "") printf "%s%s ", act, flag
        }' $SCRATCH/uevents)
    # As loop.c: LOOP_CONFIGURE sends one change once its events are no
    # longer suppressed; LOOP_SET_CAPACITY a resize event, or a plain change
    # when the size stays; LOOP_CHANGE_FD one change; a detach a change and
    # a media change.
    local want="change | change:resize | change | change change:media | change | change | change change:media | "
    [ "$got" = "$want" ] || die "uevents: want '$want', got '$got'"
    unload
}

t_read_past_eof() {
    load
    mkimg $SCRATCH/img 4
    local dev; dev=$(losetup -f --show $SCRATCH/img)
    # The file shrinks under the device: reads past its end are zero-filled
    # and fail, reads before it still work.
    truncate -s 2M $SCRATCH/img
    echo 3 >/proc/sys/vm/drop_caches
    dd if=$dev of=/dev/null bs=1M count=2 iflag=direct status=none || die "read before the end failed"
    if dd if=$dev of=/dev/null bs=1M skip=3 count=1 iflag=direct status=none 2>/dev/null; then
        die "read past the end of the file succeeded"
    fi
    losetup -d $dev
    unload
}

# The backing file shrinks under the device, so that a read ends in the
# middle of a request: the part in the file is read, and the request
# requeued for the rest (lo_complete_rq()), which then has nothing to read
# and fails with EIO. Buffered and direct.
t_short_read() {
    load
    local dio dev size=$((1048576 - 4096))
    for dio in off on; do
        mkimg $SCRATCH/img 1
        cp $SCRATCH/img $SCRATCH/orig
        dev=$(losetup -f --show --direct-io=$dio $SCRATCH/img)
        truncate -s $size $SCRATCH/img
        # The last 8 KiB: 4 KiB in the file, 4 KiB past its new end.
        if dd if=$dev of=/dev/null bs=8192 skip=127 count=1 iflag=direct status=none 2>/tmp/dd.err; then
            die "direct-io=$dio: a read past the file's end succeeded"
        fi
        grep -q "Input/output error" /tmp/dd.err || die "direct-io=$dio: not EIO: $(cat /tmp/dd.err)"
        # The 4 KiB before the end, alone, and everything before it.
        cmp <(dd if=$dev bs=4096 skip=254 count=1 iflag=direct status=none) \
            <(dd if=$SCRATCH/orig bs=4096 skip=254 count=1 status=none) ||
            die "direct-io=$dio: the last 4 KiB in the file read wrong"
        # Everything before the end, with direct reads of the device.
        cmp -n $size <(dd if=$dev bs=4096 count=$((size / 4096)) iflag=direct status=none) \
            $SCRATCH/orig || die "direct-io=$dio: the device and the file differ (direct reads)"
        # And through its page cache: head reads no further than asked, so
        # the page past the end fails alone. Not with transparent huge
        # pages (Debian's kernel): the block device's page cache then reads
        # large folios, and the one across the end fails whole, on C as on
        # ours.
        if ! grep -q '^CONFIG_TRANSPARENT_HUGEPAGE=y$' "$KDIR/.config"; then
            echo 3 >/proc/sys/vm/drop_caches
            cmp -n $size <(head -c $size $dev) $SCRATCH/orig ||
                die "direct-io=$dio: the device and the file differ"
        fi
        losetup -d $dev
        settle 30
    done
    unload
}

t_fio_verify() {
    load
    truncate -s 64M $SCRATCH/img
    local dev; dev=$(losetup -f --show $SCRATCH/img)
    # Mixed sizes at queue depth 16 make multi-bio requests after merging.
    fio --name=v --filename=$dev --size=32M --rw=randwrite --bsrange=4k-1M \
        --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 \
        --verify_state_save=0 --invalidate=0 --randrepeat=1 --minimal >/tmp/fio.out 2>&1 ||
        die "fio verify failed: $(tail -5 /tmp/fio.out)"
    # Byte for byte against the file, with the caches dropped.
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ"
    losetup -d $dev
    unload
}

t_set_capacity() {
    load
    mkimg $SCRATCH/img 4
    local dev; dev=$(losetup -f --show $SCRATCH/img)
    truncate -s 12M $SCRATCH/img
    [ "$(blockdev --getsize64 $dev)" = 4194304 ] || die "size changed before LOOP_SET_CAPACITY"
    losetup -c $dev
    [ "$(blockdev --getsize64 $dev)" = 12582912 ] || die "size after losetup -c: $(blockdev --getsize64 $dev)"
    losetup -d $dev
    unload
}

t_block_size_4k() {
    load
    mkimg $SCRATCH/img 8
    local dev; dev=$(losetup -f --show -b 4096 $SCRATCH/img)
    sysfs_eq /sys/block/loop0/queue/logical_block_size 4096
    sysfs_eq /sys/block/loop0/queue/physical_block_size 4096
    cmp $dev $SCRATCH/img || die "4k device reads differ"
    # LOOP_SET_BLOCK_SIZE(0): the default, 512 on a buffered device.
    expect "ok 0" LOOPCTL_DEV $dev set-block-size 0
    sysfs_eq /sys/block/loop0/queue/logical_block_size 512
    losetup -d $dev
    sysfs_eq /sys/block/loop0/queue/logical_block_size 512
    # On a direct I/O device the default is the backing file's direct I/O
    # size, and direct I/O stays on, as loop_default_blocksize(): a file on
    # a 4 KiB-sector disk.
    SD_ARGS=sector_size=4096 scsi_debug_fs 32 >/dev/null
    mkimg /tmp/sd/img 8
    dev=$(losetup --direct-io=on -f --show /tmp/sd/img)
    sysfs_eq /sys/block/loop0/loop/dio 1
    sysfs_eq /sys/block/loop0/queue/logical_block_size 4096
    expect "ok 0" LOOPCTL_DEV $dev set-block-size 0
    sysfs_eq /sys/block/loop0/queue/logical_block_size 4096
    sysfs_eq /sys/block/loop0/loop/dio 1
    cmp $dev /tmp/sd/img || die "4k direct device reads differ"
    # udev may still hold the device open after the block size's change
    # event: the detach then waits for its last close (autoclear, as C's),
    # and the file on /tmp/sd stays open until then (CI once: "umount:
    # /tmp/sd: target is busy").
    losetup -d $dev
    wait_unbound loop0
    umount /tmp/sd
    rmmod scsi_debug
    unload
}

t_partitions() {
    load
    truncate -s 64M $SCRATCH/part.img
    printf 'label: dos\n,16M,L\n,,L\n' | sfdisk -q $SCRATCH/part.img
    local dev; dev=$(losetup -f --show -P $SCRATCH/part.img)
    udevadm settle 2>/dev/null || true
    [ -b ${dev}p1 ] && [ -b ${dev}p2 ] || die "no partitions: $(ls /dev/loop0*)"
    sysfs_eq /sys/block/loop0/loop/partscan 1
    sysfs_eq /sys/block/loop0/loop0p1/size 32768
    losetup -d $dev
    udevadm settle 2>/dev/null || true
    [ ! -e /sys/block/loop0/loop0p1 ] || die "partition left after detach"
    unload
}

# fs_roundtrip [LOSETUP_OPTION...]: ext4 and xfs on a loop device set up
# with the options: mkfs, a tree and a big file written, a clean fsck, the
# data read back byte for byte after dropping caches, and fstrim punching
# holes in the backing file.
fs_roundtrip() {
    local fs dev
    mkdir -p /tmp/mnt
    for fs in ext4 xfs; do
        truncate -s 320M $SCRATCH/$fs.img
        dev=$(losetup -f --show "$@" $SCRATCH/$fs.img)
        if [ "$*" = "--direct-io=on" ]; then sysfs_eq /sys/block/${dev#/dev/}/loop/dio 1; fi
        if [ $fs = ext4 ]; then mkfs.ext4 -q $dev; else mkfs.xfs -q -f $dev; fi
        mount $dev /tmp/mnt
        cp -a /usr/share/doc/bash /tmp/mnt/
        dd if=/dev/urandom of=/tmp/mnt/big bs=1M count=12 status=none
        sha256sum /tmp/mnt/big >/tmp/big.sum
        umount /tmp/mnt
        if [ $fs = ext4 ]; then fsck.ext4 -fn $dev >/dev/null || die "fsck.ext4"; else xfs_repair -n $dev >/dev/null 2>&1 || die "xfs_repair"; fi
        echo 3 >/proc/sys/vm/drop_caches
        mount $dev /tmp/mnt
        diff -r /usr/share/doc/bash /tmp/mnt/bash || die "$fs: tree differs"
        (cd /tmp/mnt && sha256sum -c --quiet /tmp/big.sum) || die "$fs: big file differs"
        # Discard punches holes in the backing file.
        local before after
        rm /tmp/mnt/big; sync
        before=$(du -k $SCRATCH/$fs.img | cut -f1)
        fstrim /tmp/mnt
        after=$(du -k $SCRATCH/$fs.img | cut -f1)
        [ "$after" -lt "$before" ] || die "$fs: fstrim did not shrink the file ($before -> $after KiB)"
        umount /tmp/mnt
        losetup -d $dev
    done
}

t_ext4_xfs() {
    load
    fs_roundtrip
    unload
}

t_attach_storm() {
    load
    mkimg $SCRATCH/img 1
    local p
    for p in 1 2 3 4; do
        (for r in $(seq 10); do
            d=$(losetup -f --show $SCRATCH/img) || { echo "attach failed"; continue; }
            echo attached
            losetup -d "$d" || echo "detach of $d failed"
        done) >/tmp/storm.$p 2>&1 &
    done
    wait
    # losetup retries a device another process took first: every attach
    # must succeed.
    local n; n=$(cat /tmp/storm.[1-4] | grep -c '^attached$')
    [ "$n" = 40 ] || die "$n of 40 attaches: $(grep -hv '^attached$' /tmp/storm.[1-4] | sort | uniq -c)"
    [ -z "$(losetup -l -n)" ] || die "devices left bound: $(losetup -l)"
    unload
}

t_rmmod_bound() {
    load
    mkimg $SCRATCH/img 1
    losetup -f $SCRATCH/img
    if rmmod loop 2>/dev/null; then die "rmmod succeeded with a bound device"; fi
    losetup -D
    unload
}

# --- Direct I/O ---------------------------------------------------------------

LO_FLAGS_DIRECT_IO=16

# flags_of DEV: lo_flags from LOOP_GET_STATUS64.
flags_of() { "$LOOPCTL" dev "$1" get-status64 | sed -n 's/.* flags=\([0-9]*\) .*/\1/p'; }

t_dio_attach_modes() {
    load
    mkimg $SCRATCH/img 16
    mkimg $SCRATCH/data 4
    local bs off dev
    for bs in 512 4096; do
        for off in 0 1048576; do
            dev=$(losetup --direct-io=on -f --show -b $bs -o $off $SCRATCH/img)
            sysfs_eq /sys/block/loop0/loop/dio 1
            sysfs_eq /sys/block/loop0/queue/logical_block_size $bs
            [ "$(losetup -l -n -O DIO $dev | tr -d ' ')" = 1 ] || die "losetup -l DIO: $(losetup -l -n -O DIO $dev)"
            [ $(( $(flags_of $dev) & LO_FLAGS_DIRECT_IO )) -ne 0 ] || die "GET_STATUS64 flags without DIRECT_IO"
            cmp $dev <(tail -c +$((off + 1)) $SCRATCH/img) || die "bs=$bs off=$off: device reads differ"
            # One write from O_DIRECT, one through the device's page cache.
            dd if=$SCRATCH/data of=$dev bs=64k seek=16 oflag=direct status=none || die "direct write"
            dd if=$SCRATCH/data of=$dev bs=1M seek=8 conv=fsync status=none || die "buffered write"
            echo 3 >/proc/sys/vm/drop_caches
            cmp -n 4194304 $SCRATCH/data <(tail -c +$((off + 1048576 + 1)) $SCRATCH/img) || die "bs=$bs off=$off: write 1 not in file"
            cmp -n 4194304 $SCRATCH/data <(tail -c +$((off + 8388608 + 1)) $SCRATCH/img) || die "bs=$bs off=$off: write 2 not in file"
            cmp $dev <(tail -c +$((off + 1)) $SCRATCH/img) || die "bs=$bs off=$off: device and file differ"
            losetup -d $dev
            mkimg $SCRATCH/img 16
        done
    done
    # Off and on again on a bound device; an O_DIRECT backing file turns it on.
    dev=$(losetup -f --show $SCRATCH/img)
    sysfs_eq /sys/block/loop0/loop/dio 0
    losetup --direct-io=on $dev || die "losetup --direct-io=on on a bound device"
    sysfs_eq /sys/block/loop0/loop/dio 1
    losetup --direct-io=off $dev || die "losetup --direct-io=off"
    sysfs_eq /sys/block/loop0/loop/dio 0
    expect "ok 0" LOOPCTL_DEV $dev set-direct-io 7
    sysfs_eq /sys/block/loop0/loop/dio 1
    losetup -d $dev
    expect "ok 0" LOOPCTL_DEV /dev/loop0 set-fd-direct $SCRATCH/img
    sysfs_eq /sys/block/loop0/loop/dio 1
    cmp /dev/loop0 $SCRATCH/img || die "O_DIRECT backing file: reads differ"
    expect "ok 0" LOOPCTL_DEV /dev/loop0 clr
    unload
}

t_dio_misaligned_offset() {
    load
    mkimg $SCRATCH/img 8
    # Asked for at attach: dropped silently, as C does.
    local dev; dev=$(losetup --direct-io=on -f --show -o 256 $SCRATCH/img)
    sysfs_eq /sys/block/loop0/loop/dio 0
    [ $(( $(flags_of $dev) & LO_FLAGS_DIRECT_IO )) -eq 0 ] || die "DIRECT_IO flag with a misaligned offset"
    # Asked for on the bound device: EINVAL, and the device keeps working.
    if losetup --direct-io=on $dev 2>/dev/null; then die "losetup --direct-io=on succeeded"; fi
    expect "err EINVAL" LOOPCTL_DEV $dev set-direct-io 1
    sysfs_eq /sys/block/loop0/loop/dio 0
    cmp -n $((8 * 1048576 - 512)) $dev <(tail -c +257 $SCRATCH/img) || die "reads differ after the refusal"
    mkimg $SCRATCH/data 1
    dd if=$SCRATCH/data of=$dev bs=64k seek=16 oflag=direct status=none || die "write after the refusal"
    cmp -n 1048576 $SCRATCH/data <(tail -c +$((256 + 1048576 + 1)) $SCRATCH/img) || die "write not in file"
    # SET_STATUS64 to a misaligned offset turns direct I/O off.
    losetup -d $dev
    dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    sysfs_eq /sys/block/loop0/loop/dio 1
    expect "ok 0" LOOPCTL_DEV $dev set-status64 256 0 0
    sysfs_eq /sys/block/loop0/loop/dio 0
    losetup -d $dev
    unload
}

t_dio_min_size() {
    load
    mkimg $SCRATCH/img 8
    # A backing device of 4096-byte sectors: direct I/O needs a block size
    # of at least 4096, which is also the default when it is asked for.
    losetup -b 4096 /dev/loop0 $SCRATCH/img
    expect "ok 1" "$LOOPCTL" add 1
    expect "ok 0" LOOPCTL_DEV /dev/loop1 configure /dev/loop0 512 $LO_FLAGS_DIRECT_IO 0 0
    sysfs_eq /sys/block/loop1/loop/dio 0
    expect "err EINVAL" LOOPCTL_DEV /dev/loop1 set-direct-io 1
    expect "ok 0" LOOPCTL_DEV /dev/loop1 set-block-size 4096
    expect "ok 0" LOOPCTL_DEV /dev/loop1 set-direct-io 1
    sysfs_eq /sys/block/loop1/loop/dio 1
    cmp /dev/loop1 $SCRATCH/img || die "reads through two devices differ"
    # A block size below the minimum turns it off again.
    expect "ok 0" LOOPCTL_DEV /dev/loop1 set-block-size 512
    sysfs_eq /sys/block/loop1/loop/dio 0
    expect "ok 0" LOOPCTL_DEV /dev/loop1 clr
    expect "ok 0" LOOPCTL_DEV /dev/loop1 configure /dev/loop0 0 $LO_FLAGS_DIRECT_IO 0 0
    sysfs_eq /sys/block/loop1/loop/dio 1
    sysfs_eq /sys/block/loop1/queue/logical_block_size 4096
    cmp /dev/loop1 $SCRATCH/img || die "reads through two devices differ (4096)"
    expect "ok 0" LOOPCTL_DEV /dev/loop1 clr
    losetup -d /dev/loop0
    unload
}

t_dio_fio_verify() {
    load
    # 128 MiB holds both jobs (the psync ones end at 124 MiB); the cmp
    # at the end reads it all, 8 s for 256 MiB.
    truncate -s 128M $SCRATCH/img
    local dev; dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    sysfs_eq /sys/block/loop0/loop/dio 1
    # 4k and 1M mixed, random reads and writes; libaio at depth 32, then
    # four psync jobs through the device's page cache, whose writeback
    # merges into requests of several bios.
    fio --name=aio --filename=$dev --size=$(sz 48M 24M) --rw=randrw --bssplit=4k/50:1M/50 \
        --ioengine=libaio --iodepth=32 --direct=1 --verify=crc32c --do_verify=1 \
        --verify_state_save=0 --invalidate=0 --randrepeat=1 --minimal >/tmp/fio.out 2>&1 ||
        die "fio libaio verify failed: $(tail -5 /tmp/fio.out)"
    fio --name=psync --filename=$dev --size=12M --offset=64M --offset_increment=16M --numjobs=4 \
        --rw=randrw --bssplit=4k/50:1M/50 --ioengine=psync --direct=0 --verify=crc32c \
        --do_verify=1 --verify_state_save=0 --invalidate=0 --randrepeat=1 --minimal >/tmp/fio.out 2>&1 ||
        die "fio psync verify failed: $(tail -5 /tmp/fio.out)"
    sync
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ"
    losetup -d $dev
    unload
}

# fio_verify_bg DEV SIZE DEPTH: a fio random write and verify job on DEV
# in the background (libaio, O_DIRECT, 4k to 1M), output in /tmp/fio.out.
fio_verify_bg() {
    timeout 600 fio --name=v --filename=$1 --size=$2 --rw=randwrite --bssplit=4k/60:64k/30:1M/10 \
        --ioengine=libaio --iodepth=$3 --direct=1 --verify=crc32c --do_verify=1 \
        --verify_state_save=0 --invalidate=0 --randrepeat=1 --minimal >/tmp/fio.out 2>&1 &
}

# fio_verified PID DEV N WHAT MIN: fio_verify_bg's job (PID) passed while
# N (at least MIN) WHAT were done, and DEV and its file agree.
fio_verified() {
    local pid=$1 dev=$2 n=$3 what=$4 min=$5
    wait "$pid" || die "fio verify failed after $n $what: $(tail -5 /tmp/fio.out)"
    [ "$n" -ge "$min" ] || die "only $n $what during fio"
    echo "note: $n $what"
    echo 3 >/proc/sys/vm/drop_caches
    cmp "$dev" $SCRATCH/img || die "device and file differ"
}

t_dio_toggle_under_fio() {
    load
    truncate -s 64M $SCRATCH/img
    local dev; dev=$(losetup -f --show $SCRATCH/img)
    fio_verify_bg $dev $(sz 48M 24M) 16; local fio_pid=$! n=0
    while kill -0 $fio_pid 2>/dev/null; do
        LOOPCTL_DEV $dev set-direct-io $((n % 2 == 0)) >/dev/null || die "toggle $n failed"
        n=$((n + 1))
        nap 0.2
    done
    fio_verified $fio_pid $dev $n toggles 4
    losetup -d $dev
    unload
}

t_dio_ext4_xfs() {
    load
    fs_roundtrip --direct-io=on
    unload
}

# A filesystem on the device submits some of its reads while it holds its
# own locks: at the last close of a file written to, ext4 discards the
# file's preallocated blocks (ext4_release_file, its i_data_sem held), and
# reads the block bitmap for that if it is not cached. The backing file is
# on ext4 too, and its direct read takes its i_data_sem, of the same lock
# class, when its extent is not cached: from queue_rq, in the closing
# task, lockdep reports recursive locking (found in stacked_three_loops,
# losetup closing a file on the middle ext4). So rloop submits nothing
# from queue_rq to the backing file for a device a filesystem holds, and
# here none of the closes' reads; run_test fails the test on a lockdep
# report, on either driver, and the files verify. Each file is 96 KiB,
# more than ext4's stream threshold (64 KiB), so that its blocks come
# with preallocated ones of its own.
t_upper_fs_locks() {
    load
    truncate -s 64M $SCRATCH/img
    local dev; dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    mkfs.ext4 -q $dev
    mkdir -p /tmp/mnt
    mount $dev /tmp/mnt
    mkimg $SCRATCH/data 1
    local i h0=0 r0 reads=0
    for i in 1 2 3 4; do
        exec 5>/tmp/mnt/f$i
        head -c 96K $SCRATCH/data >&5
        sync
        # Twice: the first drop only clears the referenced bit of the
        # backing file's cached extents, the second frees them.
        echo 3 >/proc/sys/vm/drop_caches
        echo 3 >/proc/sys/vm/drop_caches
        # Reads one at a time, far from the bitmaps, so that the busy hold
        # left by the writeback's deep queue (the next 16 requests to the
        # worker) is over when the close reads: on main before the rule,
        # each close's read was submitted from queue_rq.
        dd if=$dev of=/dev/null bs=4k skip=8192 count=32 iflag=direct status=none
        [ $IMPL = c ] || h0=$(nowait_stat loop0 nowait_hits)
        r0=$(read_ios loop0)
        exec 5>&-
        reads=$((reads + $(read_ios loop0) - r0))
        if [ $IMPL = rloop ]; then
            [ "$(nowait_stat loop0 nowait_hits)" = "$h0" ] ||
                die "close $i: the filesystem's reads submitted from queue_rq"
        fi
    done
    echo "note: the 4 closes read $reads times"
    [ $reads -ge 4 ] || die "the 4 closes read $reads times: no bitmap read"
    umount /tmp/mnt
    mount $dev /tmp/mnt
    for i in 1 2 3 4; do
        cmp -n 98304 /tmp/mnt/f$i $SCRATCH/data || die "file $i differs"
    done
    umount /tmp/mnt
    losetup -d $dev
    unload
}

# After a change of the backing file, its next buffered read updates its
# access time (relatime): file_accessed() at the end of filemap_read(),
# whether the read hit the page cache or not. On ext4 the update dirties
# the inode in a transaction of the backing filesystem, which may wait for
# the journal and read the inode's block: work for the worker, not for
# queue_rq, where the submitter's stack and locks are. So rloop leaves that
# read to the worker (atime_deferred) and tries the next ones from the page
# cache again. On both drivers the read updates the atime.
t_atime_reads() {
    load
    mkimg $SCRATCH/img 8
    local dev; dev=$(losetup --direct-io=off -f --show $SCRATCH/img)
    udevadm settle
    # The backing file's pages cached, so that the reads below hit.
    cat $SCRATCH/img >/dev/null
    # A change of the file itself (no event for the loop device, so no
    # reader of it from udev), which moves its mtime past its atime.
    dd if=/dev/urandom of=$SCRATCH/img bs=4k count=1 seek=16 conv=notrunc oflag=direct \
        status=none
    local a0 a1 m t0 d0
    a0=$(stat -c %x $SCRATCH/img) m=$(stat -c %y $SCRATCH/img)
    [[ ! $a0 > $m ]] || die "atime $a0 after mtime $m: no update due"
    if [ $IMPL = rloop ]; then
        # (Read before the first check, which a module without the counter
        # fails: "?" then.)
        t0=$(tried_cached loop0) d0=$(nowait_stat loop0 atime_deferred 2>/dev/null || echo "?")
    fi
    # 4 KiB requests of the device, past its page cache.
    dd if=$dev of=/dev/null bs=4k count=1 skip=512 iflag=direct status=none
    a1=$(stat -c %x $SCRATCH/img)
    [ "$a1" != "$a0" ] || die "the first read after the change left the atime at $a0"
    if [ $IMPL = rloop ]; then
        [ "$(tried_cached loop0)" = "$t0" ] ||
            die "the read that updates the atime was tried from queue_rq"
        [ "$(nowait_stat loop0 atime_deferred)" = "$((d0 + 1))" ] ||
            die "atime_deferred did not count the read"
        # The update made, the next reads are read from the page cache in
        # queue_rq again (all four hit: the file was read whole above).
        local c0; c0=$(nowait_stat loop0 cached_reads)
        dd if=$dev of=/dev/null bs=4k count=4 skip=600 iflag=direct status=none
        [ "$(nowait_stat loop0 cached_reads)" = $((c0 + 4)) ] ||
            die "the reads after the update were not read from the page cache in queue_rq"
    fi
    [ "$(stat -c %x $SCRATCH/img)" = "$a1" ] || die "the atime moved again with no change"
    cmp $dev $SCRATCH/img || die "device and file differ"
    losetup -d $dev
    unload
}

# A buffered device read through its own page cache in 4 KiB requests (each
# small enough for rloop's page-cache reads from queue_rq) by a reader that
# holds a lock of the same class as the one the backing file's read takes:
# ext4 on the device on an ext4 file (the upper file's readahead holds its
# mapping's invalidate_lock, and so would the backing file's), then the
# device on a block device (a buffered read of the loop device holds its
# bdev inode's i_rwsem, and so does one of the backing disk). Reads on the
# submitter's stack must not take the second: the data is the file's, and
# dmesg has no lockdep report (run_test checks it).
# tried_cached DEV: the buffered reads rloop tried from DEV's page cache in
# queue_rq, hits and misses.
tried_cached() {
    echo $(($(nowait_stat $1 cached_reads) + $(nowait_stat $1 cached_misses)))
}
t_stacked_page_cache_reads() {
    load
    mkdir -p /tmp/mnt
    truncate -s 64M $SCRATCH/img
    local dev; dev=$(losetup --direct-io=off -f --show $SCRATCH/img)
    echo 4 >/sys/block/${dev#/dev/}/queue/max_sectors_kb
    mkfs.ext4 -q $dev
    mount $dev /tmp/mnt
    cp -a /usr/share/doc/bash /tmp/mnt/
    dd if=/dev/urandom of=/tmp/big bs=1M count=4 status=none
    cp /tmp/big /tmp/mnt/big
    sync
    echo 3 >/proc/sys/vm/drop_caches
    diff -r /usr/share/doc/bash /tmp/mnt/bash || die "ext4 on ext4: tree differs"
    cmp /tmp/mnt/big /tmp/big || die "ext4 on ext4: big file differs"
    umount /tmp/mnt
    # rloop tried these reads from queue_rq (the test is not vacuous).
    local tried
    if [ $IMPL = rloop ]; then
        tried=$(tried_cached loop0)
        echo "note: ext4 on ext4: $tried reads tried from the page cache in queue_rq"
        [ "$tried" -ge 100 ] || die "ext4 on ext4: only $tried reads tried from queue_rq"
    fi
    losetup -d $dev
    # On a 4 KiB-sector disk, so that the device's blocks are the disk's.
    local sd; sd=$(scsi_debug_disk 16 sector_size=4096)
    dd if=/dev/urandom of=$SCRATCH/data bs=1M count=16 status=none
    dd if=$SCRATCH/data of=/dev/$sd bs=1M oflag=direct status=none
    dev=$(losetup --direct-io=off -f --show /dev/$sd)
    echo 4 >/sys/block/${dev#/dev/}/queue/max_sectors_kb
    udevadm settle
    echo 3 >/proc/sys/vm/drop_caches
    [ $IMPL != rloop ] || tried=$(tried_cached loop0)
    cmp $dev $SCRATCH/data || die "loop on a block device: reads differ"
    # ... and none of these: a block device's reads take its i_rwsem.
    if [ $IMPL = rloop ]; then
        tried=$(($(tried_cached loop0) - tried))
        [ "$tried" = 0 ] || die "loop on a block device: $tried reads tried from queue_rq"
    fi
    losetup -d $dev
    udevadm settle
    rmmod scsi_debug
    unload
}

# scsi_debug_disk MB [PARAM...]: loads scsi_debug with a disk of MB MiB and
# the scsi_debug PARAMs (sector_size=4096, for example); prints its name.
scsi_debug_disk() {
    local mb=$1; shift
    if [ -f "$KDIR/drivers/scsi/scsi_debug.ko" ]; then
        insmod "$KDIR/lib/crc/crc-t10dif.ko" 2>/dev/null || true
        insmod "$KDIR/drivers/scsi/scsi_debug.ko" dev_size_mb=$mb "$@" >&2 || die "scsi_debug"
    else
        # A distribution kernel: scsi_debug and what it needs are modules.
        modprobe scsi_debug dev_size_mb=$mb "$@" >&2 || die "scsi_debug"
    fi
    udevadm settle 2>/dev/null || true
    local sd; sd=$(ls /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*/block/ | head -1)
    [ -b /dev/$sd ] || die "no scsi_debug disk"
    echo $sd
}

# scsi_debug_fs MB [MKFS_OPTION...]: a scsi_debug disk of MB MiB with ext4
# on it, mounted at /tmp/sd; prints the disk's name. SD_ARGS: more
# scsi_debug parameters (sector_size=4096, for example).
scsi_debug_fs() {
    local mb=$1; shift
    local sd; sd=$(scsi_debug_disk $mb ${SD_ARGS:-}) || return 1
    mkfs.ext4 -q -F "$@" /dev/$sd >&2
    mkdir -p /tmp/sd && mount -o noatime /dev/$sd /tmp/sd >&2
    echo $sd
}

# 32-bit callers (compat_ioctl), as loop.c's lo_compat_ioctl(): the legacy
# struct loop_info is converted to and from its 32-bit layout, not a byte is
# written past it, a field too large for it is EOVERFLOW, the other
# commands pass through, and one the driver does not know is ENOTTY. Every
# command here is the 32-bit program's; loopctl (64-bit) cross-checks.
t_compat_ioctl() {
    load
    local l32=$REPO/target/loop32 dev=/dev/loop0
    [ -x $l32 ] || die "no $l32"
    [ -e /sys/block/loop0 ] || expect "ok 0" "$LOOPCTL" add 0
    settle 30
    mkimg $SCRATCH/a 4
    mkimg $SCRATCH/b 4
    expect "ok" $l32 $dev set-fd $SCRATCH/a
    expect "ok" $l32 $dev set 4096 8 compat-name
    expect "number=0 offset=4096 sizelimit=0 flags=8 name=compat-name" LOOPCTL_DEV $dev get-status64
    local d i ids
    read -r d i < <(stat -c '%d %i' $SCRATCH/a)
    ids="device=$d inode=$i rdevice=0"
    if [ "$d" -gt 65535 ] || [ "$i" -gt 4294967295 ]; then
        expect "err EOVERFLOW" $l32 $dev get
    else
        expect "ok number=0 $ids offset=4096 flags=8 name=compat-name" $l32 $dev get
    fi
    expect "ok number=0 $ids offset=4096 sizelimit=0 flags=8 name=compat-name" $l32 $dev get64
    # LO_FLAGS_PARTSCAN stays: LOOP_SET_STATUS* cannot clear it.
    expect "ok" $l32 $dev set64 8192 1048576 0
    expect "ok number=0 $ids offset=8192 sizelimit=1048576 flags=8 name=compat-name" $l32 $dev get64
    sysfs_eq /sys/block/loop0/size 2048
    # An offset the 32-bit struct cannot hold.
    expect "ok" $l32 $dev set64 $((1 << 31)) 0 0
    expect "err EOVERFLOW" $l32 $dev get
    expect "ok" $l32 $dev set64 0 0 0
    truncate -s 8M $SCRATCH/a
    expect "ok" $l32 $dev capacity
    sysfs_eq /sys/block/loop0/size 16384
    expect "ok" $l32 $dev block-size 4096
    sysfs_eq /sys/block/loop0/queue/logical_block_size 4096
    expect "ok" $l32 $dev direct-io 0
    sysfs_eq /sys/block/loop0/loop/dio 0
    expect "err ENOTTY" $l32 $dev unknown
    expect "ok" $l32 $dev clr
    wait_unbound loop0
    expect "err ENXIO" $l32 $dev get
    # LOOP_CONFIGURE, read-only, then LOOP_CHANGE_FD onto a file of the size.
    truncate -s 4M $SCRATCH/a
    expect "ok" $l32 $dev configure $SCRATCH/a 4096 1
    sysfs_eq /sys/block/loop0/queue/logical_block_size 4096
    sysfs_eq /sys/block/loop0/ro 1
    expect "ok" $l32 $dev change-fd $SCRATCH/b
    read -r d i < <(stat -c '%d %i' $SCRATCH/b)
    expect "ok number=0 device=$d inode=$i rdevice=0 offset=0 sizelimit=0 flags=1 name=$SCRATCH/a" $l32 $dev get64
    cmp $dev $SCRATCH/b || die "$dev does not read b after LOOP_CHANGE_FD"
    expect "ok" $l32 $dev clr
    wait_unbound loop0
    unload
}

# Each device has a workqueue of its own, loopN, as C's: a three-level
# stack (loop2 on loop1 on loop0 on a file, all buffered) written through
# from a cgroup whose memory.max is far below what it writes, so that its
# page cache is reclaimed as it goes. Workers of all three queues run, the
# write finishes and verifies, and nothing is killed. Ours also gives each
# queue a rescuer thread (WQ_MEM_RECLAIM), kworker/R-loopN; C's have none.
t_workqueues() {
    load
    local mb; mb=$(sz 256 64)
    truncate -s ${mb}M $SCRATCH/img
    mkimg $SCRATCH/data $mb
    local d0 d1 d2
    d0=$(losetup --direct-io=off -f --show $SCRATCH/img)
    d1=$(losetup --direct-io=off -f --show $d0)
    d2=$(losetup --direct-io=off -f --show $d1)
    settle 30
    local n
    if [ $IMPL = rloop ]; then
        local comms; comms=$(cat /proc/[0-9]*/comm 2>/dev/null)
        for n in ${d0#/dev/} ${d1#/dev/} ${d2#/dev/}; do
            grep -qx "kworker/R-$n" <<<"$comms" || die "no rescuer thread kworker/R-$n"
        done
        ! grep -q "^kworker/R-loop_io" <<<"$comms" || die "a module-wide rescuer kworker/R-loop_io is left"
    fi
    # The memory controller only, not charge_cgroup's io as well (the
    # cgroup tests leave it on): with io, the writer's bios carry its blkcg
    # down every level, so the page cache of all three is charged to this
    # 16 MiB cgroup (as in C, which charges the memcg of the bio's blkcg)
    # and the writer is OOM-killed, on C and ours alike. This test is
    # about forward progress, not charging (cgroup_charging is).
    cgroup_controllers +memory -io
    local cg=/sys/fs/cgroup/rloop-wq
    rmdir $cg 2>/dev/null || true
    mkdir $cg
    echo 16M >$cg/memory.max
    [ ! -e $cg/memory.swap.max ] || echo 0 >$cg/memory.swap.max
    # The writer, in the cgroup.
    (echo $BASHPID >$cg/cgroup.procs &&
        exec timeout 600 dd if=$SCRATCH/data of=$d2 bs=1M conv=fsync status=none) &
    local w=$! seen=" " q f
    while kill -0 $w 2>/dev/null; do
        # Once a worker of each queue was seen, the scan would only take
        # the CPU from the write.
        [[ $seen == *" ${d0#/dev/} "* && $seen == *" ${d1#/dev/} "* && $seen == *" ${d2#/dev/} "* ]] && break
        # An unbound worker's name ends in the workqueue it last ran. Read
        # in the shell: a pipeline of forks each round would slow the write.
        for f in /proc/[0-9]*/comm; do
            q=; read -r q 2>/dev/null <"$f" || continue
            case "$q" in kworker/R-*) continue ;; kworker/*[-+]loop*) q=loop${q##*[-+]loop} ;; *) continue ;; esac
            case "$seen" in *" $q "*) ;; *) seen="$seen$q " ;; esac
        done
        nap 0.2
    done
    local rc=0; wait $w || rc=$?
    local peak oom
    peak=$(cat $cg/memory.peak 2>/dev/null || echo ?)
    oom=$(sed -n 's/^oom_kill //p' $cg/memory.events)
    echo "note: ${mb} MiB through three levels in a 16 MiB cgroup (peak $peak); workers seen for:$seen"
    echo $$ >/sys/fs/cgroup/cgroup.procs
    rmdir $cg
    [ $rc = 0 ] || die "the write through $d2 failed ($rc)"
    [ "$oom" = 0 ] || die "$oom OOM kills in the cgroup"
    for n in ${d0#/dev/} ${d1#/dev/} ${d2#/dev/}; do
        case "$seen" in *" $n "*) ;; *) die "no worker ran $n's work items (seen:$seen)" ;; esac
    done
    echo 3 >/proc/sys/vm/drop_caches
    cmp $d2 $SCRATCH/data || die "$d2 and the data written differ"
    cmp $SCRATCH/img $SCRATCH/data || die "the backing file and the data written differ"
    losetup -d $d2; losetup -d $d1; losetup -d $d0
    rm -f $SCRATCH/data
    unload
}

# An ioctl may hold the device lock across a queue freeze, which waits for
# slow backing I/O. A task killed while it waits for that lock gives up at
# once, as with C's mutex_lock_killable() (lo_open, the ioctls): here the
# opener of a status read, behind LOOP_SET_DIRECT_IO, which waits for a
# read that a scsi_debug disk answers in 10 s (6 outside the long tier:
# the waiter is killed 3 s in).
t_killable_waits() {
    load
    local sd; sd=$(scsi_debug_disk 16)
    local dev; dev=$(losetup -f --show --direct-io=on /dev/$sd)
    sysfs_eq /sys/block/${dev#/dev/}/loop/dio 1
    settle 30
    local hz sdd=/sys/bus/pseudo/drivers/scsi_debug
    hz=$(sed -n "s/^CONFIG_HZ=//p" "$KDIR/.config")
    local delay; delay=$(sz 10 6)
    echo $((delay * hz)) >$sdd/delay
    dd if=$dev of=/dev/null bs=4096 count=1 iflag=direct status=none &
    local io=$!
    nap 1
    LOOPCTL_DEV $dev set-direct-io 0 >/dev/null &
    local holder=$!
    nap 1
    "$LOOPCTL" dev-ro $dev get-status64 >/dev/null &
    local waiter=$!
    nap 1
    kill -0 $waiter 2>/dev/null || die "the status read did not wait for the lock"
    local t0=$SECONDS
    kill -9 $waiter
    wait $waiter 2>/dev/null || true
    local waited=$((SECONDS - t0)) held=1
    kill -0 $holder 2>/dev/null || held=0
    # Both end within $delay s; then the device can go, whatever failed.
    local io_rc=0 holder_rc=0
    wait $io || io_rc=$?
    wait $holder || holder_rc=$?
    echo 1 >$sdd/delay
    echo "note: the killed waiter exited in $waited s"
    [ $waited -le 2 ] || die "the killed waiter took $waited s to exit"
    [ $held = 1 ] || die "LOOP_SET_DIRECT_IO ended first: the lock was not held"
    [ $io_rc = 0 ] || die "the slow read failed"
    [ $holder_rc = 0 ] || die "LOOP_SET_DIRECT_IO failed"
    sysfs_eq /sys/block/${dev#/dev/}/loop/dio 0
    losetup -d $dev
    settle 30
    rmmod scsi_debug
    unload
}

# A backing file on a disk that fails every request (fail_make_request on a
# scsi_debug disk), in both modes: loop reads and writes fail with an I/O
# error; once the disk works again, the data written before verifies, the
# device takes writes again, and it detaches. (ext4 without a journal, so
# that the failed writes do not abort the backing filesystem.)
t_io_error() {
    needs_config FAIL_MAKE_REQUEST FAULT_INJECTION_DEBUG_FS
    local sd
    sd=$(scsi_debug_fs 64 -O ^has_journal)
    mkimg /tmp/sd/img 8
    cp /tmp/sd/img $SCRATCH/orig
    sync
    load
    mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
    local fi=/sys/kernel/debug/fail_make_request
    echo 100 >$fi/probability; echo -1 >$fi/times; echo 0 >$fi/verbose
    local dio dev rd wr
    # The NOWAIT-off rerun changes what direct I/O does only (buffered
    # writes, and reads that miss the page cache, as here, go to the
    # worker either way): outside the long tier it runs direct I/O only.
    local modes="off on"
    [ "$TIER" = long ] || [[ " $LOAD_ARGS " != *" nowait=0 "* ]] || modes=on
    for dio in $modes; do
        dev=$(losetup --direct-io=$dio -f --show /tmp/sd/img)
        sysfs_eq /sys/block/loop0/loop/dio $([ $dio = on ] && echo 1 || echo 0)
        # Nothing cached: the reads reach the disk. udev's probe of the new
        # device reads the file too, so it must be done first.
        settle 30
        echo 3 >/proc/sys/vm/drop_caches
        echo 1 >/sys/block/$sd/make-it-fail
        rd=0 wr=0
        dd if=$dev of=/dev/null bs=64k count=1 skip=3 iflag=direct status=none 2>/tmp/dd.err || rd=1
        dd if=/dev/zero of=$dev bs=64k count=1 seek=5 oflag=direct conv=fsync status=none 2>>/tmp/dd.err || wr=1
        echo 0 >/sys/block/$sd/make-it-fail
        [ $rd = 1 ] || die "dio=$dio: read through the failing disk succeeded"
        [ $wr = 1 ] || die "dio=$dio: write through the failing disk succeeded"
        grep -q "Input/output error" /tmp/dd.err || die "dio=$dio: not an I/O error: $(cat /tmp/dd.err)"
        echo 3 >/proc/sys/vm/drop_caches
        # All but the 64 KiB whose write failed is as it was.
        cmp -n 327680 $dev $SCRATCH/orig || die "dio=$dio: data before the failed write differs"
        cmp -i 393216 $dev $SCRATCH/orig || die "dio=$dio: data after the failed write differs"
        # The device is still usable: the failed block can be written again.
        dd if=$SCRATCH/orig of=$dev bs=64k count=1 skip=5 seek=5 oflag=direct conv=fsync status=none ||
            die "dio=$dio: write after the fault"
        echo 3 >/proc/sys/vm/drop_caches
        cmp $dev $SCRATCH/orig || die "dio=$dio: data after the rewrite differs"
        losetup -d $dev || die "dio=$dio: detach after the fault"
    done
    unload
    umount /tmp/sd
    rmmod scsi_debug
}

# --- Faults -------------------------------------------------------------------

# The backing filesystem fills up: writes fail with ENOSPC, in both modes;
# what was written before still reads back, and nothing hangs. (A 48 MiB
# filesystem in the long tier, 24 in the others: filling it is most of
# the test's time.)
t_enospc() {
    local mib; mib=$(sz 48 24)
    scsi_debug_fs $mib >/dev/null
    load
    local dio dev out
    for dio in off on; do
        truncate -s 128M /tmp/sd/img
        dev=$(losetup --direct-io=$dio -f --show /tmp/sd/img)
        mkimg $SCRATCH/data 4
        dd if=$SCRATCH/data of=$dev bs=1M oflag=direct status=none || die "dio=$dio: first write"
        out=$(timeout 120 dd if=/dev/zero of=$dev bs=1M seek=4 count=$((mib * 2)) oflag=direct conv=fsync 2>&1) &&
            die "dio=$dio: $((mib * 2)) MiB fitted in a $mib MiB filesystem"
        echo "$out" | grep -q 'No space left on device' || die "dio=$dio: not ENOSPC: $out"
        echo 3 >/proc/sys/vm/drop_caches
        cmp -n 4194304 $dev $SCRATCH/data || die "dio=$dio: data before the fault differs"
        losetup -d $dev || die "dio=$dio: detach"
        rm /tmp/sd/img
    done
    unload
    umount /tmp/sd
    rmmod scsi_debug
}

# wait_until SECONDS WHAT CMD...: poll CMD every 0.1 s until it succeeds.
wait_until() {
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@"; do
        [ $SECONDS -lt $end ] || die "waited ${secs}s for $what"
        nap 0.1
    done
}
# write_ios DEV: write requests completed on a block device.
# (The block statistics are read by the shell: no exec, see "Under TCG".)
write_ios() { local s; read -r -a s </sys/block/$1/stat && echo "${s[4]}"; }
# written_since DEV N: DEV has completed more than N writes.
written_since() { [ "$(write_ios "$1")" -gt "$2" ]; }
# read_ios DEV, reads_since DEV N: the same for reads.
read_ios() { local s; read -r -a s </sys/block/$1/stat && echo "${s[0]}"; }
reads_since() { [ "$(read_ios "$1")" -gt "$2" ]; }
unbound() { [ "$(</sys/block/$1/size)" = 0 ]; }

# LOOP_CLR_FD (50 times) or losetup -d while fio has 32 writes in
# flight, in both modes: the detach is deferred (AUTOCLEAR), writes go on
# completing, fio's writes and reads all verify, and the device detaches
# at the last close.
# The test holds the device open too: fio closes and reopens it between
# its write and its verify phases, which would detach it in between.
# fio's writes are capped at 256 a second, so that they last 8 s or more
# on any kernel: uncapped, Debian's kernel finished them before the
# first LOOP_CLR_FD, and the test saw no write after the detach.
t_detach_under_load() {
    load
    local how dio dev fio_pid w0 w1 i t0 more size
    for how in clr losetup; do
        for dio in off on; do
            truncate -s 128M $SCRATCH/img
            dev=$(losetup --direct-io=$dio -f --show $SCRATCH/img)
            exec 8<$dev
            w0=$(write_ios loop0)
            # 256 writes a second: 5 MiB is 5 s, for the 12 LOOP_CLR_FD
            # of clr (2 to 4 s) to run while fio writes; losetup -d is one
            # call, and 3 MiB leaves fio 2 s of writes after it.
            size=$(sz 32M 5M)
            [ $how = clr ] || size=$(sz 32M 3M)
            timeout 600 fio --name=v --filename=$dev --size=$size --rw=randwrite --bs=4k \
                --ioengine=libaio --iodepth=32 --direct=1 --verify=crc32c --do_verify=1 \
                --rate_iops=,256 --verify_state_save=0 --invalidate=0 --randrepeat=1 \
                --minimal >/tmp/fio.out 2>&1 &
            fio_pid=$!
            # The counters are not reset by a detach: wait for fio's first.
            wait_until 120 "fio's first write" written_since loop0 $w0
            if [ $how = clr ]; then expect "ok 0" LOOPCTL_DEV $dev clr; else losetup -d $dev; fi
            w1=$(write_ios loop0)
            # Again and again: a LOOP_CLR_FD on a device open elsewhere
            # only sets AUTOCLEAR, and must never fail I/O (a passing
            # unbound state did, found by CI). Read-only: LOOP_CLR_FD
            # needs no write access, as in C.
            if [ $how = clr ]; then
                t0=$SECONDS more=$(sz 49 12)
                for i in $(seq $more); do expect "ok 0" "$LOOPCTL" dev-ro $dev clr; done
                echo "note: dio=$dio: $more more LOOP_CLR_FD in $((SECONDS - t0)) s, $(($(write_ios loop0) - w1)) writes"
            fi
            t0=$SECONDS
            sysfs_eq /sys/block/loop0/loop/autoclear 1
            sysfs_eq /sys/block/loop0/loop/backing_file $SCRATCH/img
            wait $fio_pid || die "$how dio=$dio: fio failed after the detach: $(tail -5 /tmp/fio.out)"
            echo "note: $how dio=$dio: fio ended $((SECONDS - t0)) s later"
            written_since loop0 $w1 || die "$how dio=$dio: no write completed after the detach"
            ! unbound loop0 || die "$how dio=$dio: detached while still open"
            exec 8<&-
            wait_until 30 "the deferred detach" unbound loop0
            [ ! -e /sys/block/loop0/loop ] || die "$how dio=$dio: loop/ left after the detach"
        done
    done
    unload
}

# --- NOWAIT submission (rloop only) -------------------------------------------

# nowait_stat DEV NAME: a counter of DEV's rloop debugfs directory.
nowait_stat() {
    local v
    mounted /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
    v=$(</sys/kernel/debug/loop/$1/$2) || return
    echo "$v"
}
# idle DEV: DEV has no request in flight. quiesce DEV: udev's queue is
# drained (its probe after a writer closed the device reads it) and DEV is
# idle, so that counters taken at submission (the NOWAIT hits, the worker's
# I/Os) and at completion (done_ios) can be compared.
idle() { local r w; read -r r w </sys/block/$1/inflight && [ "$r" = 0 ] && [ "$w" = 0 ]; }
quiesce() { settle 30; wait_until 30 "$1 to be idle" idle "$1"; }
# done_ios DEV: reads plus writes DEV has completed.
done_ios() { local s; read -r -a s </sys/block/$1/stat && echo $((s[0] + s[4])); }
# fio_rw DEV SIZE [FIO OPTION...]: random 4k reads and writes, libaio, O_DIRECT, depth 16,
# verified.
fio_rw() {
    timeout 600 fio --name=rw --filename=$1 --size=$2 --rw=randrw --bs=4k --ioengine=libaio \
        --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_state_save=0 \
        --invalidate=0 --randrepeat=1 --minimal "${@:3}" >/tmp/fio.out 2>&1 ||
        die "fio failed: $(tail -5 /tmp/fio.out)"
}

# cached_io_counts PHASE: after a phase of reads of the buffered loop0,
# checks and prints its counters against C0 M0 W0 N0 (taken before): each
# read is done from the page cache in queue_rq or runs in the worker (after
# a miss, or because it was not tried), once. Sets CACHED and MISSES.
cached_io_counts() {
    local worker n
    CACHED=$(($(nowait_stat loop0 cached_reads) - C0)); MISSES=$(($(nowait_stat loop0 cached_misses) - M0))
    worker=$(($(nowait_stat loop0 worker_ios) - W0)); n=$(($(done_ios loop0) - N0))
    echo "note: $1: $n I/Os, $CACHED read from the page cache, $MISSES misses, $worker in the worker"
    [ $((CACHED + worker)) = "$n" ] || die "$1: $CACHED cached + $worker worker I/Os != $n I/Os"
    [ "$MISSES" -le "$worker" ] || die "$1: $MISSES misses but $worker worker I/Os"
}
cached_io_marks() {
    udevadm settle
    C0=$(nowait_stat loop0 cached_reads); M0=$(nowait_stat loop0 cached_misses)
    W0=$(nowait_stat loop0 worker_ios); N0=$(done_ios loop0)
}

# Small buffered reads are read from the backing file's page cache in
# queue_rq when it holds them (IOCB_NOWAIT | IOCB_NOIO); a miss goes to the
# worker, which reads the page in. The data is the file's in every case,
# and the loop/nowait switch turns it off.
t_cached_reads() {
    load
    local mb; mb=$(sz 64 32)
    mkimg $SCRATCH/img $mb
    local dev; dev=$(losetup --direct-io=off -f --show $SCRATCH/img)
    sysfs_eq /sys/block/loop0/loop/dio 0
    # The whole file in the page cache: every 4 KiB read is a hit.
    cat $SCRATCH/img >/dev/null
    cached_io_marks
    dd if=$dev iflag=direct bs=4k status=none | cmp - $SCRATCH/img ||
        die "device and file differ, file cached"
    cached_io_counts "file cached"
    [ $((CACHED * 10)) -ge $((mb * 256 * 9)) ] || die "only $CACHED of $((mb * 256)) reads from the page cache"
    # Random reads and writes, verified; then the file out of the page
    # cache, and the same reads verified again: those that miss go to the
    # worker.
    local b0 batches; b0=$(nowait_stat loop0 worker_batches)
    fio_rw $dev $(sz 32M 8M)
    # Buffered writes to a regular file go to the batching worker.
    batches=$(($(nowait_stat loop0 worker_batches) - b0))
    [ "$batches" -ge 1 ] || die "buffered writes: no run of the batching worker"
    # The device's writes left dirty pages in the file's cache, which
    # drop_caches keeps: write them back first.
    sync
    echo 3 >/proc/sys/vm/drop_caches
    cached_io_marks
    fio_rw $dev $(sz 32M 8M) --verify_only
    cached_io_counts "random reads, file not cached"
    [ "$MISSES" -ge 100 ] || die "only $MISSES misses reading an uncached file"
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ"
    # Off: every read goes to the worker.
    echo 0 >/sys/block/loop0/loop/nowait
    echo 3 >/proc/sys/vm/drop_caches
    cached_io_marks
    dd if=$dev iflag=direct bs=4k count=1024 status=none | cmp - <(head -c 4M $SCRATCH/img) ||
        die "device and file differ, nowait off"
    cached_io_counts "nowait off"
    [ "$CACHED" = 0 ] && [ "$MISSES" = 0 ] || die "cached reads with nowait off"
    losetup -d $dev
    unload
}

# Direct reads and writes go from queue_rq to the backing file with
# IOCB_NOWAIT: on a file with its blocks allocated, most I/Os are NOWAIT
# hits and few go to the worker. The device's loop/nowait switch turns it
# off (then every I/O goes to the worker), and takes only booleans; so
# does the nowait module parameter. Writeback throttling is on.
t_nowait_paths() {
    # No cap on NOWAIT submissions in flight (the default is 1: see
    # t_nowait_depth), so that every direct request tries it.
    load nowait_depth=0
    local mb; mb=$(sz 64 16)
    mkimg $SCRATCH/img $mb
    local dev; dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    sysfs_eq /sys/block/loop0/loop/nowait 1
    # Writeback throttling is on, as in C (t_rotational checks its value):
    # it must not keep these direct writes from being NOWAIT hits below.
    local wbt; wbt=$(cat /sys/block/loop0/queue/wbt_lat_usec 2>&1) || true
    case "$wbt" in 0|*"Invalid argument"*) die "wbt_lat_usec: $wbt" ;; esac
    local h0 w0 f0 n0 hits worker fb n
    quiesce loop0
    h0=$(nowait_stat loop0 nowait_hits); w0=$(nowait_stat loop0 worker_ios)
    f0=$(nowait_stat loop0 eagain_fallbacks); n0=$(done_ios loop0)
    fio_rw $dev $(sz 32M 8M)
    quiesce loop0
    hits=$(($(nowait_stat loop0 nowait_hits) - h0)); worker=$(($(nowait_stat loop0 worker_ios) - w0))
    fb=$(($(nowait_stat loop0 eagain_fallbacks) - f0)); n=$(($(done_ios loop0) - n0))
    echo "note: nowait on: $n I/Os, $hits NOWAIT hits, $fb EAGAIN fallbacks, $worker in the worker"
    # Each I/O is a NOWAIT hit or runs in the worker, once (after an
    # EAGAIN fallback, or because a write was waiting there already).
    [ $((hits + worker)) = "$n" ] || die "$hits hits + $worker worker I/Os != $n I/Os"
    [ "$fb" -le "$worker" ] || die "$fb fallbacks but $worker worker I/Os"
    [ $((hits * 2)) -ge "$n" ] || die "only $hits NOWAIT hits of $n I/Os"

    echo 0 >/sys/block/loop0/loop/nowait
    sysfs_eq /sys/block/loop0/loop/nowait 0
    ! echo 2 >/sys/block/loop0/loop/nowait 2>/dev/null || die "nowait took 2"
    ! echo yes >/sys/block/loop0/loop/nowait 2>/dev/null || die "nowait took yes"
    sysfs_eq /sys/block/loop0/loop/nowait 0
    quiesce loop0
    h0=$(nowait_stat loop0 nowait_hits); w0=$(nowait_stat loop0 worker_ios); n0=$(done_ios loop0)
    local b0 batches; b0=$(nowait_stat loop0 worker_batches)
    fio_rw $dev $(sz 32M 8M)
    quiesce loop0
    hits=$(($(nowait_stat loop0 nowait_hits) - h0)); worker=$(($(nowait_stat loop0 worker_ios) - w0))
    n=$(($(done_ios loop0) - n0)); batches=$(($(nowait_stat loop0 worker_batches) - b0))
    echo "note: nowait off: $n I/Os, $hits NOWAIT hits, $worker in the worker, in $batches batches"
    [ "$hits" = 0 ] || die "$hits NOWAIT hits with nowait off"
    [ "$worker" = "$n" ] || die "$worker worker I/Os for $n I/Os with nowait off"
    # Direct reads and writes go to the batching worker, each run of which
    # was queued by a request that found its list empty.
    [ "$batches" -ge 1 ] && [ "$batches" -le "$worker" ] ||
        die "$batches batches for $worker worker I/Os"
    echo on >/sys/block/loop0/loop/nowait
    sysfs_eq /sys/block/loop0/loop/nowait 1
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ"
    # Reads through the device's page cache: readahead plugs its requests,
    # and queue_rq runs from the plug's flush. With 4 KiB requests a plug
    # holds many, each submitted with NOWAIT from the flush: the backing
    # filesystem's bios must not go into the plug being flushed (that
    # oopsed in blk_add_rq_to_plug).
    echo 4 >/sys/block/loop0/queue/max_sectors_kb
    h0=$(nowait_stat loop0 nowait_hits)
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ, read in 4 KiB requests"
    hits=$(($(nowait_stat loop0 nowait_hits) - h0))
    echo "note: page-cache reads in 4 KiB requests: $hits NOWAIT hits"
    [ "$hits" -ge $((mb * 64)) ] || die "only $hits NOWAIT hits reading $mb MiB in 4 KiB requests"
    losetup -d $dev
    unload

    load nowait=0
    dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    sysfs_eq /sys/block/loop0/loop/nowait 0
    fio_rw $dev 8M
    [ "$(nowait_stat loop0 nowait_hits)" = 0 ] || die "NOWAIT hits with nowait=0"
    losetup -d $dev
    unload
}

# nowait_fault_dev N: loads rloop and sets dev to loop0 with direct I/O on
# a 64 MiB image, with every N-th NOWAIT submission failing with EAGAIN,
# and no cap on NOWAIT submissions in flight.
nowait_fault_dev() {
    load nowait_depth=0
    mkimg $SCRATCH/img 64
    dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    nowait_stat loop0 nowait_hits >/dev/null # mounts debugfs
    echo "$1" >/sys/kernel/debug/loop/loop0/fail_nowait_every
}

# Every fallback path under fio verify: debugfs fail_nowait_every makes
# every third NOWAIT submission fail with EAGAIN, in turn at once and when
# the I/O ends (after it was done). The requests go to the worker, and
# every read and write verifies. Then a sparse file, whose first writes
# allocate and so get EAGAIN from the filesystem itself.
t_nowait_forced_eagain() {
    local dev; nowait_fault_dev 3
    fio_verify_bg $dev $(sz 48M 24M) 32; local fio_pid=$!
    wait $fio_pid || die "fio verify failed with forced EAGAIN: $(tail -5 /tmp/fio.out)"
    local hits fb worker
    hits=$(nowait_stat loop0 nowait_hits); fb=$(nowait_stat loop0 eagain_fallbacks)
    worker=$(nowait_stat loop0 worker_ios)
    echo "note: forced: $hits NOWAIT hits, $fb EAGAIN fallbacks, $worker in the worker"
    [ "$fb" -gt 100 ] || die "only $fb fallbacks with every third NOWAIT failing"
    [ "$hits" -gt "$fb" ] || die "$hits hits for $fb fallbacks"
    [ "$worker" -ge "$fb" ] || die "$worker worker I/Os for $fb fallbacks"
    echo 0 >/sys/kernel/debug/loop/loop0/fail_nowait_every
    # Every submission's place was given back, whichever way it went.
    sysfs_eq /sys/kernel/debug/loop/loop0/nowait_inflight 0
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ"
    losetup -d $dev

    rm -f $SCRATCH/img; truncate -s 64M $SCRATCH/img
    dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    local f0; f0=$(nowait_stat loop0 eagain_fallbacks)
    fio_verify_bg $dev $(sz 48M 24M) 32; fio_pid=$!
    wait $fio_pid || die "fio verify failed on a sparse file: $(tail -5 /tmp/fio.out)"
    fb=$(($(nowait_stat loop0 eagain_fallbacks) - f0))
    echo "note: sparse file: $fb EAGAIN fallbacks"
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ (sparse)"
    losetup -d $dev
    unload
}

# nowait_depth N (the module parameter, default 1, then debugfs
# nowait_depth): NOWAIT is tried only while the request's hardware queue
# holds at most N requests, itself included, and at most N NOWAIT
# submissions are in flight. At fio depth 32, nowait_inflight, sampled all
# through, never exceeds N; at depth 1 nearly every I/O tries NOWAIT;
# batches of 32 submitted at once (one plug) go to the worker, all but a
# few, and start the busy hold: the next 16 requests at depth 1 go to
# the worker too, but not most of the ones after. nowait_inflight is back
# at 0 afterwards, also with forced EAGAIN fallbacks; fio verifies and the
# device and the file agree.
t_nowait_depth() {
    load nowait_depth=2
    mkimg $SCRATCH/img 64
    local dev; dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    local d=/sys/kernel/debug/loop/loop0
    nowait_stat loop0 nowait_depth >/dev/null # mounts debugfs
    sysfs_eq $d/nowait_depth 2
    losetup -d $dev
    unload
    load
    dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    sysfs_eq $d/nowait_depth 1
    local depth fail peak samples hits worker fb n h0 w0 f0 n0 b0 holds fio_pid now c
    # Each depth with and without forced EAGAIN fallbacks; in check, each
    # depth once and each fallback setting once.
    for c in $(sz "2:0 2:3 1:0 1:3" "2:0 1:3"); do
        depth=${c%:*} fail=${c#*:}
        echo $depth >$d/nowait_depth
        echo $fail >$d/fail_nowait_every
        h0=$(<$d/nowait_hits); w0=$(<$d/worker_ios); n0=$(done_ios loop0)
        fio_verify_bg $dev $(sz 48M 24M) 32; fio_pid=$!
        peak=0 samples=0
        # read, not cat: a fork per sample would take the CPU from fio.
        while kill -0 $fio_pid 2>/dev/null; do
            read -r now <$d/nowait_inflight
            [ "$now" -gt "$peak" ] && peak=$now
            samples=$((samples + 1))
        done
        fio_verified $fio_pid $dev $samples samples 10
        hits=$(($(<$d/nowait_hits) - h0)); worker=$(($(<$d/worker_ios) - w0))
        n=$(($(done_ios loop0) - n0))
        echo "note: depth $depth, fail every $fail, fio depth 32: up to $peak in flight," \
             "$hits NOWAIT hits, $worker worker I/Os of $n"
        [ "$peak" -le $depth ] || die "depth $depth: $peak NOWAIT submissions in flight"
        [ "$worker" -gt 100 ] || die "depth $depth: only $worker worker I/Os at fio depth 32"
        sysfs_eq $d/nowait_inflight 0

        # udev's probe after the last writer closed the device reads it
        # in its own requests, some of them at depth: let it end first, and
        # the device be idle.
        quiesce loop0
        h0=$(<$d/nowait_hits); f0=$(<$d/eagain_fallbacks); n0=$(done_ios loop0)
        b0=$(<$d/busy_holds)
        # 4 KiB, so that each I/O is one request, alone in the queue.
        timeout 600 fio --name=qd1 --filename=$dev --size=$(sz 4M 2M) --rw=randwrite --bs=4k \
            --ioengine=libaio --iodepth=1 --direct=1 --verify=crc32c --do_verify=1 \
            --verify_state_save=0 --invalidate=0 --randrepeat=1 --minimal >/tmp/fio.out 2>&1 ||
            die "fio at depth 1 failed: $(tail -5 /tmp/fio.out)"
        hits=$(($(<$d/nowait_hits) - h0)); fb=$(($(<$d/eagain_fallbacks) - f0))
        n=$(($(done_ios loop0) - n0)); holds=$(($(<$d/busy_holds) - b0))
        echo "note: depth $depth, fail every $fail, fio depth 1: $hits NOWAIT hits," \
             "$fb EAGAIN fallbacks of $n I/Os, $holds busy holds"
        # The first 16 go to the worker: the depth-32 run just before
        # set the busy hold (tested below), and 16 more after each
        # hold started in this run: fio is not the only reader (some
        # 128 KiB reads come along with its verify pass), and a read of
        # another can find the queue busy.
        [ $(((hits + fb) * 10)) -ge $(((n - 16 * (holds + 1)) * 9)) ] ||
            die "depth $depth: $((hits + fb)) of $n I/Os tried NOWAIT at fio depth 1"
        sysfs_eq $d/nowait_inflight 0
    done
    echo 0 >$d/fail_nowait_every
    # 32 reads submitted at once, then all 32 reaped: each batch is one
    # plug, and its requests hold their tags before the first is queued.
    # Without the queue check, the first of each batch (none in flight)
    # would try NOWAIT, 1 in 32.
    h0=$(<$d/nowait_hits); f0=$(<$d/eagain_fallbacks); n0=$(done_ios loop0)
    b0=$(<$d/busy_holds)
    timeout 600 fio --name=batch --filename=$dev --size=$(sz 16M 8M) --rw=randread --bs=4k \
        --ioengine=libaio --iodepth=32 --iodepth_batch_submit=32 \
        --iodepth_batch_complete_min=32 --direct=1 --minimal >/tmp/fio.out 2>&1 ||
        die "batched fio failed: $(tail -5 /tmp/fio.out)"
    hits=$(($(<$d/nowait_hits) - h0)); fb=$(($(<$d/eagain_fallbacks) - f0))
    n=$(($(done_ios loop0) - n0))
    echo "note: batches of 32: $((hits + fb)) of $n I/Os tried NOWAIT"
    [ $(((hits + fb) * 64)) -lt "$n" ] || die "batches of 32: $((hits + fb)) of $n I/Os tried NOWAIT"
    holds=$(($(<$d/busy_holds) - b0))
    [ "$holds" -gt 0 ] || die "batches of 32 started no busy hold"
    # The busy hold: after a request found the queue busy, the next 16
    # that find it idle still go to the worker; then NOWAIT resumes. 128
    # reads at depth 1 right after the batches: at least 16 to the worker,
    # and then NOWAIT for most of the rest.
    quiesce loop0
    h0=$(<$d/nowait_hits); w0=$(<$d/worker_ios); n0=$(done_ios loop0)
    timeout 600 fio --name=after --filename=$dev --size=16M --rw=randread --bs=4k \
        --ioengine=libaio --iodepth=1 --direct=1 --number_ios=128 --norandommap \
        --minimal >/tmp/fio.out 2>&1 || die "depth-1 fio failed: $(tail -5 /tmp/fio.out)"
    hits=$(($(<$d/nowait_hits) - h0)); worker=$(($(<$d/worker_ios) - w0))
    n=$(($(done_ios loop0) - n0))
    echo "note: after the batches, depth 1: $worker worker I/Os, then $hits NOWAIT hits, of $n"
    [ "$n" -eq 128 ] && [ $((hits + worker)) -eq 128 ] ||
        die "after the batches: $hits hits and $worker worker I/Os of $n"
    [ "$worker" -ge 16 ] && [ "$hits" -ge 64 ] ||
        die "after the batches: $worker worker I/Os and $hits hits, not a hold of 16"
    losetup -d $dev
    unload
}

# In-flight NOWAIT I/O, with forced EAGAIN fallbacks, racing with direct
# I/O toggles, NOWAIT toggles and then a detach (deferred, autoclear):
# nothing is lost or completed twice, fio verifies, the device and the file
# agree, and the device detaches at the last close.
t_nowait_toggle_detach_race() {
    local dev; nowait_fault_dev 5
    fio_verify_bg $dev $(sz 48M 24M) 32; local fio_pid=$! n=0
    while kill -0 $fio_pid 2>/dev/null; do
        case $((n % 3)) in
            0) LOOPCTL_DEV $dev set-direct-io $(((n / 3) % 2)) >/dev/null || die "DIO toggle $n failed" ;;
            1) echo $(((n / 3) % 2)) >/sys/block/loop0/loop/nowait ;;
            2) nap 0.2 ;;
        esac
        n=$((n + 1))
    done
    fio_verified $fio_pid $dev $n toggles 6
    LOOPCTL_DEV $dev set-direct-io 1 >/dev/null
    echo 1 >/sys/block/loop0/loop/nowait
    exec 8<$dev
    local w0; w0=$(write_ios loop0)
    fio_verify_bg $dev $(sz 32M 16M) 32; fio_pid=$!
    wait_until 120 "fio's first write" written_since loop0 $w0
    losetup -d $dev
    wait $fio_pid || die "fio failed after the detach: $(tail -5 /tmp/fio.out)"
    exec 8<&-
    wait_until 30 "the deferred detach" unbound loop0
    echo "note: $(nowait_stat loop0 eagain_fallbacks) fallbacks, $(nowait_stat loop0 nowait_hits) hits"
    unload
}

# NOWAIT submission from inside submit_bio. A 4 KiB O_DIRECT read of the
# device is one bio, issued straight from submit_bio (no plug), where the
# bios submitted meanwhile wait on current->bio_list until it returns. The
# backing file has 4096 extents (every other block written), none of them
# cached, so ext4 reads an extent block inside the NOWAIT read, and waits
# for it: forever, before the submission set the bio list aside (found as
# a hang of the benchmark's ext4 on a DIO loop device). No cap on NOWAIT
# submissions (nowait_depth=0, as t_nowait_paths), so that every read
# tries it: udev's probe after the attach can find the queue deep and
# start the busy hold, which would send the next 16 reads, all of these,
# to the worker.
t_nowait_extent_lookup() {
    load nowait_depth=0
    rm -f $SCRATCH/frag
    fio --name=frag --filename=$SCRATCH/frag --size=32M --rw=write:4k --bs=4k --fallocate=none \
        --ioengine=psync --minimal >/dev/null || die "fio could not write the fragmented file"
    local extents; extents=$(filefrag $SCRATCH/frag | awk '{ print $2 }')
    [ "$extents" -ge 2048 ] || die "the file has only $extents extents"
    # Remounted: no extent cache and no extent block in memory (the
    # journal would keep the blocks just written).
    umount $SCRATCH && mount /dev/vda $SCRATCH || die "could not remount the scratch disk"
    local dev; dev=$(losetup --direct-io=on -f --show $SCRATCH/frag)
    udevadm settle
    local h0 i hits; h0=$(nowait_stat loop0 nowait_hits)
    # 16 reads spread over the file, each in another extent leaf.
    for i in $(seq 0 15); do
        dd if=$dev of=/tmp/blk bs=4k count=1 skip=$((i * 512 + 1 + i % 2)) iflag=direct status=none ||
            die "O_DIRECT read $i failed"
        cmp -n 4096 -i $(((i * 512 + 1 + i % 2) * 4096)):0 $SCRATCH/frag /tmp/blk ||
            die "O_DIRECT read $i differs from the file"
    done
    hits=$(($(nowait_stat loop0 nowait_hits) - h0))
    echo "note: $extents extents; 16 O_DIRECT reads, $hits NOWAIT hits"
    [ "$hits" -ge 16 ] || die "only $hits NOWAIT hits for 16 O_DIRECT reads"
    cmp $dev $SCRATCH/frag || die "device and file differ"
    losetup -d $dev
    rm -f $SCRATCH/frag
    unload
}

# --- Hardware queues and concurrent buffered I/O (rloop only) -----------------

# buffered_overlap NAME: buffered random reads at depth 16 that miss the
# page cache run at least 4 at a time in the worker path (debugfs
# worker_peak), not one after another as in one worker thread. The
# device's nowait switch is off meanwhile: with it on, reads this small
# wait for their pages from queue_rq (t_cached_reads), and only their
# copy from the cache is left for the worker.
buffered_overlap() {
    local name=$1 peak
    sync
    echo 3 >/proc/sys/vm/drop_caches
    nowait_stat $name worker_peak >/dev/null # mounts debugfs
    echo 0 >/sys/kernel/debug/loop/$name/worker_peak
    echo 0 >/sys/block/$name/loop/nowait
    timeout 300 fio --name=rr --filename=/dev/$name --rw=randread --bs=4k \
        --ioengine=libaio --iodepth=16 --direct=1 --runtime=$(sz 5 2) --time_based --minimal \
        >/tmp/fio.out 2>&1 || die "fio randread on $name failed: $(tail -5 /tmp/fio.out)"
    echo 1 >/sys/block/$name/loop/nowait
    peak=$(nowait_stat $name worker_peak)
    echo "note: buffered randread at depth 16 on $name: up to $peak worker items at once"
    [ "$peak" -ge 4 ] || die "buffered reads on $name ran $peak at a time at most"
}

# nr_hw_queues: 1 by default, 0 for one per CPU, more than the CPUs
# refused; with one queue and with one per CPU, buffered reads overlap in
# the worker path, and buffered fio verify passes with one queue per CPU.
t_hw_queues() {
    local ncpu dev; ncpu=$(nproc)
    mkimg $SCRATCH/img $(sz 128 64)
    # The devices exist once a bind creates them (max_loop is not given).
    load
    dev=$(losetup --direct-io=off -f --show $SCRATCH/img)
    [ "$(ls -d /sys/block/${dev#/dev/}/mq/*/ | wc -l)" = 1 ] || die "default: not 1 hardware queue"
    buffered_overlap ${dev#/dev/}
    losetup -d $dev
    unload
    if load nr_hw_queues=$((ncpu + 1)) 2>/dev/null; then unload; die "nr_hw_queues=$((ncpu + 1)) loaded"; fi
    if load nr_hw_queues=-1 2>/dev/null; then unload; die "nr_hw_queues=-1 loaded"; fi
    load nr_hw_queues=0
    dev=$(losetup --direct-io=off -f --show $SCRATCH/img)
    [ "$(ls -d /sys/block/${dev#/dev/}/mq/*/ | wc -l)" = "$ncpu" ] || die "nr_hw_queues=0: not $ncpu queues"
    buffered_overlap ${dev#/dev/}
    losetup -d $dev
    # A request goes to the hardware queue of the CPU that submits it: a
    # reader pinned to each CPU in turn must keep that CPU's queue busy,
    # more than any other (debugfs hctxN/busy lists the requests in flight;
    # 7.3 keeps no per-queue totals). On a scsi_debug disk that answers
    # each command after 20 ms, so that every request is in flight long
    # enough to be sampled (on a fast disk, sampling missed them all).
    local sd; sd=$(scsi_debug_disk 16 ndelay=20000000)
    dev=$(losetup --direct-io=on -f --show /dev/$sd)
    sysfs_eq /sys/block/${dev#/dev/}/loop/dio 1
    mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
    local hctx=/sys/kernel/debug/block/${dev#/dev/} mq=/sys/block/${dev#/dev/}/mq
    [ "$(ls -d $hctx/hctx* | wc -l)" = "$ncpu" ] || die "debugfs: not $ncpu hctx directories"
    local c q h l pid samples seen
    for c in $(seq 0 $((ncpu - 1))); do
        q=
        for h in $mq/*; do
            if grep -qw $c <(tr ',' ' ' <$h/cpu_list); then q=${h##*/}; fi
        done
        [ -n "$q" ] || die "CPU $c maps to no hardware queue"
        # Samples in which each queue had a request in flight.
        local -A busy=()
        samples=0
        taskset -c $c dd if=$dev of=/dev/null bs=4k count=$(sz 300 60) iflag=direct status=none &
        pid=$!
        while kill -0 $pid 2>/dev/null; do
            for h in $hctx/hctx*; do
                l=; read -r l 2>/dev/null <$h/busy || true
                if [ -n "$l" ]; then
                    busy[${h##*/hctx}]=$((${busy[${h##*/hctx}]:-0} + 1))
                fi
            done
            samples=$((samples + 1))
            nap 0.05
        done
        wait $pid || die "dd on CPU $c failed"
        seen=
        for h in "${!busy[@]}"; do seen="$seen hctx$h:${busy[$h]}"; done
        echo "note: a reader on CPU $c: of $samples samples, with a request in flight:$seen (CPU $c's queue is $q)"
        [ "${busy[$q]:-0}" -ge $((samples / 2)) ] && [ "${busy[$q]:-0}" -gt 0 ] ||
            die "a reader on CPU $c: its queue $q busy in ${busy[$q]:-0} of $samples samples"
        for h in "${!busy[@]}"; do
            [ "$h" = "$q" ] || [ "${busy[$h]}" -lt "${busy[$q]}" ] ||
                die "a reader on CPU $c: queue $h busy as often as its own, $q"
        done
        unset busy
    done
    losetup -d $dev
    udevadm settle
    rmmod scsi_debug
    unload
}

# Per-device queue settings, /sys/block/loopN/loop/nowait_depth and
# loop/nr_hw_queues: the module parameters are their defaults; bad values
# are refused and change nothing; nowait_depth is the one debugfs shows;
# a change of queues made under fio verify applies at once (the mq/
# directories follow) and the data holds; both settings stay with the
# device across a detach and a new attach.
t_queue_settings() {
    local ncpu dev name d bad fio_pid; ncpu=$(nproc)
    mkimg $SCRATCH/img 64
    load nowait_depth=3
    dev=$(losetup --direct-io=on -f --show $SCRATCH/img); name=${dev#/dev/}
    d=/sys/block/$name/loop
    sysfs_eq $d/nowait_depth 3
    sysfs_eq $d/nr_hw_queues 1
    echo 5 >$d/nowait_depth
    sysfs_eq $d/nowait_depth 5
    [ "$(nowait_stat $name nowait_depth)" = 5 ] || die "debugfs nowait_depth is not 5"
    for bad in -1 x '' 4294967296 '5 5'; do
        if echo "$bad" >$d/nowait_depth 2>/dev/null; then die "nowait_depth '$bad' taken"; fi
    done
    sysfs_eq $d/nowait_depth 5
    for bad in -1 $((ncpu + 1)) x ''; do
        if echo "$bad" >$d/nr_hw_queues 2>/dev/null; then die "nr_hw_queues '$bad' taken"; fi
    done
    sysfs_eq $d/nr_hw_queues 1
    fio_verify_bg $dev $(sz 48M 24M) 16; fio_pid=$!
    nap 2
    # 0: one per CPU, as the module parameter.
    echo 0 >$d/nr_hw_queues
    fio_verified $fio_pid $dev 1 change 1
    sysfs_eq $d/nr_hw_queues $ncpu
    [ "$(ls -d /sys/block/$name/mq/*/ | wc -l)" = "$ncpu" ] || die "not $ncpu hardware queues"
    losetup -d $dev
    dev=$(losetup --direct-io=off -f --show $SCRATCH/img)
    [ "$dev" = /dev/$name ] || die "attached to $dev, not /dev/$name"
    sysfs_eq $d/nr_hw_queues $ncpu
    sysfs_eq $d/nowait_depth 5
    echo 1 >$d/nr_hw_queues
    [ "$(ls -d /sys/block/$name/mq/*/ | wc -l)" = 1 ] || die "not 1 hardware queue"
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ"
    losetup -d $dev
    unload
}

# Reconfiguration racing with fio: the file grows and LOOP_SET_CAPACITY
# follows it, the block size flips between 512 and 4096, direct I/O is
# toggled, and rmmod and LOOP_CTL_REMOVE are refused, all while fio writes
# and verifies; then the device and the file agree.
t_reconfigure_under_io() {
    load
    truncate -s 64M $SCRATCH/img
    local dev; dev=$(losetup -f --show $SCRATCH/img)
    fio_verify_bg $dev 48M 16; local fio_pid=$!
    local n=0 mb=64
    while kill -0 $fio_pid 2>/dev/null; do
        case $((n % 5)) in
            0) mb=$((mb + 1)); truncate -s ${mb}M $SCRATCH/img
               expect "ok 0" LOOPCTL_DEV $dev set-capacity
               [ "$(blockdev --getsize64 $dev)" = $((mb * 1048576)) ] || die "size after SET_CAPACITY to $mb MiB" ;;
            1) expect "ok 0" LOOPCTL_DEV $dev set-block-size $(((n / 5) % 2 ? 512 : 4096)) ;;
            2) expect "ok 0" LOOPCTL_DEV $dev set-direct-io $(((n / 5) % 2)) ;;
            3) if rmmod loop 2>/dev/null; then die "rmmod succeeded under I/O"; fi ;;
            4) expect "err EBUSY" "$LOOPCTL" remove 0 ;;
        esac
        n=$((n + 1))
    done
    fio_verified $fio_pid $dev $n changes 10
    losetup -d $dev
    unload
}

# Teardown racing with use: one process loads the module, attaches, reads
# and detaches, 10 times, while another keeps trying rmmod; then one
# process removes and adds a device that another keeps opening. Each step
# works or fails cleanly, and the module unloads at the end.
t_teardown_race() {
    mkimg $SCRATCH/img 1
    (for r in $(seq $(sz 10 5)); do
        loaded || load 2>/dev/null || continue
        d=$(losetup -f --show $SCRATCH/img 2>/dev/null) || continue
        # Bound, the module cannot go: the data must read back.
        cmp $d $SCRATCH/img || { echo "round $r: $d reads wrong data"; exit 1; }
        losetup -d $d || { echo "round $r: detach of $d failed"; exit 1; }
    done) >/tmp/race.attach 2>&1 &
    local attach=$! removed=0
    while kill -0 $attach 2>/dev/null; do
        if rmmod loop 2>/dev/null; then removed=$((removed + 1)); fi
        nap 0.1
    done
    wait $attach || die "attacher: $(cat /tmp/race.attach)"
    echo "note: rmmod succeeded $removed times during the attaches"
    loaded || load
    expect "ok 1" "$LOOPCTL" add 1
    (for r in $(seq $(sz 40 20)); do "$LOOPCTL" remove 1 || true; "$LOOPCTL" add 1 || true; done) >/tmp/race.ctl 2>&1 &
    local ctl=$!
    while kill -0 $ctl 2>/dev/null; do
        dd if=/dev/loop1 of=/dev/null bs=4k count=1 status=none 2>/dev/null || true
    done
    wait $ctl
    local odd; odd=$(grep -v -x -e 'ok 0' -e 'ok 1' -e 'err EBUSY' -e 'err ENODEV' -e 'err EEXIST' /tmp/race.ctl | sort | uniq -c)
    [ -z "$odd" ] || die "unexpected LOOP_CTL answers: $odd"
    grep -q -x 'ok 0' /tmp/race.ctl || die "no LOOP_CTL_REMOVE succeeded"
    echo "note: $(sort /tmp/race.ctl | uniq -c | tr -s ' \n' ' ')"
    unload
}

# LOOP_CTL_GET_FREE and LOOP_CONFIGURE from 8 processes at once, 25 rounds
# each, each process with its own backing file: every round ends with the
# process's own device (checked by inode, and by a write read back from its
# file), and nothing stays bound.
t_configure_storm() {
    load
    local p pids=()
    for p in $(seq 8); do
        mkimg $SCRATCH/img$p 1
        "$LOOPCTL" storm $SCRATCH/img$p 25 >/tmp/storm.$p 2>&1 &
        pids+=($!)
    done
    for p in $(seq 8); do
        wait ${pids[$((p - 1))]} || die "process $p: $(cat /tmp/storm.$p)"
        [ "$(cat /tmp/storm.$p)" = "ok 25" ] || die "process $p: $(cat /tmp/storm.$p)"
    done
    udevadm settle
    wait_until 30 "the devices to detach" bash -c '[ -z "$(losetup -l -n)" ]'
    unload
}

# FUZZ_CALLS (default 100000 in the long tier, else 10000) random ioctls
# from two threads, seeded with FUZZ_SEED (fixed by default; e.g.
# scripts/vm -- env FUZZ_SEED=7 FUZZ_CALLS=1000000 tests/guest/run.sh ...
# ioctl_fuzz for more), with
# random arguments and structure contents, in whatever states the devices
# reach; then every device detaches and works, and the module unloads.
FUZZ_CALLS=${FUZZ_CALLS:-$(sz 100000 10000)}
FUZZ_SEED=${FUZZ_SEED:-20261126}
# What 10,000 calls must reach, command:result: every command, and each
# result that 10,000 calls of the fixed seed met at least 10 times
# (rarer ones, such as a LOOP_CONFIGURE that binds, are left to the long
# tier's 100,000). A fuzzer that stops reaching a path fails here.
FUZZ_MUST="SET_FD:EBADF SET_FD:EBUSY SET_FD:EINVAL CLR_FD:ENXIO CLR_FD:ok
  SET_STATUS:EFAULT SET_STATUS:ENXIO SET_STATUS:EOVERFLOW SET_STATUS:ok
  GET_STATUS:EFAULT GET_STATUS:EINVAL GET_STATUS:ENXIO GET_STATUS:EOVERFLOW GET_STATUS:ok
  SET_STATUS64:EFAULT SET_STATUS64:EINVAL SET_STATUS64:ENXIO SET_STATUS64:EOVERFLOW SET_STATUS64:ok
  GET_STATUS64:EFAULT GET_STATUS64:EINVAL GET_STATUS64:ENXIO GET_STATUS64:ok
  CHANGE_FD:EBADF CHANGE_FD:EINVAL CHANGE_FD:ENXIO CHANGE_FD:ok
  SET_CAPACITY:ENXIO SET_CAPACITY:ok SET_DIRECT_IO:EINVAL SET_DIRECT_IO:ENXIO SET_DIRECT_IO:ok
  SET_BLOCK_SIZE:EINVAL SET_BLOCK_SIZE:ENXIO SET_BLOCK_SIZE:ok
  CONFIGURE:EBADF CONFIGURE:EBUSY CONFIGURE:EFAULT CONFIGURE:EINVAL
  CTL_ADD:EEXIST CTL_ADD:ok CTL_REMOVE:EBUSY CTL_REMOVE:ENODEV CTL_REMOVE:ok CTL_GET_FREE:ok
  other:EINVAL other:ENOSYS read:ok write:ok write:EBADF write:EPERM write:ENOSPC"
t_ioctl_fuzz() {
    load
    mkimg $SCRATCH/img 4
    mkimg $SCRATCH/img2 1
    timeout 1200 "$LOOPCTL" fuzz $FUZZ_SEED $FUZZ_CALLS 2 $SCRATCH/img $SCRATCH/img2 >/tmp/fuzz.out 2>&1 ||
        die "fuzzer (seed $FUZZ_SEED) failed: $(cat /tmp/fuzz.out)"
    sed 's/^/note: /' /tmp/fuzz.out
    if [ "$FUZZ_CALLS" -ge 10000 ]; then
        # Matched in the shell: a grep for each of the 52 pairs took 5 s.
        local pair missing= by=
        while IFS= read -r pair; do
            [[ $pair != 'fuzz by command:'* ]] || by="${pair#fuzz by command:} "
        done </tmp/fuzz.out
        for pair in $FUZZ_MUST; do
            [[ $by == *" $pair="* ]] || missing+=" $pair"
        done
        [ -z "$missing" ] || die "$FUZZ_CALLS calls did not reach:$missing"
    fi
    # Each bind, unbind, resize, add and remove is a uevent, and udevd under
    # TCG can be minutes behind after 100,000 calls.
    local t0=$SECONDS
    settle $(sz 900 300)
    echo "note: udev settled $((SECONDS - t0)) s after the fuzzer"
    # losetup -D races with a last close that is detaching an autoclear
    # device (a udev probe left over from the fuzzer's last writes): its
    # LOOP_CLR_FD then finds the device gone, ENXIO, as it would on C. What
    # must hold is that every device ends up detached, checked below.
    if ! losetup -D 2>/tmp/detach.err; then
        echo "note: losetup -D: $(tr '\n' ' ' </tmp/detach.err)"
        losetup -D
    fi
    wait_until 30 "the devices to detach" bash -c '[ -z "$(losetup -l -n)" ]'
    # Every device left works: it reads as the file it is bound to.
    local d
    for d in /sys/block/loop*; do
        d=${d##*/}
        expect "ok 0" LOOPCTL_DEV /dev/$d set-fd $SCRATCH/img
        cmp /dev/$d $SCRATCH/img || die "$d reads wrong data after the fuzzer"
        expect "ok 0" LOOPCTL_DEV /dev/$d clr
    done
    unload
}

# The backing file's life while attached, in both modes, as in C: unlinked,
# the device keeps it; truncated, reads past its new end fail until
# LOOP_SET_CAPACITY; grown, the device grows at LOOP_SET_CAPACITY. On a
# lazily unmounted filesystem, the device works and the filesystem lives
# until the detach.
t_backing_lifetime() {
    load
    mkimg $SCRATCH/data 1
    local dio dev
    for dio in off on; do
        mkimg $SCRATCH/img 8
        cp $SCRATCH/img $SCRATCH/orig
        dev=$(losetup --direct-io=$dio -f --show $SCRATCH/img)
        rm $SCRATCH/img
        sysfs_eq /sys/block/loop0/loop/backing_file "$SCRATCH/img (deleted)"
        cmp $dev $SCRATCH/orig || die "dio=$dio: unlinked file: reads differ"
        dd if=$SCRATCH/data of=$dev bs=64k seek=16 oflag=direct conv=fsync status=none || die "dio=$dio: write to the unlinked file"
        echo 3 >/proc/sys/vm/drop_caches
        cmp -n 1048576 -i 1048576:0 $dev $SCRATCH/data || die "dio=$dio: unlinked file: write lost"
        losetup -d $dev
        # Truncated to 4 MiB: still 8 MiB until SET_CAPACITY.
        mkimg $SCRATCH/img 8
        dev=$(losetup --direct-io=$dio -f --show $SCRATCH/img)
        truncate -s 4M $SCRATCH/img
        [ "$(blockdev --getsize64 $dev)" = 8388608 ] || die "dio=$dio: size changed at the truncate"
        cmp -n 4194304 $dev $SCRATCH/img || die "dio=$dio: truncated file: reads differ"
        if dd if=$dev of=/dev/null bs=64k skip=96 count=1 iflag=direct status=none 2>/tmp/dd.err; then
            die "dio=$dio: read past the end of the file succeeded"
        fi
        grep -q "Input/output error" /tmp/dd.err || die "dio=$dio: read past the end: $(cat /tmp/dd.err)"
        expect "ok 0" LOOPCTL_DEV $dev set-capacity
        [ "$(blockdev --getsize64 $dev)" = 4194304 ] || die "dio=$dio: size after shrinking"
        # Grown to 12 MiB: the new space reads as zeroes and takes writes.
        truncate -s 12M $SCRATCH/img
        [ "$(blockdev --getsize64 $dev)" = 4194304 ] || die "dio=$dio: size changed at the grow"
        expect "ok 0" LOOPCTL_DEV $dev set-capacity
        [ "$(blockdev --getsize64 $dev)" = 12582912 ] || die "dio=$dio: size after growing"
        # (O_DIRECT: udev's probe may have cached the old end of the device.)
        cmp -n 8388608 <(dd if=$dev bs=1M skip=4 count=8 iflag=direct status=none) /dev/zero ||
            die "dio=$dio: grown space is not zeroes"
        dd if=$SCRATCH/data of=$dev bs=64k seek=176 oflag=direct conv=fsync status=none || die "dio=$dio: write to grown space"
        cmp -n 1048576 -i 11534336:0 $SCRATCH/img $SCRATCH/data || die "dio=$dio: write to grown space not in file"
        losetup -d $dev
    done
    # A lazily unmounted backing filesystem.
    local sd; sd=$(scsi_debug_fs 64)
    mkimg /tmp/sd/img 8
    cp /tmp/sd/img $SCRATCH/orig
    dev=$(losetup -f --show /tmp/sd/img)
    umount -l /tmp/sd
    ! mountpoint -q /tmp/sd || die "/tmp/sd still mounted after umount -l"
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/orig || die "reads after umount -l differ"
    dd if=$SCRATCH/data of=$dev bs=64k seek=32 oflag=direct conv=fsync status=none || die "write after umount -l"
    [ -e /proc/fs/ext4/$sd ] || die "ext4 on $sd went away while the device used it"
    losetup -d $dev
    udevadm settle
    wait_until 30 "ext4 on $sd to go" bash -c "[ ! -e /proc/fs/ext4/$sd ]"
    mount /dev/$sd /tmp/sd
    cmp -n 1048576 -i 2097152:0 /tmp/sd/img $SCRATCH/data || die "write after umount -l not in the file"
    umount /tmp/sd
    rmmod scsi_debug
    unload
}

# The README's install recipe for a distribution kernel, command for
# command: ours into /lib/modules/$(uname -r)/updates, depmod, and modprobe
# loads ours instead of the kernel's own loop.ko; then back. Needs an
# installed module tree with a loop module (Debian's kernel). The guest's
# tree is read-only, and depmod over all of Debian's 4,000 modules takes
# minutes under TCG, so the test swaps in a tree of loop's module alone
# (a symbolic link to it) and puts the real one back at the end.
t_install_updates() {
    local rel mods real orig
    rel=$(uname -r)
    mods=/lib/modules/$rel
    orig=$(compgen -G "$mods/kernel/drivers/block/loop.ko*") ||
        { echo "no installed module tree with a loop module for $rel"; exit 77; }
    real=$(readlink -f $mods)
    [ -L $mods ] || die "$mods is not the guest's symbolic link"
    rm -rf /tmp/modtree
    mkdir -p /tmp/modtree/kernel/drivers/block
    ln -s "$(readlink -f "$orig")" /tmp/modtree/${orig#$mods/}
    ln -sfn /tmp/modtree $mods
    # The harness refuses modprobe loop; the recipe needs it.
    trap "ln -sfn $real $mods; no_loop_autoload" EXIT
    rm /etc/modprobe.d/rloop-no-autoload.conf
    depmod -a $rel 2>/dev/null
    [ "$(modinfo -F filename loop)" = "$orig" ] || die "before: modinfo finds $(modinfo -F filename loop)"

    # The README's commands.
    install -D -m 644 "${KO[rloop]}" /lib/modules/$rel/updates/loop.ko
    depmod -a $rel 2>/dev/null
    modprobe -r loop && modprobe loop
    [ "$(modinfo -F filename loop)" = $mods/updates/loop.ko ] ||
        die "installed: modinfo finds $(modinfo -F filename loop)"
    # Ours: no sysfs parameters (Rust's have none), a debugfs directory.
    [ ! -e /sys/module/loop/parameters ] && [ -d /sys/kernel/debug/loop ] ||
        die "modprobe loop did not load ours: $(ls /sys/module/loop)"
    truncate -s 16M $SCRATCH/img
    local dev; dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    sysfs_eq /sys/block/${dev#/dev/}/loop/dio 1
    losetup -d $dev
    udevadm settle

    # Back to the kernel's own, as the README says.
    rm /lib/modules/$rel/updates/loop.ko && depmod -a $rel 2>/dev/null
    modprobe -r loop && modprobe loop
    [ "$(modinfo -F filename loop)" = "$orig" ] || die "back: modinfo finds $(modinfo -F filename loop)"
    [ -e /sys/module/loop/parameters/max_part ] && [ ! -d /sys/kernel/debug/loop ] ||
        die "modprobe loop did not load the kernel's own"
    udevadm settle
    modprobe -r loop
}

# --- Main ---------------------------------------------------------------------

[ -f "$RLOOP_KO" ] || { echo "run.sh: $RLOOP_KO is not built"; exit 2; }
[ -f "$C_KO" ] || { echo "run.sh: $C_KO is not built"; exit 2; }
[ -x "$LOOPCTL" ] || { echo "run.sh: $LOOPCTL is not built"; exit 2; }
if loaded; then rmmod loop; fi
no_loop_autoload || { echo "run.sh: cannot stop modprobe from loading loop"; exit 2; }
# The scratch disk holds the backing files.
mkdir -p $SCRATCH
mkfs.ext4 -q -F /dev/vda && mount /dev/vda $SCRATCH || { echo "run.sh: no scratch disk"; exit 2; }
# The tests drop the page cache (echo 3 >/proc/sys/vm/drop_caches) so that
# their reads reach the driver and the disk. That also evicted every tool's
# binary and libraries, cached from the 9p root, and the next fio read its
# 64 libraries (80 MiB) again over 9p: 2.7 to 3.3 s to start after a
# drop, 1.0 s warm. A drop keeps the pages a process maps: loopctl
# keep-mapped holds the tools the tests run most (fio then starts in 1.6 s
# after a drop), so that a test's drop evicts its own data only.
keep_tools_mapped() {
    local t _a _b lib _d ld=/lib64/ld-linux-x86-64.so.2 files=()
    files+=("$ld")
    for t in fio losetup udevadm mount umount dd blockdev mkfs.ext4 mkfs.xfs \
             fsck.ext4 xfs_repair sha256sum awk; do
        t=$(type -P $t) || continue
        files+=("$t")
        # What ldd prints, from the dynamic loader itself: "name => path (addr)".
        while read -r _a _b lib _d; do
            [[ $lib != /* ]] || files+=("$lib")
        done < <("$ld" --list "$t")
    done
    "$LOOPCTL" keep-mapped $(readlink -f "${files[@]}" | sort -u) &
    KEEPER=$!
}
keep_tools_mapped

# Every test of both drivers, in order; the quick tier runs QUICK only.
ALL=(insmod_rmmod_10x proc_devices_and_nodes max_loop_precreates min_count_default max_part_minors
     bad_params_refused hw_queue_depth ctl_add_remove_get_free ctl_many_devices
     probe_on_open losetup_f unbound_io rmmod_while_open device_ioctl_unbound
     attach_read_write status_offset_ro ro_device_bios autoclear ioctl_errors set_capacity
     fallocate_unsupported
     block_size_4k partitions ext4_xfs attach_storm rmmod_bound change_fd change_fd_race
     losetup_listing unprivileged_eperm rotational uevents compat_ioctl read_past_eof short_read killable_waits fio_verify
     dio_attach_modes dio_misaligned_offset dio_min_size dio_fio_verify
     dio_toggle_under_fio dio_ext4_xfs upper_fs_locks atime_reads stacked_page_cache_reads workqueues io_error enospc
     detach_under_load reconfigure_under_io teardown_race configure_storm ioctl_fuzz
     backing_lifetime killed_submitters fuse_backing_creds cgroup_charging cgroup_io_max
     cgroup_workers)
# The stacked topologies, on both drivers: in the stack and long tiers.
STACKED=(stacked_xfs_dm stacked_ext4_journal stacked_three_loops)
QUICK=(losetup_f attach_read_write autoclear change_fd read_past_eof dio_min_size)
# rloop's own features, which C does not have.
RLOOP_ONLY=(nowait_paths nowait_forced_eagain nowait_depth nowait_toggle_detach_race
            nowait_extent_lookup cached_reads hw_queues queue_settings inline_stack_bound
            nowait_needs_fmode_nowait install_updates)
# The direct I/O data path once more with NOWAIT submission off, so that
# the worker path of direct I/O is covered as well: its error path in
# check, its data paths and races too in long. (check runs that path's
# data with fio verify in nowait_paths, whose device is switched to
# nowait 0 and loaded with nowait=0, and in nowait_forced_eagain, where
# every third NOWAIT submission falls back to the worker.)
if [ "$TIER" = long ]; then
    NOWAIT_OFF=(dio_fio_verify dio_toggle_under_fio dio_ext4_xfs detach_under_load
                reconfigure_under_io io_error)
else
    NOWAIT_OFF=(io_error)
fi
if [ "$TIER" = quick ]; then ALL=("${QUICK[@]}"); RLOOP_ONLY=(); NOWAIT_OFF=(); fi
# stack_depth loads C's loop.ko and ours itself, to compare them.
if [ "$TIER" = long ]; then ALL+=("${STACKED[@]}"); RLOOP_ONLY+=(stack_depth); fi
if [ "$TIER" = stack ]; then ALL=("${STACKED[@]}"); RLOOP_ONLY=(stack_depth); NOWAIT_OFF=(); fi

echo "tier $TIER, driver $DRIVER"
for t in "${ALL[@]}"; do
    case "$DRIVER" in
        c) run_test "$t" c ;;
        rloop) run_test "$t" rloop ;;
        *) run_test "$t" c; run_test "$t" rloop ;;
    esac
done
if [ "$DRIVER" != c ]; then
    for t in "${RLOOP_ONLY[@]}"; do run_test "$t" rloop; done
    LOAD_ARGS=nowait=0
    for t in "${NOWAIT_OFF[@]}"; do run_test "$t" rloop nowait=0; done
    LOAD_ARGS=
fi

# Where the time went, slowest first.
cpu_ticks SUITE_END; busy_pct SUITE_BUSY "$SUITE_CPU" "$SUITE_END"
echo "time per test (s), the processes it started and the guest's CPU busy (% of all vCPUs), slowest first; suite ${SECONDS} s, $SUITE_BUSY% busy:"
[ ${#times[@]} = 0 ] || printf '%s\n' "${times[@]}" | sort -rn |
    awk '{ printf "  %5d s %6d procs %3d%% busy  %s\n", $1, $2, $3, substr($0, length($1) + length($2) + length($3) + 4) }'
# The rest of the guest's dmesg is checked by scripts/vm on the host.
[ -n "${TEST_LOG_DIR:-}" ] || rm -rf "$LOG"
kill $KEEPER
umount $SCRATCH
if [ ${#skipped[@]} -gt 0 ]; then echo "skipped (this kernel lacks what they need): ${skipped[*]}"; fi
if [ $fail -gt 0 ]; then echo "failed: ${failed[*]}"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
