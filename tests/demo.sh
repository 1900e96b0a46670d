#!/bin/bash
# The demo, run in the guest by `make demo`: load rloop's loop.ko and use the
# control plane the way util-linux does. Attaching files comes with the data
# path; until then this shows /dev/loop-control and the devices.
set -euo pipefail
cd "$(dirname "$0")/.."
show() { printf '\n$ %s\n' "$*"; "$@"; }

show insmod loop.ko max_loop=2
show modinfo -F description loop.ko
show grep -E '^ *7 ' /proc/devices
show ls -l /dev/loop-control /dev/loop0 /dev/loop1
show losetup -f
show target/debug/loopctl add 5
show target/debug/loopctl add 5 || true
show target/debug/loopctl get-free
show lsblk -o NAME,MAJ:MIN,SIZE,TYPE /dev/loop0 /dev/loop1 /dev/loop5
show target/debug/loopctl remove 5
show dd if=/dev/loop0 of=/dev/null bs=4k count=1
show rmmod loop
echo
echo "rloop demo: done"
