//! Wall time of whole simulations: runs a SimCash scenario file `N` times
//! (default 5) in one process and prints each run's time, the median, and
//! what the run produced (arrivals, settlements, total cost) so a timing is
//! never of a run that did something else.
//!
//! `cargo run --release -p polis-payments --example sim_bench -- SCENARIO.yaml [N]`

#![expect(clippy::expect_used, reason = "a benchmark program: bad arguments end it")]

use std::time::Instant;

use polis_payments::dsl::PolicyCache;
use polis_payments::sim::{self, Options, Report};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: sim_bench SCENARIO.yaml [RUNS]");
    let runs: usize = args.next().map_or(5, |n| n.parse().expect("RUNS must be a number"));
    let text = std::fs::read_to_string(&path).expect("cannot read the scenario");
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        // A fresh cache each run: parsing, validation and compilation count.
        let started = Instant::now();
        let simulation = sim::simulate(&text, &Options::default(), &PolicyCache::new()).expect("simulation failed");
        let elapsed = started.elapsed();
        let report = Report::of(&simulation);
        println!(
            "run {run}: {:.3} s, {} arrivals, {} settlements, total cost {} cents",
            elapsed.as_secs_f64(),
            report.system.arrivals,
            report.system.settlements,
            report.system.total_cost
        );
        times.push(elapsed.as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.3} s over {runs} runs", times[runs / 2]);
}
