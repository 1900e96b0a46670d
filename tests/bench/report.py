#!/usr/bin/python3
"""The report of `make bench`: from DIR/runs.jsonl (tests/bench/guest.py),
writes DIR/results.json (every cell's median, min and max, and the ratios),
DIR/results.md (the tables and the targets) and DIR/ratios.png (ours/C per
cell with the spread).

    tests/bench/report.py DIR [--against EARLIER_DIR]

The ratio ours/C of a cell is taken per repetition, between runs made next
to each other; the table gives the geometric mean of those ratios, its
interval and the verdict (verdict.py): ahead or behind only when the whole
interval is on one side of 1.00, else undecided. The interval's level is
the run's (design.json): 90% over all the looks guest.py took. With --against, the cells
whose interval lies wholly below or above that of an earlier run are
listed.
"""

import argparse
import json
import os
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verdict  # noqa: E402  (beside this file)

METRICS = ["iops", "bw_mib", "p50_us", "p99_us", "ctxt_per_io", "buffers_mib",
           "cached_mib", "backing_resident_mib", "user_s", "sys_s"]
MODES = ["buffered", "dio"]


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def design_level(d):
    """The interval level of the run in D (guest.py's design.json); runs
    from before it had a fixed number of repetitions, one look: 90%."""
    path = os.path.join(d, "design.json")
    if not os.path.exists(path):
        return 0.90
    with open(path, encoding="utf-8") as f:
        return json.load(f)["level"]


def aggregate(runs, level=0.90):
    """{(workload, job, driver, mode): {metric: summary}} and the ratios
    {(workload, job, mode): summary of ours/C IOPS per repetition, with
    the interval ("mean", "lo", "hi", "n") and the "verdict"}."""
    cells = defaultdict(list)
    for r in runs:
        cells[(r["workload"], r["job"], r["driver"], r["mode"])].append(r)
    stats = {k: {m: summary([r[m] for r in rs]) for m in METRICS} for k, rs in cells.items()}
    ratios = {}
    for (w, j, d, m) in cells:
        if d != "rloop" or (w, j, "c", m) not in cells:
            continue
        per_rep = verdict.paired_ratios(runs, w, j, m)
        s = summary(per_rep)
        if s:
            iv = verdict.interval(per_rep, level)
            s.update(mean=iv["mean"], lo=iv["lo"], hi=iv["hi"], verdict=verdict.verdict(iv))
        ratios[(w, j, m)] = s
    return stats, ratios


def jobs_of(stats, workload):
    seen = []
    for (w, j, _, _) in stats:
        if w == workload and j not in seen:
            seen.append(j)
    return seen


def fmt(s, key="median", digits=0):
    if s is None:
        return "–"
    return f"{s[key]:,.{digits}f}"


def spread(s, digits=0):
    if s is None:
        return "–"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def ratio_cell(r):
    """A ratio's geometric mean, interval, verdict and repetitions."""
    if not r:
        return "–"
    return f"{r['mean']:.2f} ({r['lo']:.2f}–{r['hi']:.2f}) {r['verdict']}, n={r['n']}"


def markdown(stats, ratios, level):
    out = []
    out.append("### Ours/C, IOPS (IOPS: median, min–max; ours/C: geometric mean of the "
               f"per-repetition ratios, its {level:.1%} interval, the verdict and the "
               "repetitions)\n")
    out.append("| workload | job | mode | C IOPS | ours IOPS | ours/C | C ctxt/IO | ours ctxt/IO "
               "| C p50/p99 µs | ours p50/p99 µs |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for w in ("A", "B"):
        for j in jobs_of(stats, w):
            for m in MODES:
                c, o = stats.get((w, j, "c", m)), stats.get((w, j, "rloop", m))
                if not c or not o:
                    continue
                out.append(
                    f"| {w} | {j} | {m} | {spread(c['iops'])} | {spread(o['iops'])} "
                    f"| {ratio_cell(ratios.get((w, j, m)))} "
                    f"| {fmt(c['ctxt_per_io'], digits=2)} | {fmt(o['ctxt_per_io'], digits=2)} "
                    f"| {fmt(c['p50_us'])}/{fmt(c['p99_us'])} "
                    f"| {fmt(o['p50_us'])}/{fmt(o['p99_us'])} |")
    out.append("")
    out.append("### Workload A: caching and CPU after each run (medians)\n")
    out.append("| job | driver | mode | backing file cached MiB | Buffers MiB | Cached MiB "
               "| sys s | user s |")
    out.append("|---|---|---|---|---|---|---|---|")
    for j in jobs_of(stats, "A"):
        for d in ("c", "rloop"):
            for m in MODES:
                s = stats.get(("A", j, d, m))
                if s:
                    out.append(f"| {j} | {label(d)} | {m} | {fmt(s['backing_resident_mib'], digits=1)} "
                               f"| {fmt(s['buffers_mib'], digits=1)} | {fmt(s['cached_mib'])} "
                               f"| {fmt(s['sys_s'], digits=1)} | {fmt(s['user_s'], digits=1)} |")
    out.append("")
    out.append("### Workload C: the ceiling (O_DIRECT on the backing file and on the disk) "
               "against the loop devices with DIO\n")
    out.append("The backing file is read by one fio job of the cell's depth, and (depth 2 "
               "or more) by two jobs of half the depth, which like a loop device use both "
               "vCPUs; ours is set against the higher of the two.\n")
    out.append("| job | disk IOPS | backing file IOPS | backing file, 2 jobs | C loop DIO IOPS "
               "| ours DIO IOPS | ours / backing file | ctxt/IO: backing file, C, ours |")
    out.append("|---|---|---|---|---|---|---|---|")
    for j in jobs_of(stats, "C"):
        disk, file_ = stats.get(("C", j, "disk", "odirect")), stats.get(("C", j, "file", "odirect"))
        file2 = stats.get(("C", j, "file2", "odirect"))
        if not file_:
            continue
        c, o = stats.get(("B", j, "c", "dio")), stats.get(("B", j, "rloop", "dio"))
        best = max((f for f in (file_, file2) if f), key=lambda f: f["iops"]["median"])
        out.append(f"| {j} | {spread(disk['iops']) if disk else '–'} "
                   f"| {spread(file_['iops'])} | {spread(file2['iops']) if file2 else '–'} "
                   f"| {spread(c['iops']) if c else '–'} | {spread(o['iops']) if o else '–'} "
                   f"| {over(o, best)} | {ctxt_cells(file_, c, o)} |")
    out.append("")
    buffered = [j for j in jobs_of(stats, "C") if ("C", j, "file", "buffered") in stats]
    if buffered:
        out.append("### Workload C, buffered: the backing file read through its page cache "
                   "(io_uring) against the loop devices without DIO\n")
        out.append("| job | backing file IOPS | C loop IOPS | ours IOPS | ours / backing file "
                   "| 3 × C / backing file | ctxt/IO: backing file, C, ours |")
        out.append("|---|---|---|---|---|---|---|")
        for j in buffered:
            file_ = stats[("C", j, "file", "buffered")]
            c, o = stats.get(("B", j, "c", "buffered")), stats.get(("B", j, "rloop", "buffered"))
            out.append(f"| {j} | {spread(file_['iops'])} | {spread(c['iops']) if c else '–'} "
                       f"| {spread(o['iops']) if o else '–'} | {over(o, file_)} "
                       f"| {over(c, file_, times=3)} | {ctxt_cells(file_, c, o)} |")
        out.append("")
    out.extend(targets(stats, ratios))
    return "\n".join(out) + "\n"


def ctxt_cells(*cells):
    """The median context switches per I/O of each cell, or – for none."""
    return ", ".join(fmt(s["ctxt_per_io"], digits=2) if s else "–" for s in cells)


def over(cell, ceiling, times=1):
    """TIMES the median IOPS of CELL over those of CEILING, or – for none."""
    if not cell or not ceiling or not ceiling["iops"]["median"]:
        return "–"
    return f"{times * cell['iops']['median'] / ceiling['iops']['median']:.2f}"


def label(driver):
    return {"c": "C", "rloop": "ours"}.get(driver, driver)


def targets(stats, ratios):
    """The issue's targets, reported, not asserted."""
    out = ["### Targets\n"]

    def named(v):
        return [f"{w} {j} {m} ({r['lo']:.2f}–{r['hi']:.2f})"
                for (w, j, m), r in sorted(ratios.items()) if r and r["verdict"] == v]
    behind, undecided = named("behind"), named("undecided")
    ahead = sum(1 for r in ratios.values() if r and r["verdict"] == "ahead")
    out.append(f"- No cell decided behind C: "
               f"{'yes' if not behind else 'no; behind: ' + ', '.join(behind)}.")
    out.append(f"- {ahead} of {len(ratios)} cells decided ahead of C; undecided: "
               f"{', '.join(undecided) if undecided else 'none'}.")
    for d in ("c", "rloop"):
        lines = []
        for j in jobs_of(stats, "A"):
            b, o = stats.get(("A", j, d, "buffered")), stats.get(("A", j, d, "dio"))
            if not b or not o:
                continue
            cb, co = b["ctxt_per_io"]["median"], o["ctxt_per_io"]["median"]
            rb, ro = b["backing_resident_mib"]["median"], o["backing_resident_mib"]["median"]
            lines.append(f"{j}: ctxt/IO {co:.2f} vs {cb:.2f} buffered "
                         f"({'≤' if co <= cb / 2 else '>'} half), backing cached "
                         f"{ro:.1f} vs {rb:.1f} MiB ({'≤' if ro <= rb / 100 else '>'} 1%)")
        b, o = stats.get(("A", "randread", d, "buffered")), stats.get(("A", "randread", d, "dio"))
        if b and o:
            ok = o["iops"]["median"] >= b["iops"]["median"]
            lines.append(f"randread DIO IOPS ≥ buffered: {'yes' if ok else 'no'} "
                         f"({o['iops']['median']:.0f} vs {b['iops']['median']:.0f})")
        out.append(f"- {label(d)}, workload A, DIO against buffered: " + "; ".join(lines) + ".")
    return out


def direct_targets(stats, ratios):
    """Issue 7's targets for the raw device (workload B) against C and
    against the backing file itself (workload C), reported, not asserted."""
    def med(w, j, d, m, key="iops"):
        s = stats.get((w, j, d, m))
        return s[key]["median"] if s else None

    def check(name, value, bound, ok):
        if value is None:
            return f"- {name}: no figures."
        return f"- {name}: {value:.2f} ({'met' if ok(value, bound) else 'not met'}, target {bound})."

    def check_ours_c(name, r, bound):
        """An ours/C target, met or not only when the whole interval is."""
        if not r:
            return f"- {name}: no figures."
        state = ("met" if r["lo"] >= bound else "not met" if r["hi"] < bound
                 else "undecided")
        return (f"- {name}: {r['mean']:.2f} ({r['lo']:.2f}–{r['hi']:.2f}, n={r['n']}; "
                f"{state}, target {bound}).")

    def ratio(a, b):
        return a / b if a is not None and b else None

    ge = lambda v, b: v >= b  # noqa: E731
    le = lambda v, b: v <= b  # noqa: E731
    out = ["", "### Targets of direct submission and concurrent workers (issue 7)\n"]
    r = ratios.get(("B", "randread-qd1", "dio"))
    out.append(check_ours_c("DIO randread qd1, ours/C", r, 1.3))
    out.append(check("DIO randread qd1, ours/backing file",
                     ratio(med("B", "randread-qd1", "rloop", "dio"),
                           med("C", "randread-qd1", "file", "odirect")), 0.9, ge))
    for j in ("randread-qd16", "randread-qd32", "randwrite-qd16", "randwrite-qd32"):
        out.append(check(f"DIO {j}, ours/backing file",
                         ratio(med("B", j, "rloop", "dio"), med("C", j, "file", "odirect")),
                         0.95, ge))
    for j in jobs_of(stats, "B"):
        out.append(check(f"DIO {j}, ctxt/IO ours/C",
                         ratio(med("B", j, "rloop", "dio", "ctxt_per_io"),
                               med("B", j, "c", "dio", "ctxt_per_io")), 0.5, le))
    r = ratios.get(("B", "randread-qd16", "buffered"))
    out.append(check_ours_c("buffered randread qd16, ours/C", r, 3.0))
    ceiling = stats.get(("C", "randread-qd16", "file", "buffered"))
    if ceiling:
        out.append(f"- buffered randread qd16, against the backing file's own page-cache "
                   f"reads at depth 16 (io_uring): ours "
                   f"{over(stats.get(('B', 'randread-qd16', 'rloop', 'buffered')), ceiling)}, "
                   f"3 × C {over(stats.get(('B', 'randread-qd16', 'c', 'buffered')), ceiling, 3)}.")
    for j in ("read-1M", "write-1M"):
        r = ratios.get(("B", j, "buffered"))
        out.append(check_ours_c(f"buffered {j}, ours/C", r, 1.0))
    return out


def against(ratios, earlier_dir):
    """The cells whose interval lies wholly below or above that of the
    run in EARLIER_DIR (its runs.jsonl, read again with today's rules)."""
    _, old = aggregate(load(os.path.join(earlier_dir, "runs.jsonl")), design_level(earlier_dir))
    out = ["", f"### Against the run in `{os.path.basename(os.path.normpath(earlier_dir))}`\n"]
    moved = defaultdict(list)
    for key, r in sorted(ratios.items()):
        if r and old.get(key):
            moved[verdict.moved(old[key], r)].append(
                f"{' '.join(key)} ({old[key]['mean']:.2f} → {r['mean']:.2f})")
    out.append(f"- Cells compared: {sum(len(v) for v in moved.values())}; "
               f"within the earlier interval or overlapping it: {len(moved['same'])}.")
    out.append(f"- Lower, the intervals apart: {', '.join(moved['lower']) or 'none'}.")
    out.append(f"- Higher, the intervals apart: {', '.join(moved['higher']) or 'none'}.")
    return out


def counters_table(path):
    """rloop's debugfs counters per workload and mode (guest.py's
    counters.jsonl), summed over the repetitions."""
    if not os.path.exists(path):
        return []
    rows = load(path)
    keys = ("nowait_hits", "eagain_fallbacks", "cached_reads", "cached_misses", "worker_ios")
    sums = {}
    for r in rows:
        acc = sums.setdefault((r["workload"], r["mode"]), dict.fromkeys(keys, 0))
        for k in keys:
            # Runs from before the buffered page-cache reads have none, and
            # runs from before their rename count misses as page_waits.
            acc[k] += r.get(k, r.get("page_waits", 0) if k == "cached_misses" else 0)
    out = ["", "### rloop's I/O path counters (debugfs, summed over the repetitions)\n",
           "| workload | mode | NOWAIT hits | EAGAIN fallbacks | page-cache reads | page-cache misses "
           "| worker I/Os |", "|---|---|---|---|---|---|---|"]
    for (w, m), acc in sorted(sums.items()):
        out.append(f"| {w} | {m} | {acc['nowait_hits']} | {acc['eagain_fallbacks']} "
                   f"| {acc['cached_reads']} | {acc['cached_misses']} | {acc['worker_ios']} |")
    return out


def chart(ratios, level, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: no matplotlib (scripts/setup --bench installs it); no chart",
              file=sys.stderr)
        return
    keys = sorted(k for k in ratios if ratios[k])
    names = [f"{w} {j} {m}" for (w, j, m) in keys]
    med = [ratios[k]["mean"] for k in keys]
    lo = [ratios[k]["mean"] - ratios[k]["lo"] for k in keys]
    hi = [min(ratios[k]["hi"], 10.0) - ratios[k]["mean"] for k in keys]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(keys) + 1.5))
    colors = ["tab:blue" if k[2] == "dio" else "tab:orange" for k in keys]
    ax.barh(range(len(keys)), med, xerr=[lo, hi], color=colors, capsize=3)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(keys)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"IOPS, ours / C loop.ko (geometric mean of repetitions, {level:.1%} interval)")
    ax.set_title("rloop against the C loop.ko (orange: buffered, blue: DIO)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--against", help="an earlier run's directory to compare with")
    args = parser.parse_args()
    d = args.dir
    runs = load(os.path.join(d, "runs.jsonl"))
    level = design_level(d)
    stats, ratios = aggregate(runs, level)
    with open(os.path.join(d, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"cells": [{"workload": w, "job": j, "driver": dr, "mode": m, **s}
                             for (w, j, dr, m), s in stats.items()],
                   "ratios": [{"workload": w, "job": j, "mode": m, **(r or {})}
                              for (w, j, m), r in ratios.items()],
                   "runs": runs}, f, indent=1)
    md = markdown(stats, ratios, level)
    params = os.path.join(d, "rloop-params")
    if os.path.exists(params):
        with open(params, encoding="utf-8") as f:
            md = f"rloop module parameters: `{f.read().strip() or '(defaults)'}`\n\n" + md
    limit = os.path.join(d, "disk-limit")
    if os.path.exists(limit):
        with open(limit, encoding="utf-8") as f:
            iops, mibps = f.read().strip().split(",")
        md = (f"Scratch disk limited by QEMU to {int(iops):,} IOPS and {mibps} MiB/s "
              "(`--disk-limit`)\n\n") + md
    md += "\n".join(direct_targets(stats, ratios)
                    + (against(ratios, args.against) if args.against else [])
                    + counters_table(os.path.join(d, "counters.jsonl"))) + "\n"
    with open(os.path.join(d, "results.md"), "w", encoding="utf-8") as f:
        f.write(md)
    chart(ratios, level, os.path.join(d, "ratios.png"))
    print(md)


if __name__ == "__main__":
    main()
