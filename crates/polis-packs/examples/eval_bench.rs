//! Times effective resolution plus evaluation of a generated repository
//! (by default 200 protocol runs of 10 steps: 2,000 steps) under
//! `enterprise-compliance`, warm: the repository is written once, then
//! resolved, scanned and evaluated `--iterations` times; prints the median
//! and the fastest run in milliseconds.
//!
//! `cargo run --release -p polis-packs --example eval_bench -- DIR` leaves
//! the repository in DIR so `scripts/bench-packs.sh` can time the shell
//! equivalent on the same files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::time::Instant;

use polis_packs::eval::{Answers, Context, evaluate};
use polis_packs::{Catalog, ProjectLayer, local, resolve, scan, view};

const SECTIONS: [&str; 8] = [
    "Context",
    "Risk Assessment",
    "Security Considerations",
    "Sub-tasks",
    "Verification",
    "Rollback",
    "Audit Notes",
    "Definition of Done",
];

fn generate(root: &Path, runs: usize, steps: usize) {
    use std::os::unix::fs::PermissionsExt;
    for check in ["test", "lint", "typecheck", "build", "security"] {
        let path = root.join(format!("scripts/ci/{check}.sh"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for run in 0..runs {
        let dir = root.join(format!(".protocols/{run:04}-run"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut plan = String::from("# Plan\n\n");
        for step in 0..steps {
            plan.push_str(&format!("- [step](./{:02}-step.md)\n", step + 1));
            let mut text = format!("# Step {step}\n\n");
            // Every seventh step misses one section, so findings are produced.
            for (i, section) in SECTIONS.iter().enumerate() {
                if (run * steps + step).is_multiple_of(7) && i == 3 {
                    continue;
                }
                text.push_str(&format!("## {section}\n\nSome text for the section.\n\n"));
            }
            std::fs::write(dir.join(format!("{:02}-step.md", step + 1)), text).unwrap();
        }
        std::fs::write(dir.join("plan.md"), plan).unwrap();
        std::fs::write(dir.join("context.md"), "# Context\n").unwrap();
        if !run.is_multiple_of(10) {
            std::fs::write(dir.join("log.md"), "# Log\n").unwrap();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let keep = args.next();
    let iterations: usize = std::env::var("ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let temp = tempfile::tempdir().unwrap();
    let root = keep.as_deref().map_or(temp.path(), Path::new);
    std::fs::create_dir_all(root).unwrap();
    generate(root, 200, 10);
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&"enterprise-compliance".parse().unwrap()).unwrap();
    let answers = Answers::new();
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let mut times = Vec::new();
    let mut findings = 0;
    for _ in 0..iterations {
        let start = Instant::now();
        let repo_local = local::load(root).unwrap();
        let effective = resolve(pack, &ProjectLayer::default(), repo_local.as_ref()).unwrap();
        let facts =
            scan::scan(root, &view::protocol_files(&effective.policy), &view::required_checks(&effective.policy))
                .unwrap();
        let evaluation =
            evaluate(&effective, &facts, &Context { answers: &answers, waivers: &[], now, phase: None }).unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        findings = evaluation.findings.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "200 runs, 2000 steps: {findings} findings; median {:.2} ms, fastest {:.2} ms over {iterations} warm iterations",
        times[times.len() / 2],
        times[0]
    );
}
