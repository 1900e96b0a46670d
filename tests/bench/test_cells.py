"""Host tests of make bench's --cells filter (guest.py's select_cells)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import select_cells  # noqa: E402  (beside this file)

CELLS = [("A", "randread", "buffered"), ("A", "randread", "dio"),
         ("B", "randread-qd1", "buffered"), ("B", "randread-qd1", "dio"),
         ("B", "randread-qd16", "dio"), ("B", "write-1M", "dio")]


class SelectCells(unittest.TestCase):
    def test_no_pattern_keeps_all(self):
        self.assertEqual(select_cells(CELLS, []), CELLS)

    def test_exact_name(self):
        self.assertEqual(select_cells(CELLS, ["B:randread-qd1:buffered"]),
                         [("B", "randread-qd1", "buffered")])

    def test_glob_and_order(self):
        self.assertEqual(select_cells(CELLS, ["B:write-1M:*", "B:*:dio"]),
                         [("B", "randread-qd1", "dio"), ("B", "randread-qd16", "dio"),
                          ("B", "write-1M", "dio")])

    def test_prefix_is_not_a_match(self):
        # randread-qd1 must not take randread-qd16 with it.
        self.assertEqual(select_cells(CELLS, ["B:randread-qd1:dio"]),
                         [("B", "randread-qd1", "dio")])

    def test_nothing_matches(self):
        self.assertEqual(select_cells(CELLS, ["C:*:*"]), [])


if __name__ == "__main__":
    unittest.main()
