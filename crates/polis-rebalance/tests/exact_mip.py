"""The exact capped optimum of rebalancing instances, by a MIP solved with
HiGHS through scipy.optimize.milp. Used by tests/capped_exact.rs.

Reads JSON from stdin: a list of instances, each
  {"stations": n, "excess": [n], "need": [n], "budget": B,
   "max_moves": M, "max_stations": S, "edges": [[from, to, x], ...]}
where `x = min(excess[from], need[to])` bounds an edge's transfer.

Writes JSON to stdout: per instance {"bikes": int, "status": str,
"seconds": float}. The model: integer flow f_e in 0..x_e, binary y_e
(edge used: f_e <= x_e y_e, one move), binary z_s (station touched:
y_e <= z_from, y_e <= z_to), sum y <= M, sum z <= S, sum f <= B, each
donor's outflow <= excess, each receiver's inflow <= need; maximise sum f.

Exit status 3 when scipy is not installed, so the caller can say so.
"""

import json
import sys
import time

try:
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix
except ImportError as error:  # pragma: no cover - reported by the caller
    print(f"scipy is not installed: {error}", file=sys.stderr)
    sys.exit(3)


def solve(inst):
    edges = inst["edges"]
    m = len(edges)
    if m == 0:
        return {"bikes": 0, "status": "optimal", "seconds": 0.0}
    used = sorted({s for e in edges for s in e[:2]})
    col_of = {s: 2 * m + i for i, s in enumerate(used)}
    nvar = 2 * m + len(used)
    rows, cols, vals, lo, hi = [], [], [], [], []
    row = 0

    def add(entries, low, high):
        nonlocal row
        for c, v in entries:
            rows.append(row)
            cols.append(c)
            vals.append(v)
        lo.append(low)
        hi.append(high)
        row += 1

    for i, (u, v, x) in enumerate(edges):
        add([(i, 1.0), (m + i, -float(x))], -np.inf, 0.0)
        add([(m + i, 1.0), (col_of[u], -1.0)], -np.inf, 0.0)
        add([(m + i, 1.0), (col_of[v], -1.0)], -np.inf, 0.0)
    add([(m + i, 1.0) for i in range(m)], -np.inf, inst["max_moves"])
    add([(col_of[s], 1.0) for s in used], -np.inf, inst["max_stations"])
    add([(i, 1.0) for i in range(m)], -np.inf, inst["budget"])
    out_of, into = {}, {}
    for i, (u, v, _) in enumerate(edges):
        out_of.setdefault(u, []).append(i)
        into.setdefault(v, []).append(i)
    for u, ids in sorted(out_of.items()):
        add([(i, 1.0) for i in ids], -np.inf, inst["excess"][u])
    for v, ids in sorted(into.items()):
        add([(i, 1.0) for i in ids], -np.inf, inst["need"][v])
    a = coo_matrix((vals, (rows, cols)), shape=(row, nvar)).tocsr()
    c = np.zeros(nvar)
    c[:m] = -1.0
    upper = np.concatenate([np.array([e[2] for e in edges], dtype=float), np.ones(m + len(used))])
    started = time.perf_counter()
    result = milp(
        c,
        constraints=LinearConstraint(a, np.array(lo), np.array(hi)),
        integrality=np.ones(nvar),
        bounds=Bounds(np.zeros(nvar), upper),
        options={"time_limit": 60.0, "mip_rel_gap": 0.0},
    )
    seconds = time.perf_counter() - started
    if result.x is None:
        return {"bikes": -1, "status": result.message, "seconds": seconds}
    status = "optimal" if result.status == 0 else result.message
    return {"bikes": int(round(-result.fun)), "status": status, "seconds": seconds}


def main():
    instances = json.load(sys.stdin)
    json.dump([solve(inst) for inst in instances], sys.stdout)


if __name__ == "__main__":
    main()
