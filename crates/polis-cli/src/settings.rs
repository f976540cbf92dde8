//! Settings: a `polis.toml` (in the working directory, or `--config FILE`)
//! whose keys are the `POLIS_*` environment variables without the prefix,
//! in lower case. Flags win over the environment, the environment over the
//! file, the file over the defaults.
//!
//! The file is applied to the command-line definition before it parses: the
//! file's value becomes the default of every argument that reads its
//! variable, so clap still takes a flag first, then the environment, then
//! that default. A key no command reads is an error naming it and the file,
//! never ignored.
//! `docs/settings.md` lists every key with its flag and default, and a test
//! keeps that list complete.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The file read when no `--config` is given and it exists.
pub const DEFAULT_FILE: &str = "polis.toml";

/// Largest settings file read.
const MAX_BYTES: u64 = 1 << 20;

/// Every `POLIS_*` variable some argument of `command` reads, sorted.
pub fn known_variables(command: &clap::Command) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    collect(command, &mut names);
    names
}

fn collect(command: &clap::Command, names: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env().and_then(|e| e.to_str()) {
            names.insert(env.to_owned());
        }
    }
    for sub in command.get_subcommands() {
        collect(sub, names);
    }
}

/// The settings file for these arguments: `--config FILE` (or
/// `--config=FILE`) when given, else `polis.toml` here when it exists.
pub fn file_for(args: &[String]) -> anyhow::Result<Option<PathBuf>> {
    let mut given = None;
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            given = Some(PathBuf::from(iter.next().context("`--config` needs a file")?));
        } else if let Some(path) = arg.strip_prefix("--config=") {
            given = Some(PathBuf::from(path));
        }
    }
    match given {
        Some(path) if !path.is_file() => bail!("settings file `{}` does not exist", path.display()),
        Some(path) => Ok(Some(path)),
        None => Ok(Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file())),
    }
}

/// The `(variable, value)` pairs a settings file gives, checked against
/// the variables commands read.
pub fn read(path: &Path, known: &BTreeSet<String>) -> anyhow::Result<Vec<(String, String)>> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut text = String::new();
    file.take(MAX_BYTES + 1).read_to_string(&mut text).with_context(|| format!("cannot read `{}`", path.display()))?;
    if text.len() as u64 > MAX_BYTES {
        bail!("settings file `{}` is larger than {MAX_BYTES} bytes", path.display());
    }
    let table: toml::Table = text.parse().with_context(|| format!("`{}` is not valid TOML", path.display()))?;
    let mut pairs = Vec::new();
    for (key, value) in table {
        let variable = format!("POLIS_{}", key.to_ascii_uppercase());
        if !known.contains(&variable) {
            let keys: Vec<String> = known.iter().map(|v| v.trim_start_matches("POLIS_").to_ascii_lowercase()).collect();
            bail!("`{}`: unknown setting `{key}`; known: {}", path.display(), keys.join(", "));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    other => bail!("`{}`: `{key}` holds a {} in its list", path.display(), other.type_str()),
                })
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(","),
            other => bail!(
                "`{}`: `{key}` must be a string, number, boolean or list, not a {}",
                path.display(),
                other.type_str()
            ),
        };
        pairs.push((variable, text));
    }
    Ok(pairs)
}

/// The command-line definition with the settings file of `args` applied:
/// each value the file gives becomes the default of the arguments that read
/// its variable.
pub fn apply(args: &[String], command: clap::Command) -> anyhow::Result<clap::Command> {
    let Some(path) = file_for(args)? else { return Ok(command) };
    let values = read(&path, &known_variables(&command))?;
    Ok(with_defaults(command, &values))
}

fn with_defaults(mut command: clap::Command, values: &[(String, String)]) -> clap::Command {
    let ids: Vec<(clap::Id, &str)> = command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?;
            let (_, value) = values.iter().find(|(variable, _)| variable == env)?;
            Some((arg.get_id().clone(), value.as_str()))
        })
        .collect();
    for (id, value) in ids {
        // Defaults must live as long as the command: the file is read once
        // per process, so its few values are leaked rather than copied.
        let value: &'static str = Box::leak(value.to_owned().into_boxed_str());
        command = command.mut_arg(id, |arg| arg.default_value(value));
    }
    let names: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_owned()).collect();
    for name in names {
        command = command.mut_subcommand(name, |sub| with_defaults(sub, values));
    }
    command
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn args(extra: &[&str]) -> Vec<String> {
        ["polis"].iter().chain(extra).map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_setting_a_command_reads_is_documented() {
        let docs = include_str!("../../../docs/settings.md");
        for variable in known_variables(&crate::Cli::command()) {
            let key = variable.trim_start_matches("POLIS_").to_ascii_lowercase();
            assert!(docs.contains(&format!("| `{key}` | `{variable}` |")), "docs/settings.md lacks `{key}`");
        }
    }

    #[test]
    fn a_file_value_becomes_the_default_and_flags_still_win() {
        let settings = file("database_url = \"sqlite://from-file.db\"\nworkers = 7\nplugin_dir = [\"a\", \"b\"]\n");
        let path = settings.path().to_str().unwrap();
        let argv = args(&["--config", path, "worker"]);
        let command = apply(&argv, crate::Cli::command()).unwrap();
        let matches = command.try_get_matches_from(&argv).unwrap();
        let (_, worker) = matches.subcommand().unwrap();
        assert_eq!(worker.get_one::<String>("database_url").map(String::as_str), Some("sqlite://from-file.db"));
        assert_eq!(worker.get_one::<usize>("workers"), Some(&7));
        let dirs: Vec<&PathBuf> = worker.get_many::<PathBuf>("plugin_dirs").unwrap().collect();
        assert_eq!(dirs, [&PathBuf::from("a"), &PathBuf::from("b")]);
        let argv = args(&["--config", path, "worker", "--workers", "3"]);
        let matches = apply(&argv, crate::Cli::command()).unwrap().try_get_matches_from(&argv).unwrap();
        assert_eq!(matches.subcommand().unwrap().1.get_one::<usize>("workers"), Some(&3), "the flag wins");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it_and_the_file() {
        let settings = file("databse_url = \"x\"\n");
        let path = settings.path().to_str().unwrap();
        let error = apply(&args(&["--config", path, "worker"]), crate::Cli::command()).unwrap_err().to_string();
        assert!(error.contains("unknown setting `databse_url`") && error.contains(path), "{error}");
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let error = file_for(&args(&["--config", "/nonexistent/polis.toml", "serve"])).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/polis.toml"), "{error}");
    }
}
