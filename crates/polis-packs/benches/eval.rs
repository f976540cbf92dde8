//! The packs benchmark (BENCHMARKS.md, "Policy packs"): effective
//! resolution plus evaluation of a generated 200-run, 2,000-step repository
//! under `team-standard`, warm, beside the obvious shell script doing the
//! same checks (`benches/naive_check.sh`: `find`, `test`, `grep`) on the same
//! files, timed in the same run.
//!
//! ```sh
//! cargo bench -p polis-packs --bench eval
//! cargo bench -p polis-packs --bench eval -- --iterations 100 --shell-runs 5 --runs 200 --steps 10
//! ```
//!
//! One polis iteration is what `polis pack eval REPO --pack team-standard
//! --answers F` does after reading its arguments: build the catalog of
//! built-in packs, load the repository's policy file, resolve the effective
//! policy, scan the repository and evaluate. The repository is written once
//! and read a few times before timing, so the page cache is warm for both
//! sides. Both must report the same findings, by code, as the generator
//! expects; the bench fails otherwise.
//!
//! A plain `main` (`harness = false`) rather than criterion: it needs no new
//! dependency, and the shell side takes seconds per run, which criterion's
//! sampling would turn into minutes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/repo.rs"]
mod repo;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use polis_packs::eval::{Answers, Context, evaluate};
use polis_packs::{Catalog, ProjectLayer, local, resolve, scan, view};

struct Options {
    iterations: usize,
    shell_runs: usize,
    runs: usize,
    steps: usize,
    keep: Option<String>,
}

fn options() -> Options {
    let mut options = Options { iterations: 50, shell_runs: 3, runs: 200, steps: 10, keep: None };
    let mut args = std::env::args().skip(1);
    let number = |args: &mut dyn Iterator<Item = String>| -> usize {
        args.next().and_then(|v| v.parse().ok()).expect("a number after the flag")
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => options.iterations = number(&mut args),
            "--shell-runs" => options.shell_runs = number(&mut args),
            "--runs" => options.runs = number(&mut args),
            "--steps" => options.steps = number(&mut args),
            "--keep" => options.keep = args.next(),
            // `cargo bench` passes `--bench`; ignore it and any filter.
            _ => {}
        }
    }
    options
}

/// Per phase of one polis iteration.
#[derive(Default)]
struct Phases {
    catalog: Vec<Duration>,
    resolve: Vec<Duration>,
    scan: Vec<Duration>,
    evaluate: Vec<Duration>,
    total: Vec<Duration>,
}

fn polis_once(root: &Path, answers: &Answers, phases: &mut Phases) -> BTreeMap<String, usize> {
    let start = Instant::now();
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&"team-standard".parse().unwrap()).unwrap();
    let catalog_done = Instant::now();
    let repo_local = local::load(root).unwrap();
    let effective = resolve(pack, &ProjectLayer::default(), repo_local.as_ref()).unwrap();
    let resolve_done = Instant::now();
    let facts =
        scan::scan(root, &view::protocol_files(&effective.policy), &view::required_checks(&effective.policy)).unwrap();
    let scan_done = Instant::now();
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let evaluation = evaluate(&effective, &facts, &Context { answers, waivers: &[], now, phase: None }).unwrap();
    let end = Instant::now();
    phases.catalog.push(catalog_done - start);
    phases.resolve.push(resolve_done - catalog_done);
    phases.scan.push(scan_done - resolve_done);
    phases.evaluate.push(end - scan_done);
    phases.total.push(end - start);
    assert!(evaluation.blocked, "the repository's file raises the mode to block");
    let mut counts = BTreeMap::new();
    for finding in &evaluation.findings {
        *counts.entry(finding.code.clone()).or_default() += 1;
    }
    counts
}

fn shell_once(script: &Path, root: &Path) -> (Duration, BTreeMap<String, usize>) {
    let start = Instant::now();
    let output = Command::new("bash").arg(script).arg(root).output().unwrap();
    let elapsed = start.elapsed();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let counts = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(code, count)| (code.to_owned(), count.parse().unwrap()))
        .filter(|(_, count)| *count > 0)
        .collect();
    (elapsed, counts)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() {
    let options = options();
    let temp = tempfile::tempdir().unwrap();
    let root = options.keep.as_deref().map_or_else(|| temp.path().join("repo"), Into::into);
    let expected: BTreeMap<String, usize> = repo::generate(&root, options.runs, options.steps)
        .unwrap()
        .into_iter()
        .map(|(code, count)| (code.to_owned(), count))
        .collect();
    let answers: Answers = serde_json::from_str(repo::ANSWERS).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/naive_check.sh");

    // Warm up: the page cache, the lazily compiled JSON Schemas, the allocator.
    let mut warm = Phases::default();
    for _ in 0..5 {
        assert_eq!(polis_once(&root, &answers, &mut warm), expected, "polis finds what the generator wrote");
    }
    let (_, shell_counts) = shell_once(&script, &root);
    assert_eq!(shell_counts, expected, "the shell script finds what the generator wrote");

    let mut phases = Phases::default();
    for _ in 0..options.iterations {
        polis_once(&root, &answers, &mut phases);
    }
    let mut shell: Vec<Duration> = (0..options.shell_runs).map(|_| shell_once(&script, &root).0).collect();

    let findings: usize = expected.values().sum();
    let fastest = phases.total.iter().min().copied().unwrap_or_default();
    let polis = median(&mut phases.total);
    let shell_median = median(&mut shell);
    println!(
        "repository: {} runs, {} steps, {findings} findings ({})",
        options.runs,
        options.runs * options.steps,
        expected.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "polis, resolve + scan + evaluate: median {:.2} ms, fastest {:.2} ms over {} warm iterations",
        ms(polis),
        ms(fastest),
        options.iterations
    );
    println!(
        "  phases (medians): catalog {:.2} ms, effective policy {:.2} ms, scan {:.2} ms, evaluate {:.2} ms",
        ms(median(&mut phases.catalog)),
        ms(median(&mut phases.resolve)),
        ms(median(&mut phases.scan)),
        ms(median(&mut phases.evaluate))
    );
    println!(
        "shell (find, test, grep), same findings: median {:.0} ms over {} runs ({})",
        ms(shell_median),
        options.shell_runs,
        shell.iter().map(|d| format!("{:.0}", ms(*d))).collect::<Vec<_>>().join(", ")
    );
    println!("ratio: the shell script takes {:.0}x polis's time", shell_median.as_secs_f64() / polis.as_secs_f64());
}
