//! Reads what the rules need from a repository, once, under caps.
//!
//! A repository's protocol runs are the directories `.protocols/<run>/`
//! (symbolic links are not followed). A run's steps are its top-level files
//! named `NN-<name>.md` (two or more ASCII digits, a dash, a name without
//! whitespace), plus every such name that its `plan.md` mentions as a
//! Markdown link target or in inline code. Only regular files are read,
//! each at most [`MAX_MARKDOWN_BYTES`]; a larger or non-UTF-8 step file is
//! reported, never truncated.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use crate::error::PackError;

/// Most protocol runs a repository may have.
pub const MAX_RUNS: usize = 10_000;
/// Most directory entries read from one run.
pub const MAX_ENTRIES_PER_RUN: usize = 10_000;
/// Largest step or plan file read.
pub const MAX_MARKDOWN_BYTES: u64 = 1 << 20;

/// What the rules need to know about a repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoFacts {
    /// Protocol runs by name, in name order.
    pub runs: Vec<RunFacts>,
    /// Each required check's state, by path.
    pub checks: BTreeMap<String, CheckState>,
}

/// One protocol run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFacts {
    /// The directory name under `.protocols/`.
    pub name: String,
    /// The required protocol files that are missing.
    pub missing_files: Vec<String>,
    /// Its steps by file name.
    pub steps: BTreeMap<String, StepFacts>,
}

/// One step of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepFacts {
    /// Whether the file exists as a regular file.
    pub exists: bool,
    /// Where `plan.md` names it, first mention (1-based line).
    pub plan_line: Option<u32>,
    /// Its headings, normalised by [`normalize_heading`].
    pub headings: BTreeSet<String>,
    /// Why it could not be read, if it could not.
    pub unreadable: Option<String>,
}

/// The state of a required check script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// No file there.
    Missing,
    /// There, but not an executable regular file.
    NotExecutable,
    /// An executable regular file.
    Executable,
}

/// Reads the facts for the given protocol files and checks.
pub fn scan(repo: &Path, protocol_files: &[String], checks: &[String]) -> Result<RepoFacts, PackError> {
    let io = |what: &Path, e: std::io::Error| PackError::Io {
        subject: format!("`{}`", what.display()),
        message: e.to_string(),
    };
    let meta = repo.metadata().map_err(|e| io(repo, e))?;
    if !meta.is_dir() {
        return Err(PackError::Rejected {
            subject: format!("repository `{}`", repo.display()),
            message: "is not a directory".into(),
        });
    }
    let mut facts = RepoFacts::default();
    for check in checks {
        facts.checks.insert(check.clone(), check_state(&repo.join(check)));
    }
    let protocols = repo.join(".protocols");
    let is_dir = protocols.symlink_metadata().is_ok_and(|m| m.is_dir());
    if !is_dir {
        return Ok(facts);
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&protocols).map_err(|e| io(&protocols, e))? {
        let entry = entry.map_err(|e| io(&protocols, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Ok(name) = entry.file_name().into_string()
        {
            names.push(name);
            if names.len() > MAX_RUNS {
                return Err(PackError::Rejected {
                    subject: format!("`{}`", protocols.display()),
                    message: format!("holds more than {MAX_RUNS} protocol runs"),
                });
            }
        }
    }
    names.sort();
    for name in names {
        facts.runs.push(scan_run(&protocols.join(&name), name, protocol_files)?);
    }
    Ok(facts)
}

fn scan_run(dir: &Path, name: String, protocol_files: &[String]) -> Result<RunFacts, PackError> {
    let io = |e: std::io::Error| PackError::Io { subject: format!("`{}`", dir.display()), message: e.to_string() };
    let mut run = RunFacts { name, ..RunFacts::default() };
    for file in protocol_files {
        if !dir.join(file).symlink_metadata().is_ok_and(|m| m.is_file()) {
            run.missing_files.push(file.clone());
        }
    }
    let mut count = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        count += 1;
        if count > MAX_ENTRIES_PER_RUN {
            return Err(PackError::Rejected {
                subject: format!("`{}`", dir.display()),
                message: format!("holds more than {MAX_ENTRIES_PER_RUN} entries"),
            });
        }
        let Ok(file_name) = entry.file_name().into_string() else { continue };
        if !is_step_name(&file_name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let mut step = StepFacts { exists: true, ..StepFacts::default() };
        match read_markdown(&dir.join(&file_name)) {
            Ok(text) => step.headings = headings(&text),
            Err(why) => step.unreadable = Some(why),
        }
        run.steps.insert(file_name, step);
    }
    let plan = dir.join("plan.md");
    if plan.symlink_metadata().is_ok_and(|m| m.is_file())
        && let Ok(text) = read_markdown(&plan)
    {
        for (line, step_name) in plan_references(&text) {
            let step = run.steps.entry(step_name).or_default();
            step.plan_line = Some(step.plan_line.map_or(line, |l| l.min(line)));
        }
    }
    Ok(run)
}

fn read_markdown(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_MARKDOWN_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_MARKDOWN_BYTES {
        return Err(format!("larger than {MAX_MARKDOWN_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

fn check_state(path: &Path) -> CheckState {
    match path.metadata() {
        Err(_) => CheckState::Missing,
        Ok(meta) if meta.is_file() && executable(&meta) => CheckState::Executable,
        Ok(_) => CheckState::NotExecutable,
    }
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_meta: &std::fs::Metadata) -> bool {
    true
}

/// Whether a file name is a step's: `NN-<name>.md`, two or more digits.
pub fn is_step_name(name: &str) -> bool {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = name[digits..].strip_prefix('-') else { return false };
    let Some(stem) = rest.strip_suffix(".md") else { return false };
    digits >= 2 && !stem.is_empty() && !stem.chars().any(char::is_whitespace) && !stem.contains('/')
}

/// Normalises a heading for comparison: trimmed, closing `#`s removed, a
/// trailing colon removed, lowercase.
pub fn normalize_heading(text: &str) -> String {
    let mut text = text.trim();
    let without_closing = text.trim_end_matches('#');
    if without_closing.len() != text.len() && (without_closing.is_empty() || without_closing.ends_with([' ', '\t'])) {
        text = without_closing.trim_end();
    }
    text.trim_end_matches(':').trim().to_lowercase()
}

/// The ATX headings (`#` to `######`, up to three spaces of indent, then a
/// space or the end of the line) outside fenced code blocks.
pub fn headings(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fence: Option<(char, usize)> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = line.trim_start_matches(' ');
        if indent <= 3 {
            let marker = body.chars().next().filter(|c| *c == '`' || *c == '~');
            if let Some(marker) = marker {
                let run = body.chars().take_while(|c| *c == marker).count();
                if run >= 3 {
                    match fence {
                        None => fence = Some((marker, run)),
                        Some((open, len)) if open == marker && run >= len && body.trim_end().len() == run => {
                            fence = None
                        }
                        Some(_) => {}
                    }
                    continue;
                }
            }
        }
        if fence.is_some() || indent > 3 {
            continue;
        }
        let hashes = body.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let rest = &body[hashes..];
        if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
            continue;
        }
        out.insert(normalize_heading(rest));
    }
    out
}

/// The step files a plan names, with the 1-based line of each mention: the
/// target of a Markdown link `[..](target)` or the text of inline code
/// `` `..` ``, taken as a step when its last path segment (without a
/// `#fragment` or a leading `./`) is a step name.
pub fn plan_references(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let mut candidates = Vec::new();
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            candidates.push(&after[..end]);
            rest = &after[end..];
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(code), Some(_)) = (parts.next(), parts.clone().next()) {
            candidates.push(code);
            parts.next();
        }
        for candidate in candidates {
            let target = candidate.split_whitespace().next().unwrap_or("");
            let target = target.split('#').next().unwrap_or("");
            let last = target.rsplit('/').next().unwrap_or("");
            if is_step_name(last) {
                out.push((number, last.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_need_two_digits_a_dash_and_md() {
        assert!(is_step_name("01-setup.md"));
        assert!(is_step_name("120-deploy-prod.md"));
        assert!(!is_step_name("1-setup.md"));
        assert!(!is_step_name("01setup.md"));
        assert!(!is_step_name("01-.md"));
        assert!(!is_step_name("01-setup.txt"));
        assert!(!is_step_name("01-two words.md"));
    }

    #[test]
    fn headings_match_case_insensitively_without_trailing_colon() {
        let text = "# Sub-tasks:\n## verification ##\n   ### Rollback\n    # indented code\n#NoSpace\n```\n# in a fence\n```\n####### seven\n#\n";
        let found: Vec<String> = headings(text).into_iter().collect();
        assert_eq!(found, ["", "rollback", "sub-tasks", "verification"]);
    }

    #[test]
    fn plans_name_steps_by_link_or_inline_code() {
        let plan = "1. [Set up](01-setup.md)\n2. `02-build.md` then [x](./sub/03-test.md#top)\nnot 04-plain.md\n`5-short.md`\n";
        assert_eq!(
            plan_references(plan),
            [(1, "01-setup.md".to_owned()), (2, "03-test.md".to_owned()), (2, "02-build.md".to_owned())]
        );
    }
}
