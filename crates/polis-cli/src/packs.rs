//! `polis pack …`: policy packs (seed 002) from the command line: list and
//! validate packs, print the effective policy with each value's layer,
//! evaluate a repository into findings (a table, JSON or SARIF), and gate
//! it.
//!
//! Everything here is glue over `polis_packs`: reading the files named on
//! the command line, reading the clock once for waivers (or `--now`), and
//! rendering.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use polis_packs::eval::{self, Answers, Evaluation, Waiver};
use polis_packs::{Catalog, EffectivePolicy, Mode, PackDocument, PackRef, ProjectLayer, local, scan, view};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Outcome;
use crate::table::{Align, render};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the packs: polis's five built-ins plus any `--pack-file`.
    List(CatalogArgs),
    /// Check pack documents (the payload of `POST /policy_packs`), or with
    /// `--policy` partial-policy files (overrides, `.polis/policy.yml`).
    ///
    /// Exits 1 when any file is invalid, naming every problem with its
    /// JSON-pointer path.
    Validate(ValidateArgs),
    /// Print the effective policy: pack → overrides → repo-local file, with
    /// the layer (`pack`, `project`, `repo`) that set each value, the
    /// enforcement mode and its source, and the hash.
    Effective(PolicyArgs),
    /// Evaluate a repository's protocol runs under the effective policy and
    /// print the findings: a table, JSON with `--json`, or a SARIF 2.1.0 log
    /// for GitHub code scanning with `--sarif`. Exits 1 when a finding
    /// blocks.
    #[command(alias = "findings")]
    Eval(EvalArgs),
    /// Answer whether a repository may pass a phase's gate: allowed, or
    /// blocked with the blocking findings. Exits 1 when blocked.
    Gate(EvalInputs),
    /// Render the effective policy for a planner (required protocol files,
    /// step sections, checks, QA policy, model defaults, open questions) as
    /// Markdown, or JSON with `--json`, carrying the effective hash.
    Guidance(GuidanceArgs),
}

#[derive(Debug, Args)]
pub struct GuidanceArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Answers recorded so far (see `polis pack eval --help`).
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Add a pack document (JSON) to the built-ins; repeatable.
    #[arg(long = "pack-file", value_name = "FILE")]
    pack_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Check them as partial policies (overrides or a repo-local file,
    /// JSON or YAML) instead of pack documents.
    #[arg(long)]
    policy: bool,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The pack: KEY (latest active version) or KEY@VERSION.
    #[arg(long, value_name = "KEY[@VERSION]", default_value = polis_packs::builtin::DEFAULT_KEY)]
    pack: String,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Project overrides: an RFC 7396 merge patch of the overridable
    /// sections (JSON, or YAML unless the name ends in `.json`).
    #[arg(long, value_name = "FILE")]
    overrides: Option<PathBuf>,
    /// Project operations: an RFC 6902 JSON Patch array, applied after the
    /// overrides.
    #[arg(long, value_name = "FILE")]
    ops: Option<PathBuf>,
    /// The project's enforcement mode, the first source of truth; without
    /// it the policy's `enforcement.mode` decides, else `warn`.
    #[arg(long, value_name = "warn|block")]
    mode: Option<String>,
    /// The repository whose `.polis/policy.*` (or `.tasksgodzilla/policy.*`)
    /// file is the last layer.
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    inputs: EvalInputs,
    /// Write the findings as a SARIF 2.1.0 log (for GitHub code scanning):
    /// `--sarif` prints it on stdout instead of the table; `--sarif=FILE`
    /// writes it to FILE and prints the table as usual. Locations are
    /// relative to the repository root. Not with `--json`.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-", conflicts_with = "json")]
    sarif: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalInputs {
    /// The repository to evaluate.
    repo: PathBuf,
    /// The pack: KEY (latest active version) or KEY@VERSION.
    #[arg(long, value_name = "KEY[@VERSION]", default_value = polis_packs::builtin::DEFAULT_KEY)]
    pack: String,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Project overrides (see `polis pack effective --help`).
    #[arg(long, value_name = "FILE")]
    overrides: Option<PathBuf>,
    /// Project RFC 6902 operations.
    #[arg(long, value_name = "FILE")]
    ops: Option<PathBuf>,
    /// The project's enforcement mode.
    #[arg(long, value_name = "warn|block")]
    mode: Option<String>,
    /// Answers: `{"KEY": {"value": …, "answered_by": "…"}}` (JSON or YAML).
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
    /// Waivers: `[{"code", "path"?, "reason", "granted_by", "expires_at"}]`.
    #[arg(long, value_name = "FILE")]
    waivers: Option<PathBuf>,
    /// Gate this phase (onboarding, planning, execution, qa); by default
    /// every phase's blocking questions count.
    #[arg(long)]
    phase: Option<String>,
    /// Judge waivers at this RFC 3339 instant instead of now.
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
    /// Ignore the repository's own policy file.
    #[arg(long)]
    no_repo_local: bool,
}

pub fn run(command: Command, json: bool) -> anyhow::Result<Outcome> {
    match command {
        Command::List(args) => list(&args, json),
        Command::Validate(args) => validate(&args, json),
        Command::Effective(args) => effective(&args, json),
        Command::Eval(args) => eval(&args, json),
        Command::Gate(args) => gate(&args, json),
        Command::Guidance(args) => guidance(&args, json),
    }
}

fn catalog(args: &CatalogArgs) -> anyhow::Result<Catalog> {
    let mut catalog = Catalog::builtin()?;
    for file in &args.pack_files {
        catalog.insert(read_pack(file)?)?;
    }
    Ok(catalog)
}

fn read_pack(file: &Path) -> anyhow::Result<PackDocument> {
    let bytes = read_capped(file)?;
    Ok(PackDocument::from_json(&format!("pack file `{}`", file.display()), &bytes)?)
}

fn read_capped(file: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let cap = polis_packs::check::MAX_BYTES as u64;
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(cap + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read `{}`", file.display()))?;
    if bytes.len() as u64 > cap {
        anyhow::bail!("`{}` is larger than {cap} bytes", file.display());
    }
    Ok(bytes)
}

fn list(args: &CatalogArgs, json: bool) -> anyhow::Result<Outcome> {
    let catalog = catalog(args)?;
    if json {
        let packs: Vec<Value> = catalog
            .list()
            .map(|(key, versions)| {
                let latest = polis_packs::pack::select(key, versions, None).ok().map(|d| d.version.clone());
                serde_json::json!({"key": key, "latest_active": latest, "versions": versions.iter().map(|d| serde_json::json!({
                    "version": d.version, "name": d.name, "description": d.description, "status": d.status
                })).collect::<Vec<_>>()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&packs)?);
        return Ok(Outcome::Success);
    }
    let mut rows = Vec::new();
    for (key, versions) in catalog.list() {
        let latest = polis_packs::pack::select(key, versions, None).ok().map(|d| d.version.clone());
        for document in versions.iter().rev() {
            let marker = if latest.as_deref() == Some(document.version.as_str()) { "latest" } else { "" };
            rows.push(vec![
                key.to_owned(),
                document.version.clone(),
                format!("{:?}", document.status).to_lowercase(),
                marker.to_owned(),
                document.description.clone(),
            ]);
        }
    }
    let headers = [
        ("pack", Align::Left),
        ("version", Align::Left),
        ("status", Align::Left),
        ("", Align::Left),
        ("description", Align::Left),
    ];
    print!("{}", render(&headers, &rows, 120));
    Ok(Outcome::Success)
}

fn validate(args: &ValidateArgs, json: bool) -> anyhow::Result<Outcome> {
    let mut results = Vec::new();
    for file in &args.files {
        let outcome = if args.policy {
            local::read_policy_file(file, &format!("policy file `{}`", file.display())).map(|_| None)
        } else {
            read_capped(file)
                .map_err(|e| polis_packs::PackError::Io {
                    subject: format!("`{}`", file.display()),
                    message: e.to_string(),
                })
                .and_then(|bytes| PackDocument::from_json(&format!("pack file `{}`", file.display()), &bytes))
                .map(|d| Some(d.id()))
        };
        results.push((file, outcome));
    }
    let all_valid = results.iter().all(|(_, r)| r.is_ok());
    if json {
        let body: Vec<Value> = results
            .iter()
            .map(|(file, result)| match result {
                Ok(id) => serde_json::json!({"file": file, "valid": true, "pack": id}),
                Err(polis_packs::PackError::Invalid { violations, .. }) => serde_json::json!({
                    "file": file, "valid": false, "problems": violations.0.iter().map(|v| serde_json::json!({
                        "code": v.code, "path": v.path, "message": v.message})).collect::<Vec<_>>()
                }),
                Err(other) => {
                    serde_json::json!({"file": file, "valid": false, "problems": [{"message": other.to_string()}]})
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        for (file, result) in &results {
            match result {
                Ok(Some(id)) => println!("{}: valid pack `{id}`", file.display()),
                Ok(None) => println!("{}: valid policy", file.display()),
                Err(polis_packs::PackError::Invalid { violations, .. }) => {
                    println!("{}: invalid", file.display());
                    for v in &violations.0 {
                        println!("  `{}`: {} [{}]", if v.path.is_empty() { "/" } else { &v.path }, v.message, v.code);
                    }
                }
                Err(other) => println!("{}: invalid: {other}", file.display()),
            }
        }
    }
    Ok(if all_valid { Outcome::Success } else { Outcome::Findings })
}

struct Inputs<'a> {
    pack: &'a str,
    catalog: &'a CatalogArgs,
    overrides: Option<&'a Path>,
    ops: Option<&'a Path>,
    mode: Option<&'a str>,
    repo: Option<&'a Path>,
}

fn resolve(inputs: &Inputs<'_>) -> anyhow::Result<EffectivePolicy> {
    let catalog = catalog(inputs.catalog)?;
    let reference: PackRef = inputs.pack.parse()?;
    let pack = catalog.resolve(&reference)?;
    let overrides = match inputs.overrides {
        Some(file) => Some(local::read_policy_file(file, &format!("overrides file `{}`", file.display()))?),
        None => None,
    };
    let ops = match inputs.ops {
        Some(file) => match local::read_document(file, &format!("operations file `{}`", file.display()))? {
            Value::Array(ops) => ops,
            _ => anyhow::bail!("operations file `{}` must hold a JSON Patch array", file.display()),
        },
        None => Vec::new(),
    };
    let enforcement_mode = inputs.mode.map(str::parse::<Mode>).transpose()?;
    let project = ProjectLayer { overrides, ops, enforcement_mode };
    let repo_local = match inputs.repo {
        Some(dir) => local::load(dir)?,
        None => None,
    };
    Ok(polis_packs::resolve(pack, &project, repo_local.as_ref())?)
}

fn effective(args: &PolicyArgs, json: bool) -> anyhow::Result<Outcome> {
    let effective = resolve(&Inputs {
        pack: &args.pack,
        catalog: &args.catalog,
        overrides: args.overrides.as_deref(),
        ops: args.ops.as_deref(),
        mode: args.mode.as_deref(),
        repo: args.repo.as_deref(),
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&effective)?);
        return Ok(Outcome::Success);
    }
    println!("pack {}@{}", effective.pack_key, effective.pack_version);
    println!("hash {}", effective.effective_hash);
    println!("mode {} (from {:?})", effective.mode.as_str(), effective.mode_source);
    if let Some(file) = &effective.repo_file {
        println!("repo-local file {file}");
    }
    let rows: Vec<Vec<String>> = effective
        .provenance
        .0
        .iter()
        .map(|(pointer, layer)| {
            let value = effective.policy.pointer(pointer).map(Value::to_string).unwrap_or_default();
            vec![pointer.clone(), value, format!("{layer:?}").to_lowercase()]
        })
        .collect();
    print!("{}", render(&[("value", Align::Left), ("", Align::Left), ("layer", Align::Left)], &rows, 160));
    for note in &effective.notes {
        println!("note: {}", note.message);
    }
    Ok(Outcome::Success)
}

/// Resolves the effective policy, scans the repository and evaluates it.
fn evaluate(args: &EvalInputs) -> anyhow::Result<(EffectivePolicy, Evaluation)> {
    let effective = resolve(&Inputs {
        pack: &args.pack,
        catalog: &args.catalog,
        overrides: args.overrides.as_deref(),
        ops: args.ops.as_deref(),
        mode: args.mode.as_deref(),
        repo: (!args.no_repo_local).then_some(args.repo.as_path()),
    })?;
    let answers = read_answers(args.answers.as_deref())?;
    let waivers: Vec<Waiver> = match &args.waivers {
        Some(file) => {
            let value = local::read_document(file, &format!("waivers file `{}`", file.display()))?;
            serde_json::from_value(value).with_context(|| format!("waivers file `{}`", file.display()))?
        }
        None => Vec::new(),
    };
    let now = match &args.now {
        Some(text) => {
            OffsetDateTime::parse(text, &Rfc3339).with_context(|| format!("`--now {text}` is not RFC 3339"))?
        }
        None => OffsetDateTime::now_utc(),
    };
    let facts =
        scan::scan(&args.repo, &view::protocol_files(&effective.policy), &view::required_checks(&effective.policy))?;
    let context = eval::Context { answers: &answers, waivers: &waivers, now, phase: args.phase.as_deref() };
    let evaluation = eval::evaluate(&effective, &facts, &context)?;
    Ok((effective, evaluation))
}

fn gate(args: &EvalInputs, json: bool) -> anyhow::Result<Outcome> {
    let (_, evaluation) = evaluate(args)?;
    let decision = eval::gate(&evaluation, args.phase.as_deref());
    if json {
        println!("{}", serde_json::to_string_pretty(&decision)?);
    } else {
        println!(
            "{} ({} phase, {} mode, {})",
            if decision.allowed { "allowed" } else { "blocked" },
            decision.phase,
            evaluation.mode.as_str(),
            decision.effective_hash
        );
        print_findings(&decision.blocking);
    }
    Ok(if decision.allowed { Outcome::Success } else { Outcome::Findings })
}

fn eval(args: &EvalArgs, json: bool) -> anyhow::Result<Outcome> {
    let (effective, evaluation) = evaluate(&args.inputs)?;
    let outcome = if evaluation.blocked { Outcome::Findings } else { Outcome::Success };
    if let Some(target) = &args.sarif {
        let log = serde_json::to_string_pretty(&polis_packs::sarif::log(&evaluation, &effective))?;
        if target.as_os_str() == "-" {
            println!("{log}");
            return Ok(outcome);
        }
        std::fs::write(target, format!("{log}\n"))
            .with_context(|| format!("cannot write the SARIF log to `{}`", target.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        print_summary(&evaluation);
    }
    Ok(outcome)
}

fn print_summary(evaluation: &Evaluation) {
    let blocking = evaluation.findings.iter().filter(|f| f.severity == polis_packs::Severity::Block).count();
    println!(
        "{} findings, {blocking} blocking ({} mode, {})",
        evaluation.findings.len(),
        evaluation.mode.as_str(),
        evaluation.effective_hash
    );
    print_findings(&evaluation.findings);
}

fn print_findings(findings: &[polis_packs::Finding]) {
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let location = match (&f.path, f.line) {
                (Some(path), Some(line)) => format!("{path}:{line}"),
                (Some(path), None) => path.clone(),
                (None, _) => String::new(),
            };
            vec![format!("{:?}", f.severity).to_lowercase(), f.code.clone(), location, f.message.clone()]
        })
        .collect();
    if !rows.is_empty() {
        let headers =
            [("severity", Align::Left), ("code", Align::Left), ("where", Align::Left), ("message", Align::Left)];
        print!("{}", render(&headers, &rows, 200));
    }
}

fn read_answers(file: Option<&Path>) -> anyhow::Result<Answers> {
    match file {
        Some(file) => {
            let value = local::read_document(file, &format!("answers file `{}`", file.display()))?;
            Ok(serde_json::from_value(value).with_context(|| format!("answers file `{}`", file.display()))?)
        }
        None => Ok(Answers::new()),
    }
}

fn guidance(args: &GuidanceArgs, json: bool) -> anyhow::Result<Outcome> {
    let p = &args.policy;
    let effective = resolve(&Inputs {
        pack: &p.pack,
        catalog: &p.catalog,
        overrides: p.overrides.as_deref(),
        ops: p.ops.as_deref(),
        mode: p.mode.as_deref(),
        repo: p.repo.as_deref(),
    })?;
    let answers = read_answers(args.answers.as_deref())?;
    polis_packs::eval::check_answers(&effective.policy, &answers)?;
    let guidance = polis_packs::guidance::guidance(&effective, &answers);
    if json {
        println!("{}", serde_json::to_string_pretty(&guidance)?);
    } else {
        print!("{}", guidance.to_markdown());
    }
    Ok(Outcome::Success)
}
