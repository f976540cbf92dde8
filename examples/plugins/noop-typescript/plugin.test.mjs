// Runs the compiled plugin the way polis does: the command line from
// manifest.json, started in the plugin directory with a cleared environment
// (LC_ALL only), one JSON-RPC 2.0 document per line on stdin and stdout.
//
//   npm run build && node --test

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const dir = dirname(fileURLToPath(import.meta.url));
const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));

const input = {
  stations: [
    { station_key: "b", capacity: 10, bikes: 9, docks: 1, bucket_quality: "ok" },
    { station_key: "a", capacity: 10, bikes: 0, docks: 10, bucket_quality: "ok" },
  ],
  neighbors: [
    { from_station_key: "b", to_station_key: "a", dist_m: 250.5, rank: 1 },
    { from_station_key: "a", to_station_key: "b", dist_m: 250.5, rank: 1 },
  ],
  effort: { bike_move_budget_per_step: 60, max_stations_touched: 30, max_moves: 20 },
  targets: { alpha: 0.2, beta: 0.8, min_capacity_for_policy: 5 },
};
const params = { allowed_bucket_quality: ["ok", "degraded"] };

const [program, ...args] = manifest.runtime.entry.split(/\s+/);
// polis hashes the first argument that is a file as the artifact: the script.
const script = args.find((a) => !a.startsWith("-"));

/**
 * Starts the worker from the manifest's entry, optionally under `wrapper`
 * (such as `prlimit`), and kills it when test `t` ends; `call` sends one
 * line and resolves with the reply.
 */
function start(t, wrapper = []) {
  assert.equal(program, "node");
  const argv = [...wrapper, process.execPath, ...args];
  const child = spawn(argv[0], argv.slice(1), { cwd: dir, env: { LC_ALL: "C.UTF-8" }, stdio: "pipe" });
  t.after(() => child.kill());
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise((ok) => child.on("exit", (code, signal) => ok({ code, signal })));
  return {
    async call(line) {
      child.stdin.write(line + "\n");
      const { value, done } = await replies.next();
      assert.ok(!done, `worker closed stdout; stderr: ${stderr}`);
      return JSON.parse(value);
    },
    /** Closes the worker's stdin. */
    end: () => child.stdin.end(),
    exited,
    stderr: () => stderr,
  };
}

const rpc = (id, method, params) => JSON.stringify({ jsonrpc: "2.0", id, method, params });

test("initialize, run and shutdown over stdio", async (t) => {
  const worker = start(t);

  const init = await worker.call(
    rpc(1, "initialize", { protocol_versions: ["polis.process.v1"], plugin_id: manifest.plugin_id }),
  );
  assert.deepEqual(init, { jsonrpc: "2.0", id: 1, result: { protocol_version: "polis.process.v1", manifest } });

  const run = await worker.call(rpc(2, "run", { input, params }));
  assert.deepEqual(run, {
    jsonrpc: "2.0",
    id: 2,
    result: {
      moves: [],
      summary: { bikes_moved_total: 0, stations_touched: 0, no_op: true },
      diagnostics: { stations_seen: 2 },
    },
  });

  // With `context:read` the host adds the context; the no-op ignores it.
  const context = {
    system_id: "bay_wheels",
    sv: "sv1",
    decision_bucket_ts: 1678060800,
    horizon_steps: 1,
    request_id: "polis-0123456789abcdef",
    now_iso: "2023-03-06T00:00:00Z",
    seed: 4503599627370495,
  };
  const again = await worker.call(rpc(3, "run", { context, input, params }));
  assert.deepEqual(again.result, run.result);

  const bye = await worker.call(rpc(4, "shutdown", null));
  assert.deepEqual(bye, { jsonrpc: "2.0", id: 4, result: null });
  assert.deepEqual(await worker.exited, { code: 0, signal: null });
  assert.equal(worker.stderr(), "");
});

test("protocol errors leave the worker serving", async (t) => {
  const worker = start(t);

  const garbage = await worker.call("{not json");
  assert.equal(garbage.id, null);
  assert.equal(garbage.error.code, -32700);
  assert.match(garbage.error.message, /^parse error: /);

  const version = await worker.call(rpc(1, "initialize", { protocol_versions: ["polis.process.v0"] }));
  assert.deepEqual(version, {
    jsonrpc: "2.0",
    id: 1,
    error: { code: -32602, message: "no common protocol version; plugin speaks ['polis.process.v1']" },
  });

  const unknown = await worker.call(rpc(2, "frobnicate", {}));
  assert.deepEqual(unknown, { jsonrpc: "2.0", id: 2, error: { code: -32601, message: "unknown method 'frobnicate'" } });

  // A run whose input lacks `stations` breaks the decision: a failure, and
  // the worker keeps serving.
  const broken = await worker.call(rpc(3, "run", { input: {}, params }));
  assert.equal(broken.id, 3);
  assert.equal(broken.error.code, -32002);
  assert.match(broken.error.message, /^TypeError: /);

  const run = await worker.call(rpc(4, "run", { input, params }));
  assert.equal(run.result.diagnostics.stations_seen, 2);

  // End of input ends the worker as `shutdown` does.
  worker.end();
  assert.deepEqual(await worker.exited, { code: 0, signal: null });
  // The failure's stack went to stderr, where polis records it as a log.
  assert.match(worker.stderr(), /TypeError/);
});

test("dist holds everything the plugin loads", () => {
  // The sandbox lets the plugin read only its own directory (plus system
  // paths), so every module the entry imports must resolve inside it.
  const entry = resolve(dir, script);
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file)) return;
    assert.ok(existsSync(file), `${relative(dir, file)} is missing; run npm run build`);
    assert.ok(!relative(dir, file).startsWith(".."), `${file} lies outside the plugin directory`);
    seen.add(file);
    const source = readFileSync(file, "utf8");
    // Static imports and re-exports, one per line as tsc writes them;
    // comment lines start with `*` and never match.
    const specs = source.matchAll(/^\s*(?:(?:import|export)\b[^"';]*?\bfrom|import)\s*["']([^"']+)["']/gm);
    for (const [, spec] of specs) {
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec));
      else assert.ok(spec.startsWith("node:"), `${relative(dir, file)} imports \`${spec}\`, which is not a Node built-in`);
    }
  };
  visit(entry);
  assert.equal(seen.size, 2);
});

const prlimit = ["/usr/bin/prlimit", "/bin/prlimit"].find((p) => existsSync(p));

test("snapshot-sized inputs under the sandbox's 1 GiB address-space limit", { skip: !prlimit && "no prlimit" }, async (t) => {
  // polis caps a worker's address space (RLIMIT_AS, 1 GiB by default). Each
  // thread's glibc malloc arena reserves 64 MiB of it, so with V8's GC worker
  // threads node dies of "heap out of memory" after a few runs of a full
  // Bay Wheels snapshot; the entry's --v8-pool-size=0 keeps GC on the main
  // thread.
  const n = 518;
  const key = (i) => `s${String(i).padStart(4, "0")}`;
  const big = {
    ...input,
    stations: Array.from({ length: n }, (_, i) => ({
      station_key: key(i),
      capacity: 20,
      bikes: (i * 7) % 21,
      docks: 20 - ((i * 7) % 21),
      bucket_quality: "ok",
    })),
    neighbors: Array.from({ length: n * 25 }, (_, j) => ({
      from_station_key: key(Math.floor(j / 25)),
      to_station_key: key((Math.floor(j / 25) + (j % 25) + 1) % n),
      dist_m: 100 + (j % 25) * 37.25,
      rank: (j % 25) + 1,
    })),
  };
  const worker = start(t, [prlimit, `--as=${1 << 30}`, "--"]);
  await worker.call(rpc(1, "initialize", { protocol_versions: ["polis.process.v1"] }));
  const line = rpc(0, "run", { input: big, params }).replace('"id":0', '"id":%ID%');
  for (let id = 2; id < 152; id++) {
    const reply = await worker.call(line.replace("%ID%", String(id)));
    assert.deepEqual(reply.result?.diagnostics, { stations_seen: n }, `run ${id}: ${JSON.stringify(reply.error)}`);
  }
  await worker.call(rpc(152, "shutdown", null));
  assert.deepEqual(await worker.exited, { code: 0, signal: null });
});
