#!/usr/bin/python3
"""The report of `make bench`: from DIR/runs.jsonl (tests/bench/guest.py),
writes DIR/results.json (every cell's median, min and max, and the ratios),
DIR/results.md (the tables and the targets) and DIR/ratios.png (ours/C per
cell with the spread).

    tests/bench/report.py DIR

The ratio ours/C of a cell is taken per repetition, between runs made next
to each other (C then ours); the table gives the median of those ratios and
their min-max.
"""

import json
import os
import statistics
import sys
from collections import defaultdict

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


def aggregate(runs):
    """{(workload, job, driver, mode): {metric: summary}} and the ratios
    {(workload, job, mode): summary of ours/C IOPS per repetition}."""
    cells = defaultdict(list)
    for r in runs:
        cells[(r["workload"], r["job"], r["driver"], r["mode"])].append(r)
    stats = {k: {m: summary([r[m] for r in rs]) for m in METRICS} for k, rs in cells.items()}
    ratios = {}
    for (w, j, d, m), rs in cells.items():
        if d != "rloop" or (w, j, "c", m) not in cells:
            continue
        c_by_rep = {r["rep"]: r["iops"] for r in cells[(w, j, "c", m)]}
        per_rep = [r["iops"] / c_by_rep[r["rep"]] for r in rs
                   if c_by_rep.get(r["rep"])]
        ratios[(w, j, m)] = summary(per_rep)
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


def markdown(stats, ratios):
    out = []
    out.append("### Ours/C, IOPS (median of the per-repetition ratios, min–max)\n")
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
                    f"| {spread(ratios.get((w, j, m)), 2)} "
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
    out.append("| job | disk IOPS | backing file IOPS | C loop DIO IOPS | ours DIO IOPS "
               "| ours / backing file | ctxt/IO: backing file, C, ours |")
    out.append("|---|---|---|---|---|---|---|")
    for j in jobs_of(stats, "C"):
        disk, file_ = stats.get(("C", j, "disk", "odirect")), stats.get(("C", j, "file", "odirect"))
        c, o = stats.get(("B", j, "c", "dio")), stats.get(("B", j, "rloop", "dio"))
        frac = (f"{o['iops']['median'] / file_['iops']['median']:.2f}"
                if o and file_ and file_["iops"]["median"] else "–")
        out.append(f"| {j} | {spread(disk['iops']) if disk else '–'} "
                   f"| {spread(file_['iops']) if file_ else '–'} "
                   f"| {spread(c['iops']) if c else '–'} | {spread(o['iops']) if o else '–'} "
                   f"| {frac} | {ctxt_cells(file_, c, o)} |")
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
    behind = [f"{w} {j} {m} ({r['max']:.2f} at best)" for (w, j, m), r in sorted(ratios.items())
              if r and r["max"] < 1.0]
    out.append(f"- Ours/C ≥ 1.00 within the spread in every cell: "
               f"{'yes' if not behind else 'no; behind: ' + ', '.join(behind)}.")
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

    def ratio(a, b):
        return a / b if a is not None and b else None

    ge = lambda v, b: v >= b  # noqa: E731
    le = lambda v, b: v <= b  # noqa: E731
    out = ["", "### Targets of direct submission and concurrent workers (issue 7)\n"]
    r = ratios.get(("B", "randread-qd1", "dio"))
    out.append(check("DIO randread qd1, ours/C", r and r["median"], 1.3, ge))
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
    out.append(check("buffered randread qd16, ours/C", r and r["median"], 3.0, ge))
    ceiling = stats.get(("C", "randread-qd16", "file", "buffered"))
    if ceiling:
        out.append(f"- buffered randread qd16, against the backing file's own page-cache "
                   f"reads at depth 16 (io_uring): ours "
                   f"{over(stats.get(('B', 'randread-qd16', 'rloop', 'buffered')), ceiling)}, "
                   f"3 × C {over(stats.get(('B', 'randread-qd16', 'c', 'buffered')), ceiling, 3)}.")
    for j in ("read-1M", "write-1M"):
        r = ratios.get(("B", j, "buffered"))
        out.append(check(f"buffered {j}, ours/C", r and r["median"], 1.0, ge))
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


def chart(ratios, path):
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
    med = [ratios[k]["median"] for k in keys]
    lo = [ratios[k]["median"] - ratios[k]["min"] for k in keys]
    hi = [ratios[k]["max"] - ratios[k]["median"] for k in keys]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(keys) + 1.5))
    colors = ["tab:blue" if k[2] == "dio" else "tab:orange" for k in keys]
    ax.barh(range(len(keys)), med, xerr=[lo, hi], color=colors, capsize=3)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(keys)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("IOPS, ours / C loop.ko (median of repetitions, min–max)")
    ax.set_title("rloop against the C loop.ko (orange: buffered, blue: DIO)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    runs = load(os.path.join(d, "runs.jsonl"))
    stats, ratios = aggregate(runs)
    with open(os.path.join(d, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"cells": [{"workload": w, "job": j, "driver": dr, "mode": m, **s}
                             for (w, j, dr, m), s in stats.items()],
                   "ratios": [{"workload": w, "job": j, "mode": m, **(r or {})}
                              for (w, j, m), r in ratios.items()],
                   "runs": runs}, f, indent=1)
    md = markdown(stats, ratios)
    params = os.path.join(d, "rloop-params")
    if os.path.exists(params):
        with open(params, encoding="utf-8") as f:
            md = f"rloop module parameters: `{f.read().strip() or '(defaults)'}`\n\n" + md
    md += "\n".join(direct_targets(stats, ratios)
                    + counters_table(os.path.join(d, "counters.jsonl"))) + "\n"
    with open(os.path.join(d, "results.md"), "w", encoding="utf-8") as f:
        f.write(md)
    chart(ratios, os.path.join(d, "ratios.png"))
    print(md)


if __name__ == "__main__":
    main()
