"""Host tests of the benchmark's verdicts (verdict.py) and of how guest.py
picks the cells to repeat: python3 -m unittest discover -s tests/bench"""

import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import verdict  # noqa: E402


def row(job, driver, rep, iops, workload="B", mode="dio"):
    return {"workload": workload, "job": job, "driver": driver, "mode": mode,
            "rep": rep, "iops": iops}


class Interval(unittest.TestCase):
    def test_known_values(self):
        # Logs of 1.1, 1.2, 1.3: mean 0.18153, sd 0.08356; t(2) = 2.920.
        iv = verdict.interval([1.1, 1.2, 1.3])
        logs = [math.log(x) for x in (1.1, 1.2, 1.3)]
        mean = sum(logs) / 3
        sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 2)
        half = 2.920 * sd / math.sqrt(3)
        self.assertAlmostEqual(iv["mean"], math.exp(mean))
        self.assertAlmostEqual(iv["lo"], math.exp(mean - half), places=5)
        self.assertAlmostEqual(iv["hi"], math.exp(mean + half), places=5)
        self.assertEqual(iv["n"], 3)
        self.assertEqual(verdict.verdict(iv), "ahead")
        # 0.95 to 1.25 in three samples straddles 1.00 at 90%.
        self.assertEqual(verdict.verdict(verdict.interval([0.95, 1.1, 1.25])), "undecided")

    def test_decides_either_way(self):
        self.assertEqual(verdict.verdict(verdict.interval([1.20, 1.22, 1.19, 1.21])), "ahead")
        self.assertEqual(verdict.verdict(verdict.interval([0.80, 0.82, 0.79, 0.81])), "behind")
        self.assertEqual(verdict.verdict(verdict.interval([0.9, 1.1, 1.0, 0.95])), "undecided")

    def test_more_samples_narrow_it(self):
        few = verdict.interval([0.98, 1.12] * 2)
        many = verdict.interval([0.98, 1.12] * 6)
        self.assertEqual(verdict.verdict(few), "undecided")
        self.assertEqual(verdict.verdict(many), "ahead")
        self.assertLess(many["hi"] - many["lo"], few["hi"] - few["lo"])

    def test_one_and_none(self):
        self.assertIsNone(verdict.interval([]))
        self.assertEqual(verdict.verdict(None), "undecided")
        one = verdict.interval([2.0])
        self.assertEqual((one["lo"], one["hi"]), (0.0, math.inf))
        self.assertEqual(verdict.verdict(one), "undecided")
        with self.assertRaises(ValueError):
            verdict.interval([1.0, 0.0])

    def test_t_quantiles(self):
        # Against the printed tables.
        for p, df, want in [(0.95, 1, 6.314), (0.95, 2, 2.920), (0.995, 2, 9.925),
                            (0.975, 10, 2.228), (0.995, 11, 3.106), (0.95, 30, 1.697)]:
            self.assertAlmostEqual(verdict.t_quantile(p, df), want, places=3)
        with self.assertRaises(ValueError):
            verdict.t_quantile(0.95, 0)
        with self.assertRaises(ValueError):
            verdict.t_quantile(0.4, 3)


class Looks(unittest.TestCase):
    def test_points_and_levels(self):
        self.assertEqual(verdict.look_points(3, 12), [3, 6, 9, 12])
        self.assertEqual(verdict.look_points(3, 3), [3])
        self.assertEqual(verdict.look_points(3, 2), [3])
        self.assertAlmostEqual(verdict.look_level(3, 3), 0.90)
        self.assertAlmostEqual(verdict.look_level(3, 12), 0.975)

    @staticmethod
    def decided_share(level, true, looks, trials=400):
        """How often a cell of true ratio TRUE (noise 8% a repetition) is
        decided, looked at after each repetition in LOOKS."""
        rng = random.Random(7)
        decided = 0
        for _ in range(trials):
            ratios = []
            for n in range(1, max(looks) + 1):
                ratios.append(true * rng.lognormvariate(0, 0.08))
                if n in looks and verdict.verdict(verdict.interval(ratios, level)) != "undecided":
                    decided += 1
                    break
        return decided / trials

    def test_repeated_looks_keep_the_error(self):
        every = list(range(3, 13))
        points, level = verdict.look_points(3, 12), verdict.look_level(3, 12)
        # Looking after every repetition at 90% decides a level cell far
        # more often than one time in ten; the raised level does not.
        self.assertGreater(self.decided_share(0.90, 1.0, every), 0.2)
        self.assertLessEqual(self.decided_share(level, 1.0, points), 0.10)
        self.assertLessEqual(self.decided_share(1 - 0.1 / len(every), 1.0, every), 0.10)
        # A real 10% lead is found most of the time, and more often with
        # four looks than with ten.
        few = self.decided_share(level, 1.10, points)
        self.assertGreater(few, 0.8)
        self.assertGreater(few, self.decided_share(1 - 0.1 / len(every), 1.10, every))


class Moved(unittest.TestCase):
    def test_only_apart_intervals_move(self):
        old = {"lo": 1.0, "hi": 1.4}
        self.assertEqual(verdict.moved(old, {"lo": 0.8, "hi": 0.99}), "lower")
        self.assertEqual(verdict.moved(old, {"lo": 1.41, "hi": 1.6}), "higher")
        self.assertEqual(verdict.moved(old, {"lo": 0.8, "hi": 1.05}), "same")
        self.assertEqual(verdict.moved(None, old), "same")


class Pairs(unittest.TestCase):
    def test_pairs_by_repetition(self):
        runs = [row("r", "c", 1, 100), row("r", "rloop", 1, 150),
                row("r", "rloop", 2, 90), row("r", "c", 2, 100),
                row("r", "rloop", 3, 80),  # C's run of rep 3 missing
                row("w", "c", 1, 10), row("w", "rloop", 1, 20),
                row("r", "c", 1, 1, mode="buffered")]
        self.assertEqual(verdict.paired_ratios(runs, "B", "r", "dio"), [1.5, 0.9])
        self.assertEqual(verdict.paired_ratios(runs, "B", "w", "dio"), [2.0])
        self.assertEqual(verdict.paired_ratios(runs, "B", "r", "buffered"), [])


if __name__ == "__main__":
    unittest.main()
