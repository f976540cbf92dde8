"""A polis strategy.v1 plugin (process tier). Edit the class.

A long-only RSI reversion: long when `rsi_14` falls below `oversold`, flat
once it rises above `exit`. polis makes one instance per strategy and
symbol; its attributes are its state across events.
"""

import polis_strategy as ps

KNOWN = ("notional", "oversold", "exit")


class RsiReversion:
    def validate_params(self, params):
        errors = ["unknown param `%s`" % k for k in params if k not in KNOWN]
        self.notional = float(params.get("notional", 10000.0))
        self.oversold = float(params.get("oversold", 30.0))
        self.exit = float(params.get("exit", 50.0))
        if not 0 < self.oversold < self.exit < 100:
            errors.append("need 0 < `oversold` < `exit` < 100")
        if errors:
            raise ps.InvalidParams(errors)
        self.direction = "flat"

    def required_features(self):
        return {"rsi_14"}

    def warmup_bars(self):
        # rsi_14 has its first value on bar 15.
        return 15

    def on_event(self, fv, ctx):
        rsi = fv.values.get("rsi_14")
        if rsi is None:
            return None
        if rsi < self.oversold:
            nxt = "long"
        elif rsi > self.exit:
            nxt = "flat"
        else:
            nxt = self.direction
        if nxt == self.direction:
            return None
        self.direction = nxt
        return ps.StrategyIntent(
            strategy_id=ctx.strategy_id,
            symbol=fv.symbol,
            direction=nxt,
            confidence=max(0.0, min(1.0, 1.0 - rsi / 100.0)),
            target_notional=self.notional if nxt == "long" else 0.0,
            horizon=fv.timeframe,
            rationale=["rsi_14 %.2f" % rsi],
            meta={},
        )


if __name__ == "__main__":
    ps.serve(RsiReversion)
