// Unit tests of the strategy without polis: `npm test` (tsc, then node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidParams } from "./dist/polis_strategy.js";
import { RsiReversion } from "./dist/strategy.js";

const fv = (rsi) => ({
  symbol: "SYN",
  event_ts: "2020-01-01T00:00:00Z",
  timeframe: "1d",
  schema_version: "feature_vector.v3",
  values: rsi === undefined ? {} : { rsi_14: rsi },
});
const ctx = { strategy_id: "s", strategy_type: "strategy.x.v1", version: "0.1.0", params: {}, upstream: [] };

test("unknown params are refused", () => {
  assert.throws(() => new RsiReversion().validate_params({ colour: 1 }), (e) => {
    assert.ok(e instanceof InvalidParams);
    assert.deepEqual(e.errors, ["unknown param `colour`"]);
    return true;
  });
});

test("it goes long when oversold and flat after", () => {
  const s = new RsiReversion();
  s.validate_params({});
  assert.equal(s.on_event(fv(undefined), ctx), null);
  assert.equal(s.on_event(fv(25), ctx).direction, "long");
  assert.equal(s.on_event(fv(40), ctx), null);
  assert.equal(s.on_event(fv(55), ctx).direction, "flat");
});
