# Stacked topologies (issue 27), sourced by run.sh: loop devices between
# filesystems and device-mapper, where a submission from queue_rq runs on
# a stack that is already deep. Every level's data is verified (fio's
# checksums, then fsck or xfs_repair -n), while writeback runs and, in
# each topology, while a cgroup with a small memory.max forces reclaim of
# the writer's page cache. The test kernel has guard pages around every
# stack (VMAP_STACK) and checks the stack's end at schedule(), so an
# overflow is a splat, which fails the test.
#
# stack_depth measures the deepest stack of these topologies with the
# ftrace stack tracer, C's loop.ko against ours in the same boot.

# The second disk of scripts/vm: the bottom of the device-mapper stacks.
STACK_DISK=/dev/vdb

# dm_dev NAME TABLE: a device-mapper device NAME with one TABLE line;
# prints its node.
dm_dev() {
    dmsetup create "$1" --table "$2" >&2 || die "dmsetup create $1"
    udevadm settle
    [ -b /dev/mapper/$1 ] || die "no /dev/mapper/$1"
    echo /dev/mapper/$1
}

# dm_sectors DEV: DEV's size in 512-byte sectors.
dm_sectors() { blockdev --getsz "$1"; }

# small_cgroup MAX: a cgroup v2 group with memory.max MAX and no swap;
# prints its directory. Writers in it have their page cache reclaimed
# while they write. The memory controller only, as in t_workqueues, which
# says what io on as well does (the page cache of every level charged to
# the writer's group): the cgroup tests, before these in the long tier,
# leave io on, so that each tier runs these with the same controllers.
small_cgroup() {
    cgroup_controllers +memory -io
    local cg=/sys/fs/cgroup/rloop-stack
    [ ! -d $cg ] || rmdir $cg
    mkdir $cg
    echo "$1" >$cg/memory.max
    [ ! -e $cg/memory.swap.max ] || echo 0 >$cg/memory.swap.max
    echo $cg
}

# fio_fs_verify DIR SIZE [CGROUP]: random writes of 4k to 256k to a file
# in DIR, buffered (so that writeback runs through every level), then
# direct, each verified by its checksums after the caches are dropped;
# in CGROUP if one is given.
fio_fs_verify() {
    local dir=$1 size=$2 cg=${3:-} direct
    for direct in 0 1; do
        (if [ -n "$cg" ]; then echo $BASHPID >$cg/cgroup.procs; fi
         exec timeout 900 fio --name=s$direct --directory=$dir --size=$size \
            --rw=randwrite --bsrange=4k-256k --ioengine=libaio --iodepth=8 \
            --direct=$direct --end_fsync=1 --verify=crc32c --do_verify=0 \
            --verify_state_save=0 --randrepeat=1 --minimal) >/tmp/fio.out 2>&1 ||
            die "fio write (direct=$direct) in $dir failed: $(tail -5 /tmp/fio.out)"
        echo 3 >/proc/sys/vm/drop_caches
        (if [ -n "$cg" ]; then echo $BASHPID >$cg/cgroup.procs; fi
         exec timeout 900 fio --name=s$direct --directory=$dir --size=$size \
            --rw=randwrite --bsrange=4k-256k --ioengine=libaio --iodepth=8 \
            --direct=$direct --verify=crc32c --verify_only=1 \
            --verify_state_save=0 --randrepeat=1 --minimal) >/tmp/fio.out 2>&1 ||
            die "fio verify (direct=$direct) in $dir failed: $(tail -5 /tmp/fio.out)"
        rm -f $dir/s$direct.*
        echo "note: $dir: $size written and verified, direct=$direct, at ${SECONDS}s"
    done
}

# cgroup_done CG WHAT: the cgroup's figures as a note; no OOM kill in it.
cgroup_done() {
    local cg=$1 oom peak max
    oom=$(sed -n 's/^oom_kill //p' $cg/memory.events)
    peak=$(cat $cg/memory.peak 2>/dev/null || echo ?)
    max=$(cat $cg/memory.max)
    echo $$ >/sys/fs/cgroup/cgroup.procs
    rmdir $cg
    echo "note: $2: memory.max $max, peak $peak, $oom OOM kills"
    [ "$oom" = 0 ] || die "$2: $oom OOM kills in the cgroup"
}

# xfs on dm-crypt on dm-linear on a direct-I/O loop device, on a file of
# xfs on dm-linear on the virtio disk: the upstream report's shape.
# SIZE: the fio file. Leaves nothing behind.
stack_xfs_dm() {
    local size=$1 cg low dev lin crypt key
    low=$(dm_dev rl_low "0 $(dm_sectors $STACK_DISK) linear $STACK_DISK 0")
    mkfs.xfs -q -f $low
    mkdir -p /tmp/low /tmp/mnt
    mount $low /tmp/low
    truncate -s 400M /tmp/low/img
    dev=$(losetup --direct-io=on -f --show /tmp/low/img)
    sysfs_eq /sys/block/${dev#/dev/}/loop/dio 1
    lin=$(dm_dev rl_lin "0 $(dm_sectors $dev) linear $dev 0")
    key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    crypt=$(dm_dev rl_crypt "0 $(dm_sectors $lin) crypt aes-xts-plain64 $key 0 $lin 0")
    mkfs.xfs -q -f $crypt
    mount $crypt /tmp/mnt
    cg=$(small_cgroup 32M)
    fio_fs_verify /tmp/mnt $size $cg
    cgroup_done $cg "xfs/dm-crypt/dm-linear/loop(dio)/xfs/dm-linear/vdb"
    umount /tmp/mnt
    xfs_repair -n $crypt >/dev/null 2>&1 || die "xfs_repair of the upper xfs"
    dmsetup remove rl_crypt; dmsetup remove rl_lin
    losetup -d $dev
    umount /tmp/low
    xfs_repair -n $low >/dev/null 2>&1 || die "xfs_repair of the lower xfs"
    dmsetup remove rl_low
    udevadm settle
}

# ext4 on a loop device on a file of ext4 (the scratch disk), journalled
# with data=journal on a buffered device and as ordered on a direct one.
stack_ext4_journal() {
    local size=$1 cg dev mode opts
    mkdir -p /tmp/mnt
    for mode in off on; do
        truncate -s 256M $SCRATCH/img
        dev=$(losetup --direct-io=$mode -f --show $SCRATCH/img)
        mkfs.ext4 -q $dev
        if [ $mode = off ]; then opts=data=journal; else opts=data=ordered; fi
        mount -o $opts $dev /tmp/mnt
        cg=$(small_cgroup 32M)
        fio_fs_verify /tmp/mnt $size $cg
        cgroup_done $cg "ext4($opts)/loop(dio=$mode)/ext4"
        umount /tmp/mnt
        fsck.ext4 -fn $dev >/dev/null || die "fsck of ext4($opts) on loop(dio=$mode)"
        losetup -d $dev
        rm $SCRATCH/img
    done
}

# Three loop devices nested through files and filesystems: ext4 on loop
# on a file of ext4 on loop on a file of ext4 on loop on a file of the
# scratch disk, direct at the bottom and top and buffered between (MODES
# gives each level's, bottom first).
stack_three_loops() {
    local size=$1 modes=${2:-"on off on"} cg dir=$SCRATCH img=$SCRATCH/l0.img
    local mb=400 i=0 mode devs=() mnts=()
    for mode in $modes; do
        truncate -s ${mb}M $img
        devs+=($(losetup --direct-io=$mode -f --show $img))
        mkfs.ext4 -q ${devs[-1]}
        mkdir -p /tmp/l$i
        mount ${devs[-1]} /tmp/l$i
        mnts+=(/tmp/l$i)
        i=$((i + 1)); mb=$((mb - 100)); img=/tmp/l$((i - 1))/l$i.img
    done
    cg=$(small_cgroup 32M)
    fio_fs_verify ${mnts[-1]} $size $cg
    cgroup_done $cg "ext4/loop(${modes// /)/ext4/loop(})/ext4"
    for ((i = ${#devs[@]} - 1; i >= 0; i--)); do
        umount ${mnts[i]}
        fsck.ext4 -fn ${devs[i]} >/dev/null || die "fsck of level $i"
        losetup -d ${devs[i]}
    done
    rm -f $SCRATCH/l0.img
}

t_stacked_xfs_dm() {
    load
    modprobe_dm || return 1
    stack_xfs_dm $(sz 64M 24M)
    unload
}

t_stacked_ext4_journal() {
    load
    stack_ext4_journal $(sz 64M 24M)
    unload
}

t_stacked_three_loops() {
    load
    stack_three_loops $(sz 64M 16M) "on off on"
    stack_three_loops $(sz 64M 16M) "off on off"
    unload
}

# modprobe_dm: device-mapper and dm-crypt (modules of the test kernel).
modprobe_dm() { modprobe -a dm-mod dm-crypt || die "no dm-mod or dm-crypt"; }

# --- The deepest stack -------------------------------------------------------

TRACING=/sys/kernel/tracing
# The topologies stack_depth measures (all by default).
STACK_TOPOS=${STACK_TOPOS:-xfs_dm ext4_journal three_loops}

# stack_max_of OUT WORK...: runs WORK with the ftrace stack tracer on and
# writes the deepest kernel stack it saw (bytes, any task) to OUT and the
# trace of that stack to OUT.trace.
stack_max_of() {
    local out=$1; shift
    echo 0 >$TRACING/stack_max_size
    echo 1 >/proc/sys/kernel/stack_tracer_enabled
    local rc=0
    "$@" || rc=$?
    echo 0 >/proc/sys/kernel/stack_tracer_enabled
    cat $TRACING/stack_max_size >$out
    cat $TRACING/stack_trace >$out.trace
    return $rc
}

# The deepest stack of each topology above, C's loop.ko, ours, and ours
# with no submission from queue_rq (nowait=0), in one boot: ours may go at
# most 1 KiB deeper than C, and must leave at least 4 KiB of the 16 KiB
# stack of a kernel without KASAN (this one's is twice that, and KASAN's
# checks make frames larger: the figure is an upper bound).
t_stack_depth() {
    mountpoint -q $TRACING || mount -t tracefs nodev $TRACING
    [ -e /proc/sys/kernel/stack_tracer_enabled ] || die "no stack tracer in this kernel"
    local topo run impl args out
    for run in c rloop rloop:nowait=0; do
        impl=${run%%:*}; args=; [ "$impl" = "$run" ] || args=${run#*:}
        IMPL=$impl
        load $args
        modprobe_dm
        for topo in $STACK_TOPOS; do
            out=/tmp/stack.$topo.${run//[:=]/_}
            stack_max_of $out stack_$topo 4M >/dev/null
        done
        unload
    done
    local c ours off bad=0 deepest=0
    for topo in $STACK_TOPOS; do
        c=$(cat /tmp/stack.$topo.c) ours=$(cat /tmp/stack.$topo.rloop)
        off=$(cat /tmp/stack.$topo.rloop_nowait_0)
        echo "note: $topo: deepest stack C $c, ours $ours, ours with nowait=0 $off bytes"
        [ "$ours" -gt "$deepest" ] && deepest=$ours && cp /tmp/stack.$topo.rloop.trace /tmp/stack.deepest.trace
        if [ "$ours" -gt $((c + 1024)) ]; then
            echo "ours is more than 1 KiB deeper than C in $topo; its trace:"
            cat /tmp/stack.$topo.rloop.trace
            bad=1
        fi
    done
    echo "note: the deepest of ours ($deepest bytes):"
    sed -n '1,60p' /tmp/stack.deepest.trace | sed 's/^/note:   /'
    [ $bad = 0 ] || die "ours is more than 1 KiB deeper than C"
    [ "$deepest" -le $((12 * 1024)) ] || die "ours used $deepest bytes of stack: less than 4 KiB of 16 KiB left"
}

# The stack bound of the submissions from queue_rq (debugfs
# inline_stack_min): reads from a shallow submitter (dd) are submitted from
# queue_rq with nothing deferred at the default bound; with a bound larger
# than any stack, every one goes to the worker instead, counted in
# stack_deferred, direct and buffered (page-cache reads); the data
# verifies throughout.
t_inline_stack_bound() {
    load
    truncate -s 64M $SCRATCH/img
    local dev; dev=$(losetup --direct-io=on -f --show $SCRATCH/img)
    local n=${dev#/dev/} d=/sys/kernel/debug/loop/loop0
    fio_rw $dev 4M --iodepth=1
    stack_bound_reads $n default 900 0
    echo $((1 << 30)) >$d/inline_stack_min
    fio_rw $dev 4M --iodepth=1
    stack_bound_reads $n "1 GiB" 0 900
    # Buffered: no page-cache read from queue_rq either.
    losetup --direct-io=off $dev
    dd if=$dev of=/dev/null bs=1M status=none
    local cached0 def0; cached0=$(nowait_stat $n cached_reads) def0=$(nowait_stat $n stack_deferred)
    dd if=$dev of=/dev/null bs=4k count=1000 iflag=direct status=none
    [ "$(nowait_stat $n cached_reads)" = "$cached0" ] || die "page-cache reads from queue_rq with a 1 GiB bound"
    [ $(($(nowait_stat $n stack_deferred) - def0)) -ge 1000 ] || die "buffered reads not deferred"
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev $SCRATCH/img || die "device and file differ"
    losetup -d $dev
    unload
}

# stack_bound_reads DEV WHAT HITS DEFERRED: 1000 direct 4k reads of DEV,
# one at a time, of which at least HITS submitted from queue_rq and at
# least DEFERRED deferred for the stack, and the other count 0.
stack_bound_reads() {
    local n=$1 hits def
    hits=$(nowait_stat $n nowait_hits) def=$(nowait_stat $n stack_deferred)
    dd if=/dev/$n of=/dev/null bs=4k count=1000 iflag=direct status=none
    hits=$(($(nowait_stat $n nowait_hits) - hits)) def=$(($(nowait_stat $n stack_deferred) - def))
    echo "note: $2 bound: of 1000 reads, $hits from queue_rq, $def deferred for the stack"
    if [ "$3" -gt 0 ]; then
        [ "$hits" -ge "$3" ] && [ "$def" = 0 ] || die "$2 bound: $hits from queue_rq, $def deferred"
    else
        [ "$hits" = 0 ] && [ "$def" -ge "$4" ] || die "$2 bound: $hits from queue_rq, $def deferred"
    fi
}

# A backing file whose filesystem does not say that it honours IOCB_NOWAIT
# (FMODE_NOWAIT): a file of overlayfs, which calls the real file with the
# mounter's credentials and may block. Nothing is submitted to it from
# queue_rq, direct or from the page cache, as io_uring would not; the
# worker does it all, and the data verifies.
t_nowait_needs_fmode_nowait() {
    load
    mkdir -p $SCRATCH/lower $SCRATCH/upper $SCRATCH/work /tmp/ovl
    mount -t overlay overlay -o lowerdir=$SCRATCH/lower,upperdir=$SCRATCH/upper,workdir=$SCRATCH/work /tmp/ovl
    truncate -s 64M /tmp/ovl/img
    local dev; dev=$(losetup --direct-io=on -f --show /tmp/ovl/img)
    local n=${dev#/dev/}
    sysfs_eq /sys/block/$n/loop/dio 1
    fio_rw $dev 4M --iodepth=1
    local hits cached
    hits=$(nowait_stat $n nowait_hits)
    echo "note: direct: $hits of $(done_ios $n) I/Os submitted from queue_rq"
    [ "$hits" = 0 ] || die "$hits direct I/Os submitted from queue_rq to an overlayfs file"
    losetup --direct-io=off $dev
    sysfs_eq /sys/block/$n/loop/dio 0
    dd if=$dev of=/dev/null bs=1M status=none
    dd if=$dev of=/dev/null bs=4k count=2000 iflag=direct status=none
    cached=$(($(nowait_stat $n cached_reads) + $(nowait_stat $n cached_misses)))
    echo "note: buffered: $cached reads tried from the page cache in queue_rq"
    [ "$cached" = 0 ] || die "$cached buffered reads tried from queue_rq on an overlayfs file"
    echo 3 >/proc/sys/vm/drop_caches
    cmp $dev /tmp/ovl/img || die "device and file differ"
    losetup -d $dev
    umount /tmp/ovl
    unload
}

# A backing file of FUSE, whose daemon sees the task and credentials of
# each caller (issue 27, the task-state audit: credentials and pid). The
# daemon (tests/guest/fuse_one_file.py) logs the pid, fsuid and comm of
# every READ and WRITE it serves. The loop device is written and read by
# an unprivileged user, direct I/O on the device, the loop device direct
# and then buffered: every read and write the daemon serves for it comes
# from a kernel worker with root's fsuid, as C's do, never from the user's
# task, whose uid and pid the daemon would act on. First, a control: the
# user's own direct read of the file shows in the log with the user's uid
# and comm, so the check can see a submitter. The data goes through FUSE
# and back byte for byte.
t_fuse_backing_creds() {
    load
    mkimg $SCRATCH/fuse.img 16
    mkimg $SCRATCH/pattern 4
    mkdir -p /tmp/fuse
    local flog=$SCRATCH/fuse.log fpid dev n mode dio bad reads writes
    local as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
    : >$flog
    python3 $REPO/tests/guest/fuse_one_file.py /tmp/fuse $SCRATCH/fuse.img $flog >/tmp/fuse.out 2>&1 &
    fpid=$!
    wait_until 30 "the FUSE daemon" grep -q ready /tmp/fuse.out
    $as_nobody dd if=/tmp/fuse/img of=/dev/null bs=64k count=4 iflag=direct status=none
    grep -q "^read [0-9]* 65534 dd$" $flog ||
        die "control: the daemon did not log the user's read: $(tail -n 3 $flog)"
    for mode in on off; do
        : >$flog
        dev=$(losetup --direct-io=$mode -f --show /tmp/fuse/img)
        n=${dev#/dev/}
        settle 30
        dio=$(cat /sys/block/$n/loop/dio)
        chmod 0666 $dev
        $as_nobody dd if=$SCRATCH/pattern of=$dev bs=64k seek=16 oflag=direct conv=fsync status=none
        echo 3 >/proc/sys/vm/drop_caches
        $as_nobody dd if=$dev of=/tmp/fuse.rd bs=64k skip=16 count=64 iflag=direct status=none
        cmp /tmp/fuse.rd $SCRATCH/pattern || die "dio=$dio: the device read back other data"
        cmp -n 4194304 -i 1048576:0 $SCRATCH/fuse.img $SCRATCH/pattern ||
            die "dio=$dio: the file holds other data"
        losetup -d $dev
        wait_unbound $n
        bad=$(grep -v "^[a-z]* [0-9]* 0 kworker/" $flog || true)
        reads=$(grep -c "^read" $flog || true) writes=$(grep -c "^write" $flog || true)
        echo "note: losetup --direct-io=$mode (dio $dio): $reads reads, $writes writes served," \
             "by $(awk '{ print $4 }' $flog | sort -u | tr '\n' ' ')"
        [ "$reads" -gt 0 ] && [ "$writes" -gt 0 ] || die "dio=$dio: the daemon served no read or no write"
        [ -z "$bad" ] || die "dio=$dio: served for another task than a worker: $(echo "$bad" | sort | uniq -c | head -n 5)"
    done
    umount /tmp/fuse
    wait $fpid || die "the FUSE daemon failed: $(tail -n 5 /tmp/fuse.out)"
    rm -f $SCRATCH/fuse.img $SCRATCH/pattern /tmp/fuse.rd
    unload
}

# Readers killed with SIGKILL in the middle of their reads (issue 27, the
# task-state audit: a pending fatal signal). A 16 MiB O_DIRECT read of a
# device whose max_sectors_kb is 4 becomes 4,096 requests, submitted from
# the reader's own task as its plug fills, and a SIGKILL leaves the rest
# to be submitted with the signal pending: a read of the backing file's
# page cache made there stops with EINTR (filemap_get_pages). Such a read
# must go to the worker, which redoes it, never end the request in an
# error. Buffered and direct devices, the file in the page cache; no
# request fails (no "I/O error" in dmesg) and the device reads as the file
# after every round (6 rounds a mode in the long tier; in the others 3,
# and the device compared after the last).
# On ours, the buffered rounds must show page-cache misses of the cached
# file: the reads the dying readers did not finish.
# wait_pgrp_leader PID: waits (10 s at most) until PID leads its own process
# group, as setsid makes it.
wait_pgrp_leader() {
    local st i
    for ((i = 0; i < 200; i++)); do
        read -r -a st <"/proc/$1/stat" || return 1
        [ "${st[4]}" != "$1" ] || return 0
        nap 0.05
    done
    return 1
}

t_killed_submitters() {
    load
    mkimg $SCRATCH/img 32
    cat $SCRATCH/img >/dev/null
    local mode dev n round pids i errs0 misses0 hits0 direct0 r0
    local rounds; rounds=$(sz 6 3)
    for mode in off on; do
        dev=$(losetup --direct-io=$mode -f --show $SCRATCH/img)
        n=${dev#/dev/}
        udevadm settle
        local max; max=$(</sys/block/$n/queue/max_sectors_kb)
        echo 4 >/sys/block/$n/queue/max_sectors_kb
        errs0=$(dmesg | grep -c "I/O error, dev $n," || true)
        [ $IMPL = c ] || { misses0=$(nowait_stat $n cached_misses) hits0=$(nowait_stat $n cached_reads)
                           direct0=$(nowait_stat $n nowait_hits); }
        for round in $(seq $rounds); do
            pids=()
            r0=$(read_ios $n)
            # Each reader reads the device over and over until it is
            # killed, in a process group of its own (setsid) that the kill
            # takes whole, so that it dies in a read however fast the
            # kernel (Debian's read the whole file in less than the nap).
            for i in 1 2 3; do
                setsid bash -c "while :; do
                    dd if=$dev of=/dev/null bs=16M count=2 iflag=direct status=none; done" &
                pids+=($!)
            done
            # Each its own group leader first: a kill of a group that is
            # not there yet would leave its reader reading for ever.
            for i in "${pids[@]}"; do
                wait_pgrp_leader "$i" || die "reader $i: no process group of its own"
            done
            # And reading: on a slow machine the nap alone could end
            # before any dd had started, and a CI run then saw no kill in
            # a read (0 misses in all 3 rounds).
            wait_until 60 "the readers' first read" reads_since $n $r0
            nap 0.$((RANDOM % 6 + 2))
            kill -9 -- "${pids[@]/#/-}" 2>/dev/null || true
            wait "${pids[@]}" 2>/dev/null || true
            # The check in requests of the usual size: in 4 KiB ones, each
            # cmp of the 32 MiB took 3.4 s. After every round in the long
            # tier, after the last in the others (1.6 s a cmp).
            if [ "$TIER" = long ] || [ $round = $rounds ]; then
                echo $max >/sys/block/$n/queue/max_sectors_kb
                cmp $dev $SCRATCH/img || die "dio=$mode, round $round: device and file differ"
                echo 4 >/sys/block/$n/queue/max_sectors_kb
            fi
        done
        local errs; errs=$(($(dmesg | grep -c "I/O error, dev $n," || true) - errs0))
        [ "$errs" = 0 ] || die "dio=$mode: $errs I/O errors: $(dmesg | grep "I/O error, dev $n," | tail -3)"
        if [ $IMPL != c ]; then
            local misses=$(($(nowait_stat $n cached_misses) - misses0))
            echo "note: dio=$mode: $misses page-cache misses of the cached file," \
                "$(($(nowait_stat $n cached_reads) - hits0)) hits," \
                "$(($(nowait_stat $n nowait_hits) - direct0)) direct reads from queue_rq"
            [ $mode = on ] || [ "$misses" -gt 0 ] ||
                die "dio=off: no read from queue_rq stopped by a pending SIGKILL"
        fi
        losetup -d $dev
    done
    unload
}
