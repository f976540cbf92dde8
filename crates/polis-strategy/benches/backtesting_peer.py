"""The peer of polis's legacy_macd_rsi replay: the same MACD/RSI crossover
as a backtesting.py `Strategy` (indicators from TA-Lib, precomputed in
`init` as backtesting.py recommends; the crossover decided bar by bar in
`next`). Prints bars, seconds and bars/s of `Backtest.run()`.

Usage: python3 backtesting_peer.py BARS.csv   (see BENCHMARKS.md)
"""
import sys
import time
import warnings

import pandas as pd
import talib
from backtesting import Backtest, Strategy

warnings.filterwarnings("ignore")


class LegacyMacdRsi(Strategy):
    def init(self):
        close = self.data.Close
        self.macd = self.I(lambda c: talib.MACD(c, 12, 26, 9)[0], close)
        self.signal = self.I(lambda c: talib.MACD(c, 12, 26, 9)[1], close)
        self.rsi = self.I(lambda c: talib.RSI(c, 14), close)

    def next(self):
        if len(self.macd) < 35:
            return
        prev = self.macd[-2] - self.signal[-2]
        diff = self.macd[-1] - self.signal[-1]
        if prev <= 0 < diff and self.rsi[-1] < 70 and not self.position:
            self.buy()
        elif prev >= 0 > diff and self.rsi[-1] > 30 and self.position:
            self.position.close()


def main(path):
    df = pd.read_csv(path, index_col=0)
    df.columns = [c.capitalize() for c in df.columns]
    if not isinstance(df.index, pd.DatetimeIndex):
        try:
            df.index = pd.to_datetime(df.index, unit="s") if df.index.dtype.kind in "iu" else pd.to_datetime(df.index)
        except (ValueError, TypeError):
            pass
    bt = Backtest(df, LegacyMacdRsi, cash=10_000_000, commission=0.0, finalize_trades=True)
    start = time.perf_counter()
    stats = bt.run()
    secs = time.perf_counter() - start
    print("backtesting.py %s: %d bars, %.3f s, %.0f bars/s, %d trades" % (path.rsplit("/", 1)[-1], len(df), secs, len(df) / secs, stats["# Trades"]))


if __name__ == "__main__":
    main(sys.argv[1])
