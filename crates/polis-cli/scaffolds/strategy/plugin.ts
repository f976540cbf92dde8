/**
 * A polis strategy.v1 plugin (process tier), built by `tsc` into dist/.
 * The strategy is in strategy.ts; this file only serves it.
 */

import { serveStrategy } from "./polis_strategy.js";
import { RsiReversion } from "./strategy.js";

void serveStrategy(() => new RsiReversion());
