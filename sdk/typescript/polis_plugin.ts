/**
 * polis process-tier SDK for Node and TypeScript: one file, no dependencies
 * beyond Node's built-ins (`node:fs`, `node:readline` and the global
 * `process`).
 *
 * Write one function `decide(input, params, ctx)` and call {@link serve}:
 *
 * ```ts
 * import { serve, type PolicyInput, type PolicyOutput } from "./polis_plugin.js";
 *
 * function decide(input: PolicyInput): PolicyOutput {
 *   return {
 *     moves: [],
 *     summary: { bikes_moved_total: 0, stations_touched: 0, no_op: true },
 *   };
 * }
 *
 * serve(decide); // reads manifest.json from the working directory
 * ```
 *
 * `serve` speaks polis's JSON-RPC 2.0 protocol on stdin and stdout, one JSON
 * document per line, exactly as `sdk/python/polis_plugin.py` does: it answers
 * `initialize` (picking a protocol version the host offers and returning the
 * manifest), then each `run` with `decide` (and any other method named in
 * `options.methods`, as `polis_strategy.ts` does), and ends on `shutdown` or
 * end of input. Throw {@link Rejected} to refuse an input; any other exception is
 * reported as a failure, and the worker keeps serving. Write diagnostics to
 * stderr ({@link log}, `console.error`); polis records them as logs tagged
 * with the plugin id. stdout belongs to the protocol, so while `serve` runs
 * on the process's stdout, `console.log`, `console.info` and `console.debug`
 * are sent to stderr.
 *
 * Numbers are written in JavaScript's shortest round-trip form and the host
 * parses them exactly, so they reach it bit for bit (`-0` included). As in
 * the Python SDK, a reply holding `NaN` or an infinity is reported as a
 * failure instead of being sent, and non-ASCII characters are escaped.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

/** Protocol versions this SDK speaks, newest first. */
export const PROTOCOL_VERSIONS: readonly string[] = ["polis.process.v1"];

/** JSON-RPC error code of a refused input (the host reports a rejection). */
export const CODE_REJECTED = -32001;

/** JSON-RPC error code of a decision that broke (the host reports a failure). */
export const CODE_FAILED = -32002;

/**
 * Throw to refuse an input or params; the host records a rejection with the
 * message, and the worker keeps serving.
 */
export class Rejected extends Error {
  /** @param message why the input is refused */
  constructor(message: string) {
    super(message);
    this.name = "Rejected";
  }
}

/**
 * What a policy sees besides its input. The host sends it only when the
 * manifest's `permissions` grant `context:read` (or `sandbox:basic`).
 */
export interface RunContext {
  /** The system the decision is for. */
  system_id: string;
  /** The serving view token. */
  sv: string;
  /** Start of the decision bucket, epoch seconds UTC. */
  decision_bucket_ts: number;
  /** Planning horizon in steps. */
  horizon_steps: number;
  /** Caller's request id, for correlating logs. */
  request_id: string;
  /** The decision time in RFC 3339, derived from the bucket, never a clock. */
  now_iso: string;
  /** Seed for any randomness, derived from the run key, below 2^53. */
  seed: number;
}

/** One station's state at the decision time (`policy.input.v1`). */
export interface Station {
  /** Unique key (the GBFS `station_id`). */
  station_key: string;
  /** Number of docks. */
  capacity: number;
  /** Bikes available. */
  bikes: number;
  /** Docks available. */
  docks: number;
  /** Data quality in this bucket: `ok`, `degraded`, `stale`, `offline` or any other label. */
  bucket_quality: string;
}

/** A directed edge `from → to` along which bikes may be moved. */
export interface Neighbor {
  /** Donor side. */
  from_station_key: string;
  /** Receiver side. */
  to_station_key: string;
  /** Distance in metres, finite and non-negative. */
  dist_m: number;
  /** 1 for the nearest neighbour of `from`, 2 for the next, and so on. */
  rank: number;
}

/** Effort limits for one decision. */
export interface Effort {
  /** Most bikes moved in all. */
  bike_move_budget_per_step: number;
  /** Most distinct stations touched (as donor or receiver). */
  max_stations_touched: number;
  /** Most moves. */
  max_moves: number;
}

/**
 * The fill band: a station should hold between `ceil(alpha·capacity)` and
 * `floor(beta·capacity)` bikes.
 */
export interface Targets {
  /** Lower band fraction, in `[0, beta]`. */
  alpha: number;
  /** Upper band fraction, in `[alpha, 1]`. */
  beta: number;
  /** Stations with fewer docks are left alone. */
  min_capacity_for_policy: number;
}

/**
 * `policy.input.v1` of the `rebalance.v1` contract: one station snapshot
 * with its neighbour graph and the effort and target settings.
 */
export interface PolicyInput {
  /** The stations, in any order; policies order them by `station_key`. */
  stations: Station[];
  /** Directed neighbour edges along which bikes may be moved. */
  neighbors: Neighbor[];
  /** How much work one decision may do. */
  effort: Effort;
  /** The fill band every station should sit in. */
  targets: Targets;
}

/** Host-side settings of a `rebalance.v1` run (the `run` request's `params`). */
export interface RebalanceParams {
  /** Stations whose `bucket_quality` is not listed are not eligible; by default `["ok", "degraded"]`. */
  allowed_bucket_quality: string[];
}

/** Move `bikes_moved` bikes from one station to a neighbour. */
export interface Move {
  /** Position in execution order, from 1. */
  move_rank: number;
  /** Donor. */
  from_station_key: string;
  /** Receiver. */
  to_station_key: string;
  /** Bikes moved, at least 1. */
  bikes_moved: number;
  /** The edge's `dist_m`. */
  dist_m: number;
  /** True when no bike budget remains after this move. */
  budget_exhausted: boolean;
  /**
   * True when, after this move, the donor has nothing left to give its
   * neighbours: its excess is zero, or none of its eligible neighbours still
   * needs bikes.
   */
  neighbor_exhausted: boolean;
  /** Why the move was made, such as `min_cost_flow`. */
  reason_codes: string[];
}

/** Totals over the moves; the host checks that they agree with them. */
export interface Summary {
  /** Sum of `bikes_moved`. */
  bikes_moved_total: number;
  /** Distinct stations appearing in any move. */
  stations_touched: number;
  /** True exactly when there are no moves. */
  no_op: boolean;
}

/**
 * `policy.output.v1`: the moves a policy decided, in execution order. No
 * other fields are allowed.
 */
export interface PolicyOutput {
  /** The moves; `move_rank` runs 1..n. */
  moves: Move[];
  /** Totals that must agree with `moves`. */
  summary: Summary;
  /** Free-form, deterministic facts about the decision. */
  diagnostics?: Record<string, unknown>;
}

/** The empty decision, optionally with diagnostics. */
export function noOp(diagnostics?: Record<string, unknown>): PolicyOutput {
  const output: PolicyOutput = {
    moves: [],
    summary: { bikes_moved_total: 0, stations_touched: 0, no_op: true },
  };
  if (diagnostics !== undefined) output.diagnostics = diagnostics;
  return output;
}

/**
 * A policy: the `run` request's `input`, `params` and, with `context:read`,
 * `context` in; the contract's output (or a promise of it) out. The types
 * default to the `rebalance.v1` contract.
 */
export type Decide<I = PolicyInput, P = RebalanceParams, O = PolicyOutput> = (
  input: I,
  params: P,
  ctx: RunContext | undefined,
) => O | Promise<O>;

/**
 * A handler of one more method (a strategy's `on_event`): the request's
 * `params` in, the JSON result (or a promise of it) out. Throwing
 * {@link Rejected} or any other error replies as `run` does.
 */
export type Method = (params: unknown) => unknown;

/** Where {@link serve} reads and writes; every field is optional. */
export interface ServeOptions {
  /**
   * Methods answered besides `run`, by name, for contracts whose plugins
   * answer several (`strategy.v1`); `run` itself cannot be replaced here.
   * By default none.
   */
  methods?: Record<string, Method>;
  /** The manifest returned by `initialize`. By default `manifest.json` in the working directory. */
  manifestPath?: string;
  /** Where requests come from. By default the process's stdin. */
  input?: NodeJS.ReadableStream;
  /** Where replies go. By default the process's stdout. */
  output?: NodeJS.WritableStream;
}

/**
 * Writes one log line to stderr, which polis captures and tags with the
 * plugin id. Never write diagnostics to stdout: it carries the protocol.
 */
export function log(message: string): void {
  process.stderr.write(message.endsWith("\n") ? message : message + "\n");
}

type Id = string | number | null;

type Message =
  | { jsonrpc: "2.0"; id: Id; result: unknown }
  | { jsonrpc: "2.0"; id: Id; error: { code: number; message: string } };

/**
 * Encodes `value` as compact JSON the way the Python SDK's
 * `json.dumps(..., separators=(",", ":"), allow_nan=False)` does: throws on
 * `NaN` and infinities, keeps the sign of `-0`, and escapes every character
 * outside printable ASCII. Otherwise it follows `JSON.stringify` (`toJSON`,
 * skipped `undefined` members); a `bigint` is written as an integer.
 */
export function encodeJson(value: unknown): string {
  const parts: string[] = [];
  const open = new Set<object>();
  const write = (v: unknown, inArray: boolean): boolean => {
    if (v !== null && typeof v === "object" && typeof (v as { toJSON?: unknown }).toJSON === "function") {
      v = (v as { toJSON: () => unknown }).toJSON();
    }
    switch (typeof v) {
      case "string":
        parts.push(quote(v));
        return true;
      case "number":
        if (!Number.isFinite(v)) throw new RangeError(`out of range float values are not JSON compliant: ${v}`);
        parts.push(Object.is(v, -0) ? "-0.0" : String(v));
        return true;
      case "bigint":
        parts.push(v.toString());
        return true;
      case "boolean":
        parts.push(v ? "true" : "false");
        return true;
      case "undefined":
      case "function":
      case "symbol":
        if (inArray) parts.push("null");
        return inArray;
    }
    if (v === null) {
      parts.push("null");
      return true;
    }
    const obj = v as object;
    if (open.has(obj)) throw new TypeError("circular structure cannot be encoded as JSON");
    open.add(obj);
    if (Array.isArray(obj)) {
      parts.push("[");
      obj.forEach((item: unknown, i: number) => {
        if (i > 0) parts.push(",");
        write(item, true);
      });
      parts.push("]");
    } else {
      parts.push("{");
      let first = true;
      for (const [key, item] of Object.entries(obj)) {
        const mark = parts.length;
        parts.push(first ? "" : ",", quote(key), ":");
        if (write(item, false)) first = false;
        else parts.length = mark;
      }
      parts.push("}");
    }
    open.delete(obj);
    return true;
  };
  write(value, true);
  return parts.join("");
}

function quote(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

function reply(output: NodeJS.WritableStream, message: Message): void {
  output.write(encodeJson(message) + "\n");
}

/** Python's `repr` of a list of strings, so messages read as the Python SDK's do. */
function pyList(items: readonly string[]): string {
  return "[" + items.map((s) => `'${s}'`).join(", ") + "]";
}

function errorName(e: unknown): string {
  if (e instanceof Error) return e.constructor.name || e.name;
  if (e === null || e === undefined) return String(e);
  return (e as object).constructor?.name ?? typeof e;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Serves `decide` until `shutdown` or end of input, and resolves then. The
 * manifest is read before anything else; a missing or invalid manifest
 * throws at once. Requests are handled one at a time, in order, so an async
 * `decide` never overlaps itself.
 */
export function serve<I = PolicyInput, P = RebalanceParams, O = PolicyOutput>(
  decide: Decide<I, P, O>,
  options: ServeOptions = {},
): Promise<void> {
  const manifest: unknown = JSON.parse(readFileSync(options.manifestPath ?? "manifest.json", "utf8"));
  const input = options.input ?? process.stdin;
  const output = options.output ?? process.stdout;
  if (output === process.stdout) {
    const toStderr = (...args: unknown[]): void => console.error(...args);
    console.log = toStderr;
    console.info = toStderr;
    console.debug = toStderr;
  }
  return loop(decide, manifest, input, output, options.methods ?? {});
}

async function loop<I, P, O>(
  decide: Decide<I, P, O>,
  manifest: unknown,
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  methods: Record<string, Method>,
): Promise<void> {
  const lines = createInterface({ input, crlfDelay: Infinity, terminal: false });
  try {
    for await (const line of lines) {
      if (line.trim() === "") continue;
      let request: unknown;
      try {
        request = JSON.parse(line);
      } catch (e) {
        reply(output, { jsonrpc: "2.0", id: null, error: { code: -32700, message: `parse error: ${errorText(e)}` } });
        continue;
      }
      if (!isObject(request)) {
        reply(output, { jsonrpc: "2.0", id: null, error: { code: -32600, message: "invalid request: not an object" } });
        continue;
      }
      const id = (request.id ?? null) as Id;
      const method = request.method;
      const params = request.params;
      if (method === "initialize") {
        const offered = isObject(params) && Array.isArray(params.protocol_versions) ? params.protocol_versions : [];
        const chosen = PROTOCOL_VERSIONS.find((v) => offered.includes(v));
        if (chosen === undefined) {
          reply(output, {
            jsonrpc: "2.0",
            id,
            error: { code: -32602, message: `no common protocol version; plugin speaks ${pyList(PROTOCOL_VERSIONS)}` },
          });
          continue;
        }
        reply(output, { jsonrpc: "2.0", id, result: { protocol_version: chosen, manifest } });
      } else if (method === "run" || (typeof method === "string" && Object.hasOwn(methods, method))) {
        try {
          let result: unknown;
          if (method === "run") {
            if (!isObject(params)) throw new TypeError("`params` of `run` must be an object");
            result = await decide(params.input as I, params.params as P, params.context as RunContext | undefined);
          } else {
            result = await (methods[method] as Method)(params);
          }
          reply(output, { jsonrpc: "2.0", id, result: result === undefined ? null : result });
        } catch (e) {
          if (e instanceof Rejected) {
            reply(output, { jsonrpc: "2.0", id, error: { code: CODE_REJECTED, message: e.message } });
          } else {
            // The worker survives a failing decision.
            process.stderr.write((e instanceof Error && e.stack ? e.stack : String(e)) + "\n");
            reply(output, { jsonrpc: "2.0", id, error: { code: CODE_FAILED, message: `${errorName(e)}: ${errorText(e)}` } });
          }
        }
      } else if (method === "shutdown") {
        reply(output, { jsonrpc: "2.0", id, result: null });
        return;
      } else {
        const shown = typeof method === "string" ? `'${method}'` : method == null ? "None" : encodeJson(method);
        reply(output, { jsonrpc: "2.0", id, error: { code: -32601, message: `unknown method ${shown}` } });
      }
    }
  } finally {
    lines.close();
    // A paused stdin would otherwise keep the event loop, and the worker, alive.
    if (input === process.stdin) process.stdin.destroy();
  }
}
