"""The verdict of a benchmark cell: is ours ahead of C, behind it, or not
known yet?

A cell's repetitions each give one ratio ours/C of two runs made next to
each other (guest.py alternates which driver goes first). The ratios are
taken as log-normal: the interval is that of the mean of their logarithms,
Student's t at the given level, mapped back. guest.py looks at the cells
after every REPS repetitions (look_points) and stops repeating a cell once
it is decided, so each look's level is raised (look_level) to keep the
chance of deciding a cell that is really level with C at 10% over all the
looks. A cell is decided when its whole interval lies on one side of
1.00:

- "ahead" when the interval's lower end is above 1.00;
- "behind" when its upper end is below 1.00;
- "undecided" otherwise, and with fewer than two ratios.

Comparing with an earlier run: a cell has moved ("lower" or "higher") only
when the two intervals do not overlap.

Pure functions with no dependency beyond the standard library: guest.py
uses them to decide which cells need more repetitions, report.py to write
the verdicts, and tests/bench/test_verdict.py checks them on the host.
"""

import functools
import math
import statistics

def t_cdf(x, df):
    """P(T <= X) for Student's t with DF degrees of freedom: Simpson's rule
    on the density from 0, which is smooth: to 1e-6 or better for |X| < 100."""
    if x < 0:
        return 1.0 - t_cdf(-x, df)
    log_c = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
             - 0.5 * math.log(df * math.pi))

    def density(t):
        return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df))

    steps = 400
    h = x / steps
    total = density(0.0) + density(x)
    for i in range(1, steps):
        total += (4 if i % 2 else 2) * density(i * h)
    return 0.5 + total * h / 3


@functools.lru_cache(maxsize=None)
def t_quantile(p, df):
    """The P quantile (0.5 < P < 1) of Student's t with DF degrees of
    freedom, by bisection on t_cdf."""
    if df < 1:
        raise ValueError("no interval with fewer than two samples")
    if not 0.5 < p < 1:
        raise ValueError(f"quantile {p} out of (0.5, 1)")
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def look_points(reps, max_reps):
    """The repetitions after which the cells are looked at: every REPS, up
    to MAX_REPS. Fewer looks than one a repetition need a smaller raise of
    the level and so decide more cells for the same repetitions
    (test_verdict.py measures both)."""
    return list(range(reps, max(max_reps, reps) + 1, reps))


def look_level(reps, max_reps, overall=0.90):
    """The two-sided level of the interval at each look (look_points): the
    error allowed (1 - OVERALL) split evenly over the looks (Bonferroni),
    so that a cell whose true ratio is 1.00 is decided with a chance of at
    most 1 - OVERALL however many looks it takes. One look (MAX_REPS ==
    REPS) is OVERALL itself."""
    return 1 - (1 - overall) / len(look_points(reps, max_reps))


def interval(ratios, level=0.90):
    """{"mean", "lo", "hi", "n", "level"} of RATIOS (all > 0): their
    geometric mean and its two-sided LEVEL interval. With one ratio the
    interval is unbounded."""
    ratios = [r for r in ratios if r is not None]
    if any(r <= 0 for r in ratios):
        raise ValueError(f"ratios must be positive: {ratios}")
    n = len(ratios)
    if n == 0:
        return None
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    if n == 1:
        return {"mean": ratios[0], "lo": 0.0, "hi": math.inf, "n": 1, "level": level}
    half = t_quantile((1 + level) / 2, n - 1) * statistics.stdev(logs) / math.sqrt(n)
    return {"mean": math.exp(mean), "lo": math.exp(mean - half),
            "hi": math.exp(mean + half), "n": n, "level": level}


def verdict(iv):
    """"ahead", "behind" or "undecided" for an interval (or None)."""
    if iv is None:
        return "undecided"
    if iv["lo"] > 1.0:
        return "ahead"
    if iv["hi"] < 1.0:
        return "behind"
    return "undecided"


def moved(old, new):
    """"lower", "higher" or "same" for a cell's interval NEW against the
    interval OLD of an earlier run: only intervals apart count as moved."""
    if old is None or new is None:
        return "same"
    if new["hi"] < old["lo"]:
        return "lower"
    if new["lo"] > old["hi"]:
        return "higher"
    return "same"


def paired_ratios(runs, workload, job, mode, key="iops"):
    """Ours/C of KEY per repetition, for the cell (WORKLOAD, JOB, MODE) of
    RUNS (guest.py's rows), in repetition order; repetitions missing
    either driver are left out."""
    by = {"c": {}, "rloop": {}}
    for r in runs:
        if (r["workload"], r["job"], r["mode"]) == (workload, job, mode) and r["driver"] in by:
            by[r["driver"]][r["rep"]] = r[key]
    return [by["rloop"][rep] / by["c"][rep] for rep in sorted(by["rloop"])
            if by["c"].get(rep)]
