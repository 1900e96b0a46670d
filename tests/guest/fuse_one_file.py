#!/usr/bin/env python3
"""A FUSE filesystem of one file, for the guest test fuse_backing_creds.

    fuse_one_file.py MOUNTPOINT BACKING LOG

Mounts at MOUNTPOINT a filesystem whose root holds one file, `img`, whose
data is BACKING's. It speaks the kernel's FUSE protocol over /dev/fuse
itself (no libfuse in the guest), one request at a time, and appends a
line "OP PID UID COMM" to LOG for each READ and WRITE it serves: the task
the kernel names as the caller (`fuse_in_header`'s pid, its fsuid), and
that task's /proc/PID/comm, read while the caller still waits for the
reply. This is what a FUSE daemon sees of whoever does I/O to its file:
through a loop device, it should be the loop driver's worker, never the
task that submitted to the loop device (issue 27, the task-state audit).

Prints "ready" on stdout once mounted; serves until unmounted.
"""

import ctypes
import errno
import os
import struct
import sys

# Opcodes of include/uapi/linux/fuse.h.
LOOKUP, FORGET, GETATTR, SETATTR = 1, 2, 3, 4
OPEN, READ, WRITE, STATFS, RELEASE, FSYNC, FLUSH, INIT = 14, 15, 16, 17, 18, 20, 25, 26
OPENDIR, READDIR, RELEASEDIR, INTERRUPT, DESTROY, BATCH_FORGET = 27, 28, 29, 36, 38, 42
NO_REPLY = {FORGET, BATCH_FORGET, INTERRUPT}

ROOT, FILE = 1, 2
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")  # len error unique
MAX_WRITE = 128 * 1024


def attr(nodeid, size):
    """`struct fuse_attr`: a directory for the root, a 0666 file for img."""
    mode = 0o40755 if nodeid == ROOT else 0o100666
    nlink = 2 if nodeid == ROOT else 1
    return struct.pack("<QQQQQQIIIIIIIIII", nodeid, size, (size + 511) // 512,
                       0, 0, 0, 0, 0, 0, mode, nlink, 0, 0, 0, 4096, 0)


def main():
    mnt, backing, log_path = sys.argv[1:4]
    data = os.open(backing, os.O_RDWR)
    log = open(log_path, "a", buffering=1)
    fuse = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = f"fd={fuse},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"rloopfuse", mnt.encode(), b"fuse", 0, opts) != 0:
        e = ctypes.get_errno()
        sys.exit(f"fuse_one_file: mount: {os.strerror(e)}")
    print("ready", flush=True)

    def size():
        return os.fstat(data).st_size

    while True:
        try:
            req = os.read(fuse, MAX_WRITE + 4096)
        except OSError as e:
            if e.errno == errno.ENODEV:  # unmounted
                return
            if e.errno in (errno.EINTR, errno.ENOENT):  # an interrupted request
                continue
            raise
        _, op, unique, nodeid, uid, _gid, pid, _, _ = IN_HEADER.unpack_from(req)
        body = req[IN_HEADER.size:]
        if op in NO_REPLY:
            continue
        err, out = 0, b""
        if op == INIT:
            readahead, = struct.unpack_from("<I", body, 8)  # after major, minor
            # fuse_init_out of 7.31: FUSE_ASYNC_READ | FUSE_BIG_WRITES.
            out = struct.pack("<IIIIHHIIHHI", 7, 31, readahead, 1 | 32, 16, 12,
                              MAX_WRITE, 1, 0, 0, 0) + bytes(28)
        elif op == LOOKUP:
            if nodeid == ROOT and body.rstrip(b"\0") == b"img":
                out = struct.pack("<QQQQII", FILE, 0, 1, 1, 0, 0) + attr(FILE, size())
            else:
                err = -errno.ENOENT
        elif op in (GETATTR, SETATTR):
            if op == SETATTR:
                valid, = struct.unpack_from("<I", body)
                if valid & (1 << 3):  # FATTR_SIZE
                    os.ftruncate(data, struct.unpack_from("<Q", body, 16)[0])
            out = struct.pack("<QII", 1, 0, 0) + attr(nodeid, size())
        elif op in (OPEN, OPENDIR):
            out = struct.pack("<QIi", 0, 0, 0)
        elif op == READ or op == WRITE:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip().replace(" ", "_")
            except OSError:
                comm = "?"
            _fh, off, length = struct.unpack_from("<QQI", body)
            log.write(f"{'read' if op == READ else 'write'} {pid} {uid} {comm}\n")
            if op == READ:
                out = os.pread(data, length, off)
            else:
                out = struct.pack("<II", os.pwrite(data, body[40:40 + length], off), 0)
        elif op == STATFS:
            out = struct.pack("<QQQQQIIII", 1 << 20, 1 << 19, 1 << 19, 16, 14,
                              4096, 255, 4096, 0) + bytes(24)
        elif op == READDIR:
            out = b""  # an empty directory as far as listings go
        elif op == FSYNC:
            os.fsync(data)
        elif op in (RELEASE, RELEASEDIR, FLUSH, DESTROY):
            pass
        else:
            err = -errno.ENOSYS
        try:
            os.write(fuse, OUT_HEADER.pack(OUT_HEADER.size + len(out), err, unique) + out)
        except OSError as e:
            if e.errno != errno.ENOENT:  # the request was aborted meanwhile
                raise
        if op == DESTROY:
            return


if __name__ == "__main__":
    main()
