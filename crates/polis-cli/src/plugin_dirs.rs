//! `--plugin-dir`: the allowlisted plugin roots a command loads, shared by
//! every command that runs policies.

use std::path::PathBuf;

use clap::Args;
use polis_core::contract::Contract;
use polis_core::registry::Registry;

/// Plugin roots to load besides the built-ins.
#[derive(Debug, Clone, Default, Args)]
pub struct PluginDirs {
    /// Load plugins from every subdirectory of DIR holding a
    /// `manifest.json` (repeatable). Their policy versions become
    /// available beside the built-ins of the contract their manifest
    /// names; a plugin that fails to load is disabled with its reason
    /// (`polis plugins list --plugin-dir DIR`).
    #[arg(long = "plugin-dir", value_name = "DIR", env = "POLIS_PLUGIN_DIR", value_delimiter = ',')]
    pub plugin_dirs: Vec<PathBuf>,
}

impl PluginDirs {
    /// Fails when a root is not a directory.
    pub fn check(&self) -> anyhow::Result<()> {
        for dir in &self.plugin_dirs {
            if !dir.is_dir() {
                anyhow::bail!("`--plugin-dir {}` is not a directory", dir.display());
            }
        }
        Ok(())
    }

    /// `builtins` plus every plugin of contract `C` under the roots. Failed
    /// loads are kept in the registry as disabled and, with `warn`,
    /// reported on stderr. Process workers start on their first call.
    pub fn registry<C: Contract>(&self, builtins: Registry<C>, warn: bool) -> anyhow::Result<Registry<C>> {
        self.load(builtins, warn, false)
    }

    /// As [`PluginDirs::registry`], and with `probe` every process worker
    /// starts now, so a plugin whose handshake fails is disabled with its
    /// reason.
    pub fn load<C: Contract>(&self, builtins: Registry<C>, warn: bool, probe: bool) -> anyhow::Result<Registry<C>> {
        if self.plugin_dirs.is_empty() {
            return Ok(builtins);
        }
        self.check()?;
        let mut tiers = polis_plugins::Tiers::new()?;
        tiers.start_processes = probe;
        let roots: Vec<&std::path::Path> = self.plugin_dirs.iter().map(PathBuf::as_path).collect();
        let (registry, reports) = polis_plugins::load_roots(builtins, &roots, &tiers);
        for report in &reports {
            if let (true, Err(reason)) = (warn, &report.outcome) {
                eprintln!("warning: plugin in `{}` disabled: {reason}", report.source.display());
            }
        }
        Ok(registry)
    }

    /// The rebalancing registry: its built-ins plus the roots' plugins.
    pub fn rebalance(&self, warn: bool) -> anyhow::Result<Registry<polis_rebalance::Rebalance>> {
        self.registry(polis_rebalance::builtins::registry(), warn)
    }
}
