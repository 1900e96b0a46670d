#!/usr/bin/python3
"""The guest half of `make bench` (scripts/bench).

Runs in one boot of the bench kernel, as root. Loads the C loop.ko of KDIR
and ours one after the other, never both, on the same backing files, and
appends one JSON object per fio run to OUT/runs.jsonl.

Workloads (see BENCHMARKS.md):
  A  ext4 on the loop device, fio psync, 4 jobs, 4k: randread, read,
     randwrite, write. Its data set is half the guest's memory, written
     through the loop device before it is read.
  B  the raw loop device, libaio with direct=1: 4k randread and randwrite
     at iodepth 1, 16 and 32, and 1M sequential read and write.
  C  the jobs of B on the backing file itself (O_DIRECT) and on a raw
     partition of the scratch disk: the ceiling a loop device cannot pass.
     The jobs of depth 2 or more also as two fio jobs of half the depth
     on the backing file ("file2"): a loop device submits to its backing
     file from another task than fio's, so under TCG, where the guest's
     CPUs are the bottleneck, it spreads the same I/O over both vCPUs; one
     fio task on the file does not.
     And the ceiling of a buffered loop device's random reads: the backing
     file read through its page cache at depth 16 and 32 by io_uring, which
     waits for a page as the driver's page-cache reads do (IOCB_WAITQ).

Every cell of {C, ours} x {buffered, DIO} runs at least REPS times,
interleaved: a repetition runs both drivers, C first in odd repetitions
and ours first in even ones, so that neither always runs on the state the
other left; the ceiling runs after the drivers in the first REPS. After
that, only the cells whose ratio ours/C is still undecided run again:
they are looked at after every REPS repetitions (verdict.py: undecided
while the interval straddles 1.00, at the level that keeps a 10% chance
over all the looks of deciding a cell level with C), until every cell is
decided, MAX_REPS repetitions are done, or the next REPS repetitions
would end past BUDGET seconds since the first. The design (REPS,
MAX_REPS, BUDGET and the level) goes to OUT/design.json for report.py.
Caches are dropped before every run.

    tests/bench/guest.py --kdir KDIR --out DIR [--reps 3] [--max-reps 12]
                         [--budget 1500] [--runtime 3] [--cells W:JOB:MODE...]

--cells runs only the cells named (fnmatch patterns, for example
B:randread-qd1:buffered or 'B:*:dio'), and no ceiling: a focused A/B of
a few cells, with more repetitions for the same time.
"""

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verdict  # noqa: E402  (beside this file)

DISK = "/dev/vda"
FS_PART, RAW_PART = DISK + "1", DISK + "2"
BACK = "/tmp/bench-back"  # ext4 on FS_PART: the backing files
MNT = "/tmp/bench-mnt"  # ext4 on the loop device (workload A)
RAW_MIB = 1024  # the raw partition, and the file of workloads B and C

A_JOBS = ["randread", "read", "randwrite", "write"]
# name: (rw, block size, iodepth)
B_JOBS = {
    "randread-qd1": ("randread", "4k", 1),
    "randread-qd16": ("randread", "4k", 16),
    "randread-qd32": ("randread", "4k", 32),
    "randwrite-qd1": ("randwrite", "4k", 1),
    "randwrite-qd16": ("randwrite", "4k", 16),
    "randwrite-qd32": ("randwrite", "4k", 32),
    "read-1M": ("read", "1M", 8),
    "write-1M": ("write", "1M", 8),
}
# The buffered ceiling of workload C: name: iodepth, 4k random reads.
C_BUFFERED_JOBS = {"randread-qd16": 16, "randread-qd32": 32}


def select_cells(cells, patterns):
    """The CELLS ((workload, job, mode)) that PATTERNS (fnmatch patterns of
    "W:JOB:MODE") name, in their order; all of them when there is none."""
    if not patterns:
        return list(cells)
    return [c for c in cells if any(fnmatch.fnmatchcase(":".join(c), p) for p in patterns)]


def run(*cmd, capture=False):
    """Runs cmd; fails the benchmark when it fails."""
    res = subprocess.run(cmd, check=False, text=True,
                         stdout=subprocess.PIPE if capture else None)
    if res.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed with {res.returncode}")
    return res.stdout if capture else None


def proc_stat():
    """(context switches, user seconds, system seconds) since boot."""
    hz = os.sysconf("SC_CLK_TCK")
    ctxt = user = system = 0
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            words = line.split()
            if words[0] == "cpu":
                # user nice system idle iowait irq softirq ...
                user = (int(words[1]) + int(words[2])) / hz
                system = (int(words[3]) + int(words[6]) + int(words[7])) / hz
            elif words[0] == "ctxt":
                ctxt = int(words[1])
    return ctxt, user, system


def meminfo_mib(key):
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def resident_mib(path):
    """The page-cache residency of path (util-linux fincore), in MiB."""
    out = run("fincore", "-b", "-n", "-o", "RES", path, capture=True)
    return int(out.split()[0]) / 2**20


def fio_in_tmpfs():
    """The command that runs fio from a copy in tmpfs.

    Dropping the caches before every run also drops fio's binary and its
    64 shared libraries, which the guest then reads again from the host
    over 9p: 2 to 3 s per run under TCG, a third of the benchmark's time,
    and context switches counted against the run. tmpfs pages are not
    dropped, so the copy stays in memory; its own loader runs it with the
    copied libraries.
    """
    copy = "/dev/shm/bench-fio"
    os.makedirs(copy, exist_ok=True)
    binary = shutil.which("fio")
    if binary is None:
        sys.exit("bench: no fio")
    libs = [w for line in run("ldd", binary, capture=True).splitlines()
            for w in line.split() if w.startswith("/")]
    loader = [lib for lib in libs if os.path.basename(lib).startswith("ld-linux")]
    if len(loader) != 1:
        sys.exit(f"bench: no single dynamic loader for {binary}: {loader}")
    run("cp", "-L", binary, *libs, copy)
    return [os.path.join(copy, os.path.basename(loader[0])), "--library-path", copy,
            os.path.join(copy, "fio")]


def drop_caches():
    run("sync")
    with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
        f.write("3\n")


COUNTERS = ("nowait_hits", "eagain_fallbacks", "cached_reads", "cached_misses", "worker_ios")


def io_counters(dev):
    """rloop's debugfs counters of the loop device DEV (none for C)."""
    d = f"/sys/kernel/debug/loop/{os.path.basename(dev)}"
    if not os.path.isdir(d):
        return None
    figures = {}
    for name in COUNTERS:
        with open(os.path.join(d, name), encoding="ascii") as f:
            figures[name] = int(f.read())
    return figures


def fio(fio_cmd, args, backing, runtime):
    """One measured fio run: caches dropped first, the figures after."""
    drop_caches()
    c0, u0, s0 = proc_stat()
    t0 = time.monotonic()
    out = run(*fio_cmd, "--output-format=json", "--group_reporting", "--time_based",
              f"--runtime={runtime}", "--invalidate=0",
              *args, capture=True)
    wall = time.monotonic() - t0
    c1, u1, s1 = proc_stat()
    job = json.loads(out[out.index("{"):])["jobs"][0]
    ios = job["read"]["total_ios"] + job["write"]["total_ios"]
    side = job["read"] if job["read"]["total_ios"] else job["write"]
    pct = side["clat_ns"].get("percentile", {})
    return {
        "iops": job["read"]["iops"] + job["write"]["iops"],
        "bw_mib": (job["read"]["bw"] + job["write"]["bw"]) / 1024,
        "p50_us": pct.get("50.000000", 0) / 1000,
        "p99_us": pct.get("99.000000", 0) / 1000,
        # System-wide, over the whole fio run (its start-up included, which
        # no longer reads fio from the host: see fio_in_tmpfs).
        "ctxt_per_io": (c1 - c0) / max(ios, 1),
        "buffers_mib": meminfo_mib("Buffers"),
        "cached_mib": meminfo_mib("Cached"),
        "backing_resident_mib": resident_mib(backing) if backing else None,
        "user_s": u1 - u0,
        "sys_s": s1 - s0,
        "wall_s": wall,
    }


class Bench:
    def __init__(self, kdir, out, reps, runtime, rloop_params, max_reps=12, budget=1500,
                 cells=()):
        self.kdir, self.out, self.reps, self.runtime = kdir, out, reps, runtime
        self.cells = list(cells)
        self.max_reps, self.budget = max(max_reps, reps), budget
        self.level = verdict.look_level(reps, self.max_reps)
        with open(os.path.join(out, "design.json"), "w", encoding="utf-8") as f:
            json.dump({"reps": reps, "max_reps": self.max_reps, "budget": budget,
                       "level": self.level, "cells": self.cells}, f)
        self.rloop_params = rloop_params
        self.runs = []  # this run's rows, for the verdicts between repetitions
        self.fio = fio_in_tmpfs()
        self.results = open(os.path.join(out, "runs.jsonl"), "a", encoding="utf-8")
        self.counters = open(os.path.join(out, "counters.jsonl"), "a", encoding="utf-8")
        self.bound_counters = {}
        with open("/proc/meminfo", encoding="ascii") as f:
            mem_mib = int(f.readline().split()[1]) // 1024
        # Workload A's data: half the guest's memory, in 4 files. Buffered,
        # the loop device's cache and the backing file's together exceed
        # memory; with DIO only one copy is cached.
        self.a_file_mib = mem_mib // 2 // 4 // 4 * 4
        self.a_back_mib = self.a_file_mib * 4 * 3 // 2 + 256

    def ko(self, driver):
        if driver == "c":
            return os.path.join(self.kdir, "drivers/block/loop.ko")
        return os.path.abspath("loop.ko")

    def record(self, workload, job, driver, mode, rep, figures):
        row = {"workload": workload, "job": job, "driver": driver, "mode": mode,
               "rep": rep, **figures}
        self.results.write(json.dumps(row) + "\n")
        self.results.flush()
        self.runs.append(row)
        print(f"{workload} {job:15} {driver:5} {mode:8} rep {rep}: "
              f"{figures['iops']:9.0f} IOPS  {figures['ctxt_per_io']:5.2f} ctxt/IO", flush=True)

    def attach(self, backing, dio):
        dev = run("losetup", f"--direct-io={'on' if dio else 'off'}", "-f", "--show",
                  backing, capture=True).strip()
        counters = io_counters(dev)
        if counters is not None:
            self.bound_counters[dev] = counters
        return dev

    def setup(self, workload_a=True):
        with open("/sys/block/vda/size", encoding="ascii") as f:
            disk_mib = int(f.read()) * 512 // 2**20
        layout = f",{disk_mib - RAW_MIB - 16}M\n,{RAW_MIB}M\n"
        subprocess.run(["sfdisk", "-q", DISK], input=layout, text=True, check=True)
        run("udevadm", "settle")
        run("mkfs.ext4", "-q", "-F", FS_PART)
        os.makedirs(BACK, exist_ok=True)
        os.makedirs(MNT, exist_ok=True)
        run("mount", FS_PART, BACK)
        # Written data everywhere: unwritten space reads as zeroes without
        # touching the disk, and would measure a different path.
        fill = ["--rw=write", "--bs=1M", "--ioengine=libaio", "--iodepth=8", "--direct=1"]
        run(*self.fio, "--name=fill", f"--filename={BACK}/raw.img", f"--size={RAW_MIB}M",
            *fill, capture=True)
        run(*self.fio, "--name=fill", f"--filename={RAW_PART}", f"--size={RAW_MIB}M",
            *fill, capture=True)
        if not workload_a:
            return
        # Workload A's filesystem and data, made once through the C driver.
        run("truncate", "-s", f"{self.a_back_mib}M", f"{BACK}/fs.img")
        run("insmod", self.ko("c"))
        dev = self.attach(f"{BACK}/fs.img", dio=False)
        run("mkfs.ext4", "-q", dev)
        run("mount", dev, MNT)
        run(*self.fio, "--name=a", f"--directory={MNT}", "--numjobs=4",
            f"--size={self.a_file_mib}M", "--rw=write", "--bs=1M", "--ioengine=psync",
            "--end_fsync=1", "--invalidate=0", capture=True)
        run("umount", MNT)
        run("losetup", "-d", dev)
        run("udevadm", "settle")
        run("rmmod", "loop")
        print(f"bench: workload A: 4 x {self.a_file_mib} MiB on a {self.a_back_mib} MiB "
              f"backing file; B and C: {RAW_MIB} MiB", flush=True)

    def workload_a(self, driver, mode, rep, jobs):
        if not jobs:
            return
        dev = self.attach(f"{BACK}/fs.img", dio=mode == "dio")
        run("mount", dev, MNT)
        for rw in jobs:
            figures = self.fio_a(rw)
            self.record("A", rw, driver, mode, rep, figures)
        run("umount", MNT)
        self.record_counters("A", driver, mode, rep, dev)
        run("losetup", "-d", dev)

    def record_counters(self, workload, driver, mode, rep, dev):
        """rloop's I/O path counters since the device was bound, to
        OUT/counters.jsonl: the counters live as long as the device, so
        the ones read at the bind are subtracted."""
        now = io_counters(dev)
        if now is None:
            return
        before = self.bound_counters.pop(dev, dict.fromkeys(COUNTERS, 0))
        row = {"workload": workload, "driver": driver, "mode": mode, "rep": rep,
               **{k: now[k] - before[k] for k in COUNTERS}}
        self.counters.write(json.dumps(row) + "\n")
        self.counters.flush()
        print(f"{workload} counters        {driver:5} {mode:8} rep {rep}: "
              + "  ".join(f"{k} {row[k]}" for k in COUNTERS), flush=True)

    def fio_a(self, rw):
        return fio(self.fio, ["--name=a", f"--directory={MNT}", "--numjobs=4",
                              f"--size={self.a_file_mib}M", f"--rw={rw}", "--bs=4k",
                              "--ioengine=psync"], f"{BACK}/fs.img", self.runtime)

    def raw_job(self, name, target, backing, rw, bs, depth, engine="libaio", direct=1,
                numjobs=1):
        """One fio run on the first RAW_MIB of TARGET (a device or a file),
        by NUMJOBS jobs of DEPTH each."""
        return fio(self.fio, [f"--name={name}", f"--filename={target}", f"--size={RAW_MIB}M",
                              f"--rw={rw}", f"--bs={bs}", f"--ioengine={engine}",
                              f"--iodepth={depth}", f"--direct={direct}",
                              f"--numjobs={numjobs}"],
                   backing, self.runtime)

    def b_jobs(self, target, backing, names=tuple(B_JOBS)):
        for name in names:
            rw, bs, depth = B_JOBS[name]
            yield name, self.raw_job("b", target, backing, rw, bs, depth)

    def workload_b(self, driver, mode, rep, jobs):
        if not jobs:
            return
        dev = self.attach(f"{BACK}/raw.img", dio=mode == "dio")
        for name, figures in self.b_jobs(dev, f"{BACK}/raw.img", jobs):
            self.record("B", name, driver, mode, rep, figures)
        self.record_counters("B", driver, mode, rep, dev)
        run("losetup", "-d", dev)

    def workload_c(self, rep):
        for name, figures in self.b_jobs(f"{BACK}/raw.img", f"{BACK}/raw.img"):
            self.record("C", name, "file", "odirect", rep, figures)
        for name, figures in self.b_jobs(RAW_PART, None):
            self.record("C", name, "disk", "odirect", rep, figures)
        for name, (rw, bs, depth) in B_JOBS.items():
            if depth >= 2:
                figures = self.raw_job("c2", f"{BACK}/raw.img", f"{BACK}/raw.img", rw, bs,
                                       depth // 2, numjobs=2)
                self.record("C", name, "file2", "odirect", rep, figures)
        # The page cache was dropped before each run, as for the loop
        # devices: every read misses it, as in workload B.
        for name, depth in C_BUFFERED_JOBS.items():
            figures = self.raw_job("c", f"{BACK}/raw.img", f"{BACK}/raw.img", "randread",
                                   "4k", depth, engine="io_uring", direct=0)
            self.record("C", name, "file", "buffered", rep, figures)

    def undecided(self, cells):
        """The CELLS whose ratio ours/C is not yet on one side of 1.00."""
        return [cell for cell in cells
                if verdict.verdict(verdict.interval(
                    verdict.paired_ratios(self.runs, *cell), self.level)) == "undecided"]

    def repetition(self, rep, cells):
        """Runs CELLS ((workload, job, mode)) on both drivers, the first
        driver alternating with REP."""
        drivers = ("c", "rloop") if rep % 2 else ("rloop", "c")
        for driver in drivers:
            run("insmod", self.ko(driver), *(self.rloop_params if driver == "rloop" else []))
            for mode in ("buffered", "dio"):
                self.workload_a(driver, mode, rep, [j for w, j, m in cells if w == "A" and m == mode])
                self.workload_b(driver, mode, rep, [j for w, j, m in cells if w == "B" and m == mode])
            run("udevadm", "settle")
            run("rmmod", "loop")

    def main(self):
        if not os.path.ismount("/sys/kernel/debug"):
            run("mount", "-t", "debugfs", "none", "/sys/kernel/debug")
        every = select_cells([("A", j, m) for m in ("buffered", "dio") for j in A_JOBS] +
                              [("B", j, m) for m in ("buffered", "dio") for j in B_JOBS],
                             self.cells)
        if not every:
            sys.exit(f"bench: no cell matches --cells {' '.join(self.cells)}")
        self.setup(workload_a=any(w == "A" for w, _, _ in every))
        looks = verdict.look_points(self.reps, self.max_reps)
        cells, t0, rep = every, time.monotonic(), 0
        while cells:
            rep += 1
            t_rep = time.monotonic()
            self.repetition(rep, cells)
            per_cell = (time.monotonic() - t_rep) / len(cells)
            if rep <= self.reps and not self.cells:
                self.workload_c(rep)
            if rep not in looks:
                continue
            cells = self.undecided(every)
            elapsed = time.monotonic() - t0
            print(f"bench: after {rep} repetitions ({elapsed:.0f} s), {len(cells)} of "
                  f"{len(every)} cells undecided: "
                  + ", ".join(" ".join(c) for c in cells), flush=True)
            # The verdicts hold at the looks only: stop at one.
            if rep == looks[-1] or elapsed + per_cell * len(cells) * self.reps > self.budget:
                break
        run("umount", BACK)
        self.results.close()
        self.counters.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--reps", type=int, default=3,
                        help="repetitions of every cell")
    parser.add_argument("--max-reps", type=int, default=12,
                        help="repetitions of an undecided cell, at most")
    parser.add_argument("--budget", type=int, default=1500,
                        help="seconds from the first repetition after which none starts")
    parser.add_argument("--runtime", type=int, default=3)
    parser.add_argument("--rloop-params", default="",
                        help="module parameters for our loop.ko, as insmod takes them")
    parser.add_argument("--cells", nargs="*", default=[],
                        help="only these cells, W:JOB:MODE (fnmatch patterns), no ceiling")
    args = parser.parse_args()
    Bench(args.kdir, args.out, args.reps, args.runtime, args.rloop_params.split(),
          args.max_reps, args.budget, args.cells).main()


if __name__ == "__main__":
    main()
