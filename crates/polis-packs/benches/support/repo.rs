//! A generated repository for the `team-standard` pack, with known defects,
//! shared by the benchmark (`benches/eval.rs`) and the test that checks the
//! shell script against polis (`tests/naive_check.rs`).
//!
//! `RUNS` protocol runs `.protocols/0001-run` … of `STEPS` steps each, every
//! step a Markdown file of the seven `team-standard` sections, and the four
//! check scripts. Everything is a function of the run and step numbers, so
//! the same shape gives the same files. The defects, each also counted in
//! [`Expected`]:
//!
//! - check scripts: `lint.sh` is not executable, `typecheck.sh` is missing;
//! - every 10th run lacks `log.md`, every 25th `context.md`, every 40th
//!   `plan.md`; every 50th run's plan names a step that has no file;
//! - every 7th step lacks one section (a different one each time), and every
//!   29th writes `Definition of Done` as bold text and as `#Definition of
//!   Done` (no space), which are not headings.
//!
//! Headings vary the way people write them, which must still count: every
//! 13th step writes `### verification:` and `  ## Rollback ##`. Each run
//! also holds `notes.md` and `1-draft.md`, which are not steps.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `team-standard`'s step sections, in its order.
pub const SECTIONS: [&str; 7] =
    ["Context", "Scope", "Sub-tasks", "Verification", "Rollback", "Observability", "Definition of Done"];

/// The findings polis must report, by code.
pub type Expected = BTreeMap<&'static str, usize>;

/// Answers to `team-standard`'s three questions, as `--answers` takes them,
/// so that only the repository's defects are findings.
pub const ANSWERS: &str = r#"{
  "review_policy": {"value": "1-approval", "answered_by": "lead@example.com"},
  "environments": {"value": ["dev", "prod"], "answered_by": "lead@example.com"},
  "rollback_strategy": {"value": "revert", "answered_by": "lead@example.com"}
}"#;

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}

fn script(root: &Path, name: &str, mode: u32) -> std::io::Result<()> {
    let path = root.join("scripts/ci").join(name);
    write(&path, "#!/bin/sh\nexit 0\n")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
}

fn step_text(run: usize, step: usize, global: usize, expected: &mut Expected) -> String {
    let omitted = (global % 7 == 3).then_some((global / 7) % SECTIONS.len());
    let fake_done = global % 29 == 11;
    let variants = global % 13 == 5;
    let mut text = format!("# Step {step} of run {run}\n\nWhat this step does, in a sentence or two.\n\n");
    for (index, section) in SECTIONS.iter().enumerate() {
        if Some(index) == omitted {
            *expected.entry("policy.step.missing_section").or_default() += 1;
            continue;
        }
        if fake_done && *section == "Definition of Done" {
            *expected.entry("policy.step.missing_section").or_default() += 1;
            text.push_str("**Definition of Done**: see below.\n\n#Definition of Done\n\n");
            continue;
        }
        let heading = match *section {
            "Verification" if variants => "### verification:".to_owned(),
            "Rollback" if variants => "  ## Rollback ##".to_owned(),
            other => format!("## {other}"),
        };
        text.push_str(&format!(
            "{heading}\n\n- The {section} of step {step}: a line of prose that a planner wrote.\n- Another line.\n\n"
        ));
    }
    text.push_str("```sh\n# Not a heading: a comment in a code block\nmake test\n```\n");
    text
}

/// Writes the repository under `root` (which must be empty or absent) and
/// returns the findings polis must report for it under `team-standard` with
/// [`ANSWERS`].
pub fn generate(root: &Path, runs: usize, steps: usize) -> std::io::Result<Expected> {
    let mut expected = Expected::new();
    script(root, "test.sh", 0o755)?;
    script(root, "lint.sh", 0o644)?;
    script(root, "build.sh", 0o755)?;
    expected.insert("policy.ci.required_check_not_executable", 1);
    expected.insert("policy.ci.required_check_missing", 1);
    // A tightening repo-local file, so resolution goes through all three
    // layers; it changes no requirement.
    write(&root.join(".polis/policy.yml"), "enforcement:\n  mode: block\n")?;

    for run in 1..=runs {
        let dir = root.join(format!(".protocols/{run:04}-run"));
        std::fs::create_dir_all(&dir)?;
        let mut plan = format!("# Plan of run {run}\n\n");
        for step in 1..=steps {
            let global = (run - 1) * steps + (step - 1);
            plan.push_str(&format!("{step}. [Step {step}](./{step:02}-step.md)\n"));
            write(&dir.join(format!("{step:02}-step.md")), &step_text(run, step, global, &mut expected))?;
        }
        if run % 50 == 0 {
            plan.push_str(&format!("{}. Then `{:02}-extra.md`, not written yet.\n", steps + 1, steps + 1));
        }
        let mut missing = 0;
        if run % 40 == 0 {
            missing += 1;
        } else {
            if run % 50 == 0 {
                *expected.entry("policy.step.file_missing").or_default() += 1;
            }
            write(&dir.join("plan.md"), &plan)?;
        }
        if run % 25 == 0 {
            missing += 1;
        } else {
            write(&dir.join("context.md"), "# Context\n\nWhy this run exists.\n")?;
        }
        if run % 10 == 0 {
            missing += 1;
        } else {
            write(&dir.join("log.md"), "# Log\n\n- started\n")?;
        }
        if missing > 0 {
            *expected.entry("policy.protocol.missing_file").or_default() += missing;
        }
        write(&dir.join("notes.md"), "# Notes\n")?;
        write(&dir.join("1-draft.md"), "# Draft\n")?;
    }
    Ok(expected)
}
