"""TA-Lib's values for polis's default features, as the parity test's peer.

Usage: python3 talib_features.py BARS.csv  ->  one JSON object on stdout,
{feature name: [value or null per bar]}. Every TA-Lib feature comes from the
`ta-lib` Python package (TA-Lib's C library); return_1, log_return_1 and
realized_vol_20 are not TA-Lib functions and are computed here with numpy
from their definitions, window by window (no running sums). bb_zscore is
(close - BBANDS middle) / σ with σ = (BBANDS upper - lower) / 4, the
deviation BBANDS itself used, absent where it is 0. (TA-Lib's STDDEV keeps
its own running sums, which drift from BBANDS' by ~1e-8 relative right after
a flat stretch, so it is not the same σ.)
"""
import csv
import json
import math
import sys

import numpy as np
import talib


def main(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip().lower() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    o, h, l, c, v = (np.array([float(r[col[k]]) for r in rows[1:]]) for k in ("open", "high", "low", "close", "volume"))
    n = len(c)
    out = {"close": c, "volume": v}
    ret = np.full(n, np.nan)
    ret[1:] = c[1:] / c[:-1] - 1
    lr = np.full(n, np.nan)
    lr[1:] = np.log(c[1:] / c[:-1])
    out["return_1"] = ret
    out["log_return_1"] = lr
    out["sma_20"] = talib.SMA(c, 20)
    out["ema_12"] = talib.EMA(c, 12)
    out["ema_26"] = talib.EMA(c, 26)
    out["macd"], out["macd_signal"], out["macd_hist"] = talib.MACD(c, 12, 26, 9)
    out["rsi_14"] = talib.RSI(c, 14)
    out["atr_14"] = talib.ATR(h, l, c, 14)
    up, mid, low = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    out["bb_upper"], out["bb_middle"], out["bb_lower"] = up, mid, low
    sd = (up - low) / 4.0
    z = np.full(n, np.nan)
    ok = ~np.isnan(sd) & (sd != 0)
    z[ok] = (c[ok] - mid[ok]) / sd[ok]
    out["bb_zscore"] = z
    rv = np.full(n, np.nan)
    for i in range(20, n):
        window = lr[i - 19 : i + 1]
        rv[i] = math.sqrt(float(np.sum(window * window)))
    out["realized_vol_20"] = rv
    for name, extra in (("ema_50", talib.EMA(c, 50)), ("rsi_7", talib.RSI(c, 7)), ("sma_5", talib.SMA(c, 5)), ("atr_3", talib.ATR(h, l, c, 3))):
        out[name] = extra
    doc = {k: [None if math.isnan(x) else float(x) for x in arr] for k, arr in out.items()}
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
