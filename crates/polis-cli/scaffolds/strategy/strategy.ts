/**
 * A long-only RSI reversion: long when `rsi_14` falls below `oversold`,
 * flat once it rises above `exit`. polis makes one instance per strategy
 * and symbol; its fields are its state across events. Edit the class.
 */

import {
  InvalidParams,
  type Direction,
  type FeatureVectorV3,
  type Strategy,
  type StrategyContext,
  type StrategyIntent,
} from "./polis_strategy.js";

const KNOWN = ["notional", "oversold", "exit"];

export class RsiReversion implements Strategy {
  private notional = 10_000;
  private oversold = 30;
  private exit = 50;
  private direction: Direction = "flat";

  validate_params(params: Record<string, unknown>): void {
    const errors = Object.keys(params)
      .filter((k) => !KNOWN.includes(k))
      .map((k) => `unknown param \`${k}\``);
    const num = (key: string, fallback: number): number => {
      const v = params[key];
      return typeof v === "number" ? v : fallback;
    };
    this.notional = num("notional", 10_000);
    this.oversold = num("oversold", 30);
    this.exit = num("exit", 50);
    if (!(0 < this.oversold && this.oversold < this.exit && this.exit < 100)) {
      errors.push("need 0 < `oversold` < `exit` < 100");
    }
    if (errors.length > 0) throw new InvalidParams(errors);
    this.direction = "flat";
  }

  required_features(): string[] {
    return ["rsi_14"];
  }

  warmup_bars(): number {
    // rsi_14 has its first value on bar 15.
    return 15;
  }

  on_event(fv: FeatureVectorV3, ctx: StrategyContext): StrategyIntent | null {
    const rsi = fv.values["rsi_14"];
    if (rsi === undefined) return null;
    const next: Direction = rsi < this.oversold ? "long" : rsi > this.exit ? "flat" : this.direction;
    if (next === this.direction) return null;
    this.direction = next;
    return {
      strategy_id: ctx.strategy_id,
      symbol: fv.symbol,
      direction: next,
      confidence: Math.max(0, Math.min(1, 1 - rsi / 100)),
      target_notional: next === "long" ? this.notional : 0,
      horizon: fv.timeframe,
      rationale: [`rsi_14 ${rsi.toFixed(2)}`],
      meta: {},
    };
  }
}
