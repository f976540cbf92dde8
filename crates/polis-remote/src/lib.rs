//! The remote tier of polis: a policy behind an HTTP endpoint.
//!
//! A remote plugin's manifest names a URL as its `runtime.entry`
//! (`http://` or `https://`). Each call is one `POST` of a JSON body, under
//! a timeout: a contract's `run` goes to that URL, any other method to
//! `{URL}/{method}` (a behaviour plugin's `evaluate-condition`). The
//! response body is the method's result:
//!
//! ```text
//! POST /decide HTTP/1.1
//! Content-Type: application/json
//! X-Polis-Plugin-Id: research.remote.v1
//!
//! {"input": {...}, "params": {...}}               ← plus "context" with `context:read`
//!
//! 200 OK            {"moves": [...], "summary": {...}}   the output
//! 422 Unprocessable {"error": "why"}                      the policy rejects its input
//! anything else                                            a failure
//! ```
//!
//! **Only what the permissions allow.** The body is built by the contract's
//! side (`polis_core::EndpointPolicy` for one-method contracts): the input
//! and the params, which every policy needs, and the run context only for a
//! plugin granted `context:read`; a domain adds other fields only for their
//! permissions. A remote plugin cannot call back on the host. No header
//! names the run, the system or the host.
//!
//! **Limits.** The whole exchange (connect, send, wait, read) has one
//! deadline, the tighter of [`RemoteConfig::timeout`] and the manifest's
//! `limits.timeout_ms`; the response body is capped at
//! [`RemoteConfig::max_reply_bytes`] (or the manifest's tighter
//! `limits.max_output_bytes`); redirects are refused (a plugin
//! cannot bounce the input to another host) and no proxy from the
//! environment is used.
//!
//! **Only public addresses.** A URL whose host is, or resolves to, a
//! loopback, private, link-local or otherwise non-public address is refused
//! unless the host is in [`RemoteConfig::allow_private_hosts`]: an IP
//! literal at load, a name at each call, in the resolver the connection
//! uses ([`network`]). `https://` endpoints are verified against the
//! webpki root certificates; there is no switch to turn that off. A cancelled run returns at once; its request is
//! abandoned on a background thread that ends at the deadline.
//!
//! Whatever the endpoint answers is only a candidate: the runtime's guard
//! validates it against the contract's schema and semantics exactly as it
//! validates a built-in's output.

use std::sync::mpsc;
use std::time::Duration;

pub mod network;

use polis_core::manifest::{Manifest, TierKind};
use polis_core::permission::{Grants, PermissionCatalog};
use polis_core::policy::{CallEnv, PluginEndpoint, PolicyError};

/// How the remote tier calls endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The longest one call may take, end to end. By default 5 s; a
    /// manifest's `limits.timeout_ms` can only tighten it.
    pub timeout: Duration,
    /// The largest response body accepted. By default 16 MiB.
    pub max_reply_bytes: u64,
    /// URL hosts (names or IP literals, as the URL spells them) that may
    /// be, or resolve to, loopback or private addresses: an operator's own
    /// model server on `127.0.0.1` or `models.internal`. By default none.
    pub allow_private_hosts: Vec<String>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig { timeout: Duration::from_secs(5), max_reply_bytes: 16 << 20, allow_private_hosts: Vec::new() }
    }
}

impl RemoteConfig {
    /// The default settings with `hosts` allowlisted.
    pub fn allowing(hosts: &[&str]) -> Self {
        RemoteConfig { allow_private_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(), ..RemoteConfig::default() }
    }
}

/// Why a remote plugin could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The manifest is not for the remote tier.
    #[error("plugin `{0}` is not a remote plugin")]
    NotRemote(String),
    /// The entry is not an `http://` or `https://` URL.
    #[error("plugin `{plugin_id}`: `runtime.entry` must be an http:// or https:// URL, got `{entry}`")]
    BadUrl {
        /// The plugin.
        plugin_id: String,
        /// What the manifest gave.
        entry: String,
    },
    /// The URL's host is an IP literal in a non-public range, and not
    /// allowlisted.
    #[error(
        "plugin `{plugin_id}`: `runtime.entry` host {host} is a {range} address; remote plugins reach only public \
         addresses unless the host is allowlisted (remote_allow_hosts)"
    )]
    PrivateAddress {
        /// The plugin.
        plugin_id: String,
        /// The URL's host.
        host: String,
        /// Which range it is in.
        range: &'static str,
    },
}

/// A plugin served over HTTP.
pub struct RemotePlugin {
    manifest: Manifest,
    grants: Grants,
    url: String,
    timeout: Duration,
    max_reply_bytes: u64,
    agent: ureq::Agent,
}

impl std::fmt::Debug for RemotePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePlugin")
            .field("plugin_id", &self.manifest.plugin_id)
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RemotePlugin {
    /// A remote plugin for `manifest`, whose `runtime.entry` is the URL,
    /// with the permissions of `catalog`. Nothing connects until the first
    /// call, so an endpoint that is down fails its calls, not its load.
    pub fn new(manifest: Manifest, config: &RemoteConfig, catalog: &PermissionCatalog) -> Result<Self, RemoteError> {
        let runtime = manifest.runtime.as_ref().filter(|r| r.tier == TierKind::Remote);
        let Some(runtime) = runtime else {
            return Err(RemoteError::NotRemote(manifest.plugin_id.clone()));
        };
        let url = runtime.entry.as_deref().unwrap_or_default().trim().trim_end_matches('/').to_owned();
        let scheme_ok = ["http://", "https://"].iter().any(|s| url.len() > s.len() && url.starts_with(s));
        if !scheme_ok || url.chars().any(char::is_whitespace) {
            return Err(RemoteError::BadUrl { plugin_id: manifest.plugin_id.clone(), entry: url });
        }
        let Some(host) = network::host_of(&url) else {
            return Err(RemoteError::BadUrl { plugin_id: manifest.plugin_id.clone(), entry: url });
        };
        let resolver = network::GuardedResolver::new(&config.allow_private_hosts);
        let literal = host.parse::<std::net::IpAddr>().ok();
        if let Some(range) = literal.and_then(network::private_range).filter(|_| !resolver.allows(&host)) {
            return Err(RemoteError::PrivateAddress { plugin_id: manifest.plugin_id.clone(), host, range });
        }
        let timeout = manifest
            .limits
            .as_ref()
            .and_then(|l| l.timeout_ms)
            .map_or(config.timeout, |ms| config.timeout.min(Duration::from_millis(ms)));
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("polis/", env!("CARGO_PKG_VERSION")))
            .build();
        let connector = ureq::unversioned::transport::DefaultConnector::default();
        let agent = ureq::Agent::with_parts(agent_config, connector, resolver);
        let max_reply_bytes = manifest
            .limits
            .as_ref()
            .and_then(|l| l.max_output_bytes)
            .map_or(config.max_reply_bytes, |cap| config.max_reply_bytes.min(cap));
        let grants = Grants::resolve(&manifest.permissions, catalog);
        Ok(RemotePlugin { manifest, grants, url, timeout, max_reply_bytes, agent })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL a method is posted to: the endpoint for `run`, else
    /// `{endpoint}/{method}`.
    pub fn method_url(&self, method: &str) -> String {
        if method == "run" { self.url.clone() } else { format!("{}/{method}", self.url) }
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl PluginEndpoint for RemotePlugin {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn grants(&self) -> &Grants {
        &self.grants
    }

    fn call(&self, method: &str, request: &[u8], env: &CallEnv<'_>) -> Result<Vec<u8>, PolicyError> {
        if env.control.is_cancelled() {
            return Err(PolicyError::Cancelled);
        }
        // The blocking client cannot be interrupted, so the exchange runs
        // on its own thread and this one waits for it or the cancel.
        let (sender, receiver) = mpsc::sync_channel(1);
        let (agent, url, plugin_id) = (self.agent.clone(), self.method_url(method), self.manifest.plugin_id.clone());
        let (cap, timeout, body) = (self.max_reply_bytes, self.timeout, request.to_vec());
        std::thread::spawn(move || {
            let _ = sender.send(post(&agent, &url, &plugin_id, body, cap, timeout));
        });
        loop {
            match receiver.recv_timeout(Duration::from_millis(10)) {
                Ok(result) => {
                    let (status, reply) = result?;
                    return match status {
                        200 => Ok(reply),
                        404 if method != "run" => Err(PolicyError::NoSuchMethod(method.to_owned())),
                        422 => Err(PolicyError::Rejected(error_text(&reply))),
                        other => {
                            Err(PolicyError::Failed(format!("endpoint answered HTTP {other}: {}", error_text(&reply))))
                        }
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) if env.control.is_cancelled() => {
                    return Err(PolicyError::Cancelled);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PolicyError::Failed("the request thread ended without a reply".to_owned()));
                }
            }
        }
    }
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    plugin_id: &str,
    body: Vec<u8>,
    cap: u64,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), PolicyError> {
    let response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("X-Polis-Plugin-Id", plugin_id)
        .send(&body[..]);
    let mut response = response.map_err(|e| transport_error(e, timeout, cap))?;
    let status = response.status().as_u16();
    let reply =
        response.body_mut().with_config().limit(cap).read_to_vec().map_err(|e| transport_error(e, timeout, cap))?;
    Ok((status, reply))
}

fn transport_error(error: ureq::Error, timeout: Duration, cap: u64) -> PolicyError {
    match error {
        ureq::Error::Timeout(_) => PolicyError::LimitExceeded {
            limit: "timeout",
            detail: format!("no complete reply within {} ms", timeout.as_millis()),
        },
        ureq::Error::BodyExceedsLimit(_) => PolicyError::LimitExceeded {
            limit: "output_bytes",
            detail: format!("reply exceeds the cap of {cap} bytes"),
        },
        ureq::Error::Io(e) if e.to_string().starts_with(network::REFUSED) => PolicyError::Failed(e.to_string()),
        other => PolicyError::Failed(format!("request failed: {other}")),
    }
}

/// The `error` member of a JSON error body, else the body's first 200
/// characters.
fn error_text(reply: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: serde_json::Value,
    }
    match serde_json::from_slice::<ErrorBody>(reply) {
        Ok(ErrorBody { error: serde_json::Value::String(text) }) => text,
        Ok(ErrorBody { error }) => error.to_string(),
        Err(_) => String::from_utf8_lossy(reply).chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_for_their_message() {
        assert_eq!(error_text(br#"{"error":"no stations"}"#), "no stations");
        assert_eq!(error_text(br#"{"error":{"code":3}}"#), r#"{"code":3}"#);
        assert_eq!(error_text(b"plain text"), "plain text");
        assert_eq!(error_text(&[b'x'; 500]).len(), 200);
    }
}
