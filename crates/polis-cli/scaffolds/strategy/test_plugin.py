"""Unit tests of the strategy without polis: `python3 -m unittest`."""

import unittest

import polis_strategy as ps
from plugin import RsiReversion


def fv(rsi):
    values = {} if rsi is None else {"rsi_14": rsi}
    return ps.FeatureVectorV3("SYN", "2020-01-01T00:00:00Z", "1d", "feature_vector.v3", values)


CTX = ps.StrategyContext("s", "strategy.x.v1", "0.1.0", {})


class RsiReversionTest(unittest.TestCase):
    def test_unknown_params_are_refused(self):
        with self.assertRaises(ps.InvalidParams) as e:
            RsiReversion().validate_params({"colour": 1})
        self.assertEqual(e.exception.errors, ["unknown param `colour`"])

    def test_it_goes_long_when_oversold_and_flat_after(self):
        s = RsiReversion()
        s.validate_params({})
        self.assertIsNone(s.on_event(fv(None), CTX))
        self.assertEqual(s.on_event(fv(25.0), CTX).direction, "long")
        self.assertIsNone(s.on_event(fv(40.0), CTX))
        self.assertEqual(s.on_event(fv(55.0), CTX).direction, "flat")


if __name__ == "__main__":
    unittest.main()
