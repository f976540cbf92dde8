"""rebal.greedy.v1 re-implemented in Python as a polis process plugin.

Its outputs are byte-identical to the built-in's (a test compares them on a
day of Bay Wheels snapshots), so it doubles as a template for research
policies: copy it, change ``decide``, keep the bookkeeping.
"""

import math

import polis_plugin

REASON = "min_distance_then_max_transfer"
BAND_TOLERANCE = 1e-9


def round_half_away(x):
    """Rust's f64::round (ties away from zero) for x >= 0."""
    r = math.floor(x)
    return r + 1.0 if x - r >= 0.5 else float(r)


def band(x, direction):
    nearest = round_half_away(x)
    value = nearest if abs(x - nearest) < BAND_TOLERANCE else direction(x)
    return int(min(max(value, 0), 2 ** 32 - 1))


def decide(request):
    data = request["input"]
    allowed = set(request["params"]["allowed_bucket_quality"])
    targets, effort = data["targets"], data["effort"]
    stations = sorted(data["stations"], key=lambda s: s["station_key"].encode())
    keys = [s["station_key"] for s in stations]
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(keys):
        raise polis_plugin.Rejected("duplicate station keys")
    bikes0, low, high, eligible = [], [], [], []
    for s in stations:
        cap = s["capacity"]
        bikes0.append(min(s["bikes"], cap))
        low.append(min(band(targets["alpha"] * cap, math.ceil), cap))
        high.append(min(band(targets["beta"] * cap, math.floor), cap))
        eligible.append(cap >= targets["min_capacity_for_policy"] and s["bucket_quality"] in allowed)

    edges = {}
    for n in data["neighbors"]:
        f, t = n["from_station_key"], n["to_station_key"]
        if f not in index or t not in index:
            raise polis_plugin.Rejected("edge names an unknown station")
        if f != t:
            edges[(index[f], index[t])] = float(n["dist_m"])
    ordered = sorted(edges)
    out = {}
    for (f, t) in ordered:
        out.setdefault(f, []).append(t)

    def excess(i, b):
        return max(0, b[i] - high[i])

    def need(i, b):
        return max(0, low[i] - b[i])

    candidates = [(f, t) for (f, t) in ordered
                  if eligible[f] and eligible[t] and excess(f, bikes0) > 0 and need(t, bikes0) > 0]
    budget = effort["bike_move_budget_per_step"]
    bikes, touched, moved, plan = list(bikes0), set(), 0, []
    while True:
        if budget - moved <= 0:
            stop = "budget_exhausted"
            break
        if len(plan) >= effort["max_moves"]:
            stop = "max_moves"
            break
        best, best_key, blocked = None, None, False
        for (f, t) in candidates:
            x = min(excess(f, bikes), need(t, bikes))
            if x == 0:
                continue
            new = (f not in touched) + (t not in touched)
            if len(touched) + new > effort["max_stations_touched"]:
                blocked = True
                continue
            key = (edges[(f, t)], -x, f, t)
            if best_key is None or key < best_key:
                best, best_key = (f, t, x), key
        if best is None:
            stop = "max_stations_touched" if blocked else "no_candidates"
            break
        f, t, x = best
        amount = min(x, budget - moved)
        bikes[f] -= amount
        bikes[t] += amount
        touched.update((f, t))
        moved += amount
        plan.append((f, t, amount))

    eligible_ix = [i for i in range(len(keys)) if eligible[i]]
    diagnostics = {
        "eligible_stations": len(eligible_ix),
        "donors": sum(1 for i in eligible_ix if excess(i, bikes0) > 0),
        "receivers": sum(1 for i in eligible_ix if need(i, bikes0) > 0),
        "total_excess": sum(excess(i, bikes0) for i in eligible_ix),
        "total_need": sum(need(i, bikes0) for i in eligible_ix),
        "stop_reason": stop,
    }
    weighted = -0.0
    for (f, t, b) in plan:
        weighted += float(b) * edges[(f, t)]
    diagnostics["weighted_distance_m"] = round_half_away(weighted * 10.0) / 10.0

    bikes, touched, moved, moves = list(bikes0), set(), 0, []
    for rank, (f, t, b) in enumerate(plan, start=1):
        bikes[f] -= b
        bikes[t] += b
        touched.update((f, t))
        moved += b
        exhausted = excess(f, bikes) == 0 or not any(
            eligible[v] and need(v, bikes) > 0 for v in out.get(f, []))
        moves.append({
            "move_rank": rank,
            "from_station_key": keys[f],
            "to_station_key": keys[t],
            "bikes_moved": b,
            "dist_m": edges[(f, t)],
            "budget_exhausted": budget - moved <= 0,
            "neighbor_exhausted": exhausted,
            "reason_codes": [REASON],
        })
    return {
        "moves": moves,
        "summary": {"bikes_moved_total": moved, "stations_touched": len(touched), "no_op": not moves},
        "diagnostics": diagnostics,
    }


if __name__ == "__main__":
    polis_plugin.serve(decide)
