#!/usr/bin/env bash
# The strategy domain's benchmarks in one run (BENCHMARKS.md): polis's
# features and built-ins on 1,000,000 synthetic bars and on GOOG daily, then
# the same MACD/RSI crossover as a backtesting.py Strategy on the same two
# files. Needs `pip install ta-lib backtesting`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
GOOG=$(python3 -c "import backtesting, os; print(os.path.join(os.path.dirname(backtesting.__file__), 'test', 'GOOG.csv'))")
CSV=$(mktemp --suffix=.csv)
trap 'rm -f "$CSV"' EXIT
cargo run --quiet --release -p polis-strategy --example strategy_bench -- 1000000 --csv "$CSV" --goog "$GOOG"
python3 crates/polis-strategy/benches/backtesting_peer.py "$GOOG"
python3 crates/polis-strategy/benches/backtesting_peer.py "$CSV"
