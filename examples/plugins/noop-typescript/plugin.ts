/**
 * The seed's minimal example plugin (§12) as a polis process plugin in
 * TypeScript: a deterministic no-op that reports how many stations it saw.
 *
 * Copy this directory to start a research policy: change `decide`, keep the
 * output consistent (`summary` must agree with `moves`), and give the copy
 * its own `plugin_id` and `policy_version` in manifest.json. Outside this
 * repository, copy sdk/typescript/polis_plugin.ts next to plugin.ts, import
 * "./polis_plugin.js", set `rootDir` to "." and the entry to
 * `node dist/plugin.js`.
 */

import { noOp, serve, type PolicyInput, type PolicyOutput } from "../../../sdk/typescript/polis_plugin.js";

function decide(input: PolicyInput): PolicyOutput {
  return noOp({ stations_seen: input.stations.length });
}

// Reads manifest.json from the working directory, which polis sets to the
// plugin directory.
void serve(decide);
