#!/usr/bin/python3
"""The host half of `scripts/bench --profile`: resolves the kernel addresses
of tests/bench/profile.sh's perf reports with the bench kernel's System.map
and writes DIR/profile.md, the top symbols of C and ours side by side per
job, with each run's IOPS and the share of samples in each binary.

    tests/bench/symbolize.py SYSTEM_MAP DIR
"""

import bisect
import glob
import os
import re
import sys

TOP = 15


def load_map(path):
    syms = []
    with open(path, encoding="ascii") as f:
        for line in f:
            addr, kind, name = line.split()[:3]
            if kind in "tTwW":
                syms.append((int(addr, 16), name))
    syms.sort()
    return [a for a, _ in syms], [n for _, n in syms]


def samples(path, addrs, names):
    """{symbol: percent of samples} of a `perf report --sort sym` file."""
    shares = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
            if not m:
                continue
            pct, space, sym = float(m.group(1)), m.group(2), m.group(3)
            if space == "k" and sym.startswith("0x"):
                i = bisect.bisect_right(addrs, int(sym, 16)) - 1
                # Module addresses lie above the kernel's text: no name.
                sym = names[i] if 0 <= i < len(names) - 1 else "[module or unknown]"
            shares[sym] = shares.get(sym, 0.0) + pct
    return shares


def binaries(path):
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"\s+([\d.]+)%\s+(\S+)", line)
            if m:
                out.append(f"{m.group(2)} {float(m.group(1)):.1f}%")
    return ", ".join(out[:5])


def iops(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("3;"):
                fields = line.split(";")
                return int(fields[7]) + int(fields[48])
    return 0


def main():
    addrs, names = load_map(sys.argv[1])
    out = sys.argv[2]
    jobs = sorted({os.path.basename(p)[len("c-"):-len(".flat")]
                   for p in glob.glob(os.path.join(out, "c-*.flat"))})
    lines = ["# perf profiles: C loop.ko and ours, raw loop device, DIO", ""]
    for job in jobs:
        lines += [f"## {job}", ""]
        tables = {}
        for driver in ("c", "rloop"):
            base = os.path.join(out, f"{driver}-{job}")
            tables[driver] = sorted(samples(base + ".flat", addrs, names).items(),
                                    key=lambda kv: -kv[1])[:TOP]
            lines.append(f"- {driver}: {iops(base + '.fio')} IOPS; samples by binary: "
                         f"{binaries(base + '.dso')}")
        lines += ["", "| C: symbol | % | ours: symbol | % |", "|---|---|---|---|"]
        for i in range(TOP):
            row = []
            for driver in ("c", "rloop"):
                sym, pct = tables[driver][i] if i < len(tables[driver]) else ("", 0.0)
                row += [f"`{sym}`" if sym else "", f"{pct:.2f}" if sym else ""]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    with open(os.path.join(out, "profile.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
