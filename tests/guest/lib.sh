# Shell functions shared by the guest scripts (tests/guest/run.sh and
# tests/xfstests/guest.sh). Sourced; REPO and KDIR must be set.

# A kernel splat in dmesg: a bug report, a warning (lockdep's reports begin
# with "WARNING: possible ..." or "BUG: ..."), KASAN, UBSAN, an oops, a hung
# task. scripts/vm fails a run whose dmesg has one; run.sh fails the test
# during which it appeared.
SPLAT_RE='BUG:|WARNING:|KASAN:|Oops|Call Trace|lockdep is turned off|INFO: task .* blocked|general protection fault|UBSAN:|Kernel panic'

# loop_ko IMPL: the module file of IMPL, "rloop" (ours) or "c" (KDIR's).
# A kernel not built here (Debian's, scripts/build-debian) has ours built
# for it in KDIR/rloop/.
loop_ko() {
    if [ "$1" = c ]; then echo "$KDIR/drivers/block/loop.ko"
    elif [ -f "$KDIR/rloop/loop.ko" ]; then echo "$KDIR/rloop/loop.ko"
    else echo "$REPO/loop.ko"; fi
}

# no_loop_autoload: the guest's modprobe sees KDIR's modules, the C loop.ko
# among them, under the aliases block-major-7-* and char-major-10-237. While
# no loop module is loaded, an open of a loop node (by udev, losetup, or a
# test) would load the C driver behind the scripts' back: the next insmod
# then gets EEXIST, or a run meant for ours runs on C. Loop modules come
# only from insmod here; a refused autoload shows in dmesg.
no_loop_autoload() {
    mkdir -p /etc/modprobe.d &&
        echo 'install loop echo "rloop guest scripts: autoload of loop refused" >/dev/kmsg; exit 1' \
            >/etc/modprobe.d/rloop-no-autoload.conf
}

# dump_blocked: the tasks in uninterruptible sleep, with their kernel
# stacks, and the process list, so that a hang says where it is.
dump_blocked() {
    local p
    echo "tasks in D state:"
    for p in /proc/[0-9]*; do
        [ "$(awk '{print $3}' "$p/stat" 2>/dev/null)" = D ] || continue
        echo "-- ${p#/proc/} $(cat "$p/comm" 2>/dev/null)"
        cat "$p/stack" 2>/dev/null
    done
    echo "processes:"
    ps -eo pid,ppid,stat,wchan:30,args | grep -v ' \[' | tail -n 40
}
