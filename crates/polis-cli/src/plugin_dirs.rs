//! `--plugin-dir`: the allowlisted plugin roots a command loads, shared by
//! every command that runs policies.

use std::path::PathBuf;

use anyhow::Context;
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
    /// How the plugins are loaded and reached.
    #[command(flatten)]
    pub tiers: TierArgs,
}

/// The tier settings an operator gives: what plugins may reach and which
/// signatures they must carry.
#[derive(Debug, Clone, Default, Args)]
pub struct TierArgs {
    /// Let remote plugins whose URL host is HOST (a name or an IP literal,
    /// as the URL spells it) reach loopback or private addresses
    /// (repeatable). By default a remote plugin may reach only public
    /// addresses, so a manifest cannot aim polis at the host's own
    /// services or its network.
    #[arg(long = "remote-allow-host", value_name = "HOST", env = "POLIS_REMOTE_ALLOW_HOSTS", value_delimiter = ',')]
    pub remote_allow_hosts: Vec<String>,
    /// Load only plugins signed by the minisign public key in FILE
    /// (repeatable; `polis plugin keygen` writes one, `polis plugin sign`
    /// signs with its secret half). An unsigned plugin, one signed by
    /// another key, or one whose files differ from what was signed is
    /// disabled, naming why. By default signatures are not required.
    #[arg(long = "trusted-key", value_name = "FILE", env = "POLIS_TRUSTED_KEYS", value_delimiter = ',')]
    pub trusted_keys: Vec<PathBuf>,
}

impl TierArgs {
    /// The tiers these settings describe.
    pub fn tiers(&self) -> anyhow::Result<polis_plugins::Tiers> {
        let mut tiers = polis_plugins::Tiers::new()?;
        tiers.remote.allow_private_hosts.clone_from(&self.remote_allow_hosts);
        if !self.trusted_keys.is_empty() {
            let keys = self.trusted_keys.iter().map(|path| polis_plugins::signing::TrustedKey::read(path));
            tiers.trusted_keys = Some(keys.collect::<Result<_, _>>().context("`--trusted-key`")?);
        }
        Ok(tiers)
    }
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
        let mut tiers = self.tiers.tiers()?;
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
