//! Policy benchmarks; the tier benchmarks live in `polis-plugins/benches/tiers.rs`.

fn main() {}
