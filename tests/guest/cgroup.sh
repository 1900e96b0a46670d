# Cgroup charging (issue 28), sourced by run.sh: I/O through a loop device
# counts against the cgroup that issued it, as with C, whose worker runs
# each request with the issuer's blkcg (kthread_associate_blkcg) and memcg
# (set_active_memcg). Cgroup v2, the io and memory controllers.

# charge_cgroup NAME: a fresh cgroup v2 group NAME with the io and memory
# controllers; prints its directory.
charge_cgroup() {
    mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
    local c
    for c in io memory; do
        grep -qw $c /sys/fs/cgroup/cgroup.subtree_control ||
            echo +$c >/sys/fs/cgroup/cgroup.subtree_control
    done
    local cg=/sys/fs/cgroup/$1
    [ ! -d $cg ] || rmdir $cg
    mkdir $cg
    echo $cg
}

# in_cgroup CG CMD...: runs CMD in cgroup CG.
in_cgroup() { (echo $BASHPID >"$1/cgroup.procs" && exec "${@:2}"); }

# io_bytes CG MAJ:MIN: "rbytes wbytes" of the device MAJ:MIN in CG's
# io.stat (0 0 before its first I/O).
io_bytes() {
    awk -v d="$2" '$1 == d { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
                   END { print v["rbytes"] + 0, v["wbytes"] + 0 }' "$1/io.stat"
}

# mem_file CG: the bytes of page cache charged to CG (memory.stat file).
mem_file() { awk '$1 == "file" { print $2 }' "$1/memory.stat"; }

# The bytes a cgroup reads and writes through a loop device show in its
# own io.stat for the disk under the backing file, and the backing file's
# page cache that a buffered device fills for it in its memory.stat: a
# buffered device, a direct one and (ours) a direct one whose I/O all goes
# to the worker (nowait off). The backing file is written from the cgroup,
# so that its writeback is the cgroup's too.
t_cgroup_charging() {
    load
    local cg; cg=$(charge_cgroup rloop-charge)
    local disk; disk=$(cat /sys/block/vda/dev)
    local mib=32 min=$((30 << 20))
    # A new file: an inode's writeback goes to the cgroup that first
    # dirtied it, and one left by another test would be the root's.
    rm -f $SCRATCH/img
    in_cgroup $cg dd if=/dev/urandom of=$SCRATCH/img bs=1M count=64 status=none
    sync
    local mode dev n r0 w0 r1 w1 r2 w2 f0 f1
    for mode in off on on,nowait=0; do
        [ $IMPL = rloop ] || [ $mode != on,nowait=0 ] || continue
        dev=$(losetup --direct-io=${mode%%,*} -f --show $SCRATCH/img)
        n=${dev#/dev/}
        [ $mode != on,nowait=0 ] || echo 0 >/sys/block/$n/loop/nowait
        echo 3 >/proc/sys/vm/drop_caches
        read -r r0 w0 < <(io_bytes $cg $disk)
        f0=$(mem_file $cg)
        in_cgroup $cg dd if=$dev of=/dev/null bs=1M count=$mib iflag=direct status=none
        read -r r1 w1 < <(io_bytes $cg $disk)
        f1=$(mem_file $cg)
        echo "note: dio=$mode: the cgroup read $((r1 - r0 >> 20)) MiB of vda for $mib MiB of $n" \
            "(page cache charged: $((f1 - f0 >> 20)) MiB)"
        [ $((r1 - r0)) -ge $min ] ||
            die "dio=$mode: $((r1 - r0 >> 10)) KiB of vda reads counted in the reader's cgroup for $mib MiB"
        if [ ${mode%%,*} = off ]; then
            [ $((f1 - f0)) -ge $((16 << 20)) ] ||
                die "dio=off: $((f1 - f0 >> 10)) KiB of the backing file's page cache charged to the reader's cgroup"
        fi
        in_cgroup $cg dd if=/dev/urandom of=$dev bs=1M count=$mib oflag=direct status=none
        sync
        read -r r2 w2 < <(io_bytes $cg $disk)
        echo "note: dio=$mode: the cgroup wrote $((w2 - w1 >> 20)) MiB of vda for $mib MiB of $n"
        [ $((w2 - w1)) -ge $min ] ||
            die "dio=$mode: $((w2 - w1 >> 10)) KiB of vda writes counted in the writer's cgroup for $mib MiB"
        cmp $dev $SCRATCH/img || die "dio=$mode: device and file differ"
        losetup -d $dev
    done
    # A filesystem on a direct-I/O device, its files written by the
    # cgroup through the page cache: the flusher (a kernel thread) writes
    # them back through the device for the cgroup, one file at a time, and
    # the device's writes to the disk below count against the cgroup too,
    # not the flusher's root. xfs on the second disk. Ours prints how many
    # of them were submitted from queue_rq: none in our runs, even with
    # the check that sends a kernel thread's submissions for another
    # cgroup to the worker taken out, so that check has no test yet.
    disk=$(cat /sys/block/${STACK_DISK#/dev/}/dev)
    dev=$(losetup --direct-io=on -f --show $STACK_DISK)
    n=${dev#/dev/}
    mkfs.xfs -q -f -K $dev
    mkdir -p /tmp/mnt && mount $dev /tmp/mnt
    sync
    read -r r0 w0 < <(io_bytes $cg $disk)
    local i h0=0; [ $IMPL = c ] || h0=$(nowait_stat $n nowait_hits)
    for i in $(seq 32); do
        in_cgroup $cg dd if=/dev/urandom of=/tmp/mnt/f$i bs=128k count=1 status=none
        sync
    done
    read -r r1 w1 < <(io_bytes $cg $disk)
    echo "note: xfs on $n on vdb: the cgroup wrote $((w1 - w0 >> 10)) KiB of vdb for 32 files of 128 KiB written back"
    [ $IMPL = c ] || echo "note: xfs on $n: $(($(nowait_stat $n nowait_hits) - h0)) direct I/Os from queue_rq"
    [ $((w1 - w0)) -ge $((3584 << 10)) ] ||
        die "xfs on the device: $((w1 - w0 >> 10)) KiB of vdb writes counted in the cgroup for 4 MiB written back"
    umount /tmp/mnt
    losetup -d $dev
    rmdir $cg
    unload
}
