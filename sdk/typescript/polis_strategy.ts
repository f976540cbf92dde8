/**
 * polis strategy SDK for Node and TypeScript (`strategy.v1`, process tier):
 * one file beside `polis_plugin.ts`, no other dependencies.
 *
 * A strategy is a class with the seed's four methods; {@link serveStrategy}
 * runs it as a polis process plugin:
 *
 * ```ts
 * import { InvalidParams, serveStrategy, type FeatureVectorV3, type Strategy,
 *          type StrategyContext, type StrategyIntent } from "./polis_strategy.js";
 *
 * class MyStrategy implements Strategy {
 *   private threshold = 1;
 *   validate_params(params: Record<string, unknown>): void {  // throw new InvalidParams([...]) or return
 *     this.threshold = Number(params["threshold"] ?? 1);
 *   }
 *   required_features(): string[] { return ["close", "rsi_14"]; }
 *   warmup_bars(): number { return 14; }
 *   on_event(fv: FeatureVectorV3, ctx: StrategyContext): StrategyIntent | null { return null; }
 * }
 *
 * serveStrategy(() => new MyStrategy()); // reads manifest.json from the working directory
 * ```
 *
 * polis makes one instance per configured strategy and symbol; the worker
 * keeps them all, keyed by the `instance` id each request carries, so an
 * instance's fields are its state across events. `validate_params` creates
 * the instance (and is asked again with the same id only by a new engine);
 * the other methods on an id that never validated fail rather than run on
 * default params. `fv.values` holds only features that have a value on
 * this bar. `ctx.upstream` lists the intents an overlay consumes, as the
 * host records them.
 *
 * Mirrors `sdk/python/polis_strategy.py`.
 *
 * @module
 */

import { serve, type ServeOptions } from "./polis_plugin.js";

/** One bar's features (`feature_vector.v3`). */
export interface FeatureVectorV3 {
  /** The instrument. */
  symbol: string;
  /** The bar's time, RFC 3339 UTC. */
  event_ts: string;
  /** The bar length, such as `1d`. */
  timeframe: string;
  /** Always `feature_vector.v3`. */
  schema_version: string;
  /** Feature values by name; a feature without a value yet is absent. */
  values: Record<string, number>;
}

/** An intent as the host records it, for an overlay's `upstream`. */
export interface IntentRecord {
  /** SHA-256 of the canonical `{"strategy", "symbol", "event_ts"}`. */
  intent_id: string;
  /** The event's time, RFC 3339 UTC. */
  event_ts: string;
  /** `strategy_id@version`. */
  strategy: string;
  /** The intent. */
  intent: StrategyIntent;
}

/** What a strategy instance knows about its configuration. */
export interface StrategyContext {
  /** The catalog entry's id. */
  strategy_id: string;
  /** The entry's `strategy_type` (for a plugin, its policy version). */
  strategy_type: string;
  /** The entry's version. */
  version: string;
  /** The entry's params, as the catalog gives them. */
  params: Record<string, unknown>;
  /** Intents of the strategies an overlay consumes, on this event. */
  upstream: IntentRecord[];
}

/** Where an intent wants the position to be. */
export type Direction = "long" | "short" | "flat";

/** What a strategy wants: a target, never an order. */
export interface StrategyIntent {
  /** The strategy that wants it: `ctx.strategy_id`. */
  strategy_id: string;
  /** The instrument: `fv.symbol`. */
  symbol: string;
  /** Long, short or flat. */
  direction: Direction;
  /** How sure, in [0, 1]. */
  confidence: number;
  /** The absolute notional to hold, finite and not negative. */
  target_notional: number;
  /** How long the intent is meant to hold, such as `1d`. */
  horizon: string;
  /** Why, one reason a line. */
  rationale: string[];
  /** Anything else to record. */
  meta: Record<string, unknown>;
}

/** The seed's plugin surface; one object per instance. */
export interface Strategy {
  /** Checks and keeps `params`; throw {@link InvalidParams} with every reason. */
  validate_params(params: Record<string, unknown>): void;
  /** The feature names it reads (after `validate_params`). */
  required_features(): Iterable<string>;
  /** Bars consumed before its intents count (after `validate_params`). */
  warmup_bars(): number;
  /** An intent, or `null` for none. */
  on_event(fv: FeatureVectorV3, ctx: StrategyContext): StrategyIntent | null;
}

/** Throw from `validate_params` with every reason the params are wrong. */
export class InvalidParams extends Error {
  /** Every reason, one a line. */
  readonly errors: string[];

  /** @param errors every reason */
  constructor(errors: readonly string[]) {
    super(errors.join("; "));
    this.name = "InvalidParams";
    this.errors = [...errors];
  }
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new TypeError(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function instanceId(params: unknown): string {
  const id = record(params, "`params`")["instance"];
  if (typeof id !== "string") throw new TypeError("`instance` must be a string");
  return id;
}

/**
 * Serves instances made by `make` until shutdown; resolves then. `options`
 * as for `serve` of `polis_plugin.ts` (its `methods` are replaced).
 */
export function serveStrategy(make: () => Strategy, options: ServeOptions = {}): Promise<void> {
  const instances = new Map<string, Strategy>();
  const known = (params: unknown): Strategy => {
    const id = instanceId(params);
    const found = instances.get(id);
    if (found === undefined) throw new Error(`instance \`${id}\` has no params yet; the host calls validate_params first`);
    return found;
  };
  const methods = {
    validate_params: (params: unknown): { errors: string[] } => {
      const id = instanceId(params);
      const strategy = instances.get(id) ?? make();
      instances.set(id, strategy);
      const given = record(params, "`params`")["params"] ?? {};
      try {
        strategy.validate_params(record(given, "`params.params`"));
      } catch (e) {
        if (e instanceof InvalidParams) return { errors: e.errors };
        throw e;
      }
      return { errors: [] };
    },
    required_features: (params: unknown): string[] => [...known(params).required_features()].sort(),
    warmup_bars: (params: unknown): number => Math.trunc(known(params).warmup_bars()),
    on_event: (params: unknown): { intent: StrategyIntent | null } => {
      const p = record(params, "`params`");
      const fv = record(p["fv"], "`fv`") as unknown as FeatureVectorV3;
      const ctx = {
        ...(record(p["ctx"], "`ctx`") as unknown as Omit<StrategyContext, "upstream">),
        upstream: (Array.isArray(p["upstream"]) ? p["upstream"] : []) as IntentRecord[],
      };
      return { intent: known(params).on_event(fv, ctx) ?? null };
    },
  };
  const serveOptions: ServeOptions = { ...options, methods };
  // No `run`: a strategy answers only its four methods.
  return serve(() => {
    throw new Error("a strategy plugin answers validate_params, required_features, warmup_bars and on_event, not run");
  }, serveOptions);
}
