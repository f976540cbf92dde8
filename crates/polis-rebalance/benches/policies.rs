//! Benchmarks of the rebalancing policies (to be filled in by the benchmark issue).
fn main() {}
