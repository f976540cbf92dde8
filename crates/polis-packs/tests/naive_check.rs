//! The benchmark's two sides agree: on a generated repository (the bench's
//! generator, smaller), polis and `benches/naive_check.sh` report the same
//! findings by code, and both what the generator says it wrote.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "../benches/support/repo.rs"]
mod repo;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use polis_packs::eval::{Answers, Context, evaluate};
use polis_packs::{Catalog, ProjectLayer, local, resolve, scan, view};

fn polis_counts(root: &Path) -> BTreeMap<String, usize> {
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&"team-standard".parse().unwrap()).unwrap();
    let repo_local = local::load(root).unwrap();
    let effective = resolve(pack, &ProjectLayer::default(), repo_local.as_ref()).unwrap();
    let facts =
        scan::scan(root, &view::protocol_files(&effective.policy), &view::required_checks(&effective.policy)).unwrap();
    let answers: Answers = serde_json::from_str(repo::ANSWERS).unwrap();
    let context = Context { answers: &answers, waivers: &[], now: time::OffsetDateTime::UNIX_EPOCH, phase: None };
    let evaluation = evaluate(&effective, &facts, &context).unwrap();
    let mut counts = BTreeMap::new();
    for finding in evaluation.findings {
        *counts.entry(finding.code).or_default() += 1;
    }
    counts
}

fn shell_counts(root: &Path) -> BTreeMap<String, usize> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/naive_check.sh");
    let output = Command::new("bash").arg(script).arg(root).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split_once(' ').unwrap())
        .map(|(code, count)| (code.to_owned(), count.parse().unwrap()))
        .filter(|(_, count)| *count > 0)
        .collect()
}

#[test]
fn polis_and_the_shell_script_find_the_generated_defects() {
    let dir = tempfile::tempdir().unwrap();
    // 50 runs of 4 steps: every kind of defect the generator writes occurs.
    let expected: BTreeMap<String, usize> =
        repo::generate(dir.path(), 50, 4).unwrap().into_iter().map(|(code, n)| (code.to_owned(), n)).collect();
    assert_eq!(expected.len(), 5, "{expected:?}");
    assert_eq!(polis_counts(dir.path()), expected);
    assert_eq!(shell_counts(dir.path()), expected);
}
