//! Which addresses a remote plugin may reach.
//!
//! A plugin's manifest names its URL, and a manifest is untrusted input: a
//! URL such as `http://metadata.internal/` or a name whose DNS answer is
//! `127.0.0.1` would let a plugin author aim polis's requests (carrying
//! run input) at the host's own services or its private network. So every
//! address a name resolves to must be globally routable, unless the URL's
//! host is on the operator's allowlist ([`crate::RemoteConfig::allow_private_hosts`]).
//!
//! The check sits in the resolver the HTTP client connects through, so the
//! addresses checked are the addresses connected to: a name cannot pass the
//! check and then resolve again to somewhere else (DNS rebinding).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// The kind of non-public range an address is in, or `None` for a globally
/// routable address.
pub fn private_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_range(v4),
            None => v6_range(v6),
        },
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified (0.0.0.0/8)",
        (127, ..) => "loopback (127.0.0.0/8)",
        (10, ..) => "private (10.0.0.0/8)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (100, 64..=127, _) => "shared address space (100.64.0.0/10)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (224..=239, ..) => "multicast (224.0.0.0/4)",
        (240..=255, ..) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback (::1)")
    } else if ip.is_unspecified() {
        Some("unspecified (::)")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique local (fc00::/7)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local (fe80::/10)")
    } else if first & 0xff00 == 0xff00 {
        Some("multicast (ff00::/8)")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation (2001:db8::/32)")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 embeds an IPv4 address; judge that one.
        let [.., c, d] = ip.segments();
        v4_range(Ipv4Addr::new((c >> 8) as u8, c as u8, (d >> 8) as u8, d as u8))
    } else {
        None
    }
}

/// A URL's host as the allowlist names it: lower case, IPv6 literals
/// without their brackets.
pub fn host_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?;
    Some(host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
}

/// The system resolver, refusing any answer in a non-public range for a
/// host not on the allowlist.
#[derive(Debug)]
pub struct GuardedResolver {
    allowed: Vec<String>,
    inner: DefaultResolver,
}

impl GuardedResolver {
    /// A resolver that lets `allowed` hosts (as [`host_of`] spells them)
    /// resolve anywhere.
    pub fn new(allowed: &[String]) -> Self {
        let allowed = allowed.iter().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase());
        GuardedResolver { allowed: allowed.collect(), inner: DefaultResolver::default() }
    }

    /// Whether `host` may resolve to private addresses.
    pub fn allows(&self, host: &str) -> bool {
        self.allowed.iter().any(|h| h == host)
    }
}

/// The marker the refusal's IO error carries, so the tier can tell it from
/// a connection failure.
pub(crate) const REFUSED: &str = "polis refused the address";

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addresses = self.inner.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if self.allows(&host) {
            return Ok(addresses);
        }
        // One private answer refuses the name: connecting to the public
        // ones only would leave which one is used to the order of DNS
        // answers.
        if let Some((addr, range)) = addresses.iter().find_map(|a| private_range(a.ip()).map(|r| (a.ip(), r))) {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{REFUSED}: `{host}` resolves to {addr}, a {range} address; remote plugins reach only public \
                     addresses unless the host is allowlisted (remote_allow_hosts)"
                ),
            )));
        }
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(private_range(ip.parse().unwrap()).is_some(), "{ip} should not be public");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in
            ["1.1.1.1", "8.8.8.8", "172.32.0.1", "172.15.255.255", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]
        {
            assert_eq!(private_range(ip.parse().unwrap()), None, "{ip} is public");
        }
    }

    #[test]
    fn hosts_are_read_from_urls_as_the_allowlist_spells_them() {
        assert_eq!(host_of("http://127.0.0.1:8080/decide").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("https://Models.Example.org/x").as_deref(), Some("models.example.org"));
        assert_eq!(host_of("http://[::1]:9/").as_deref(), Some("::1"));
        assert!(GuardedResolver::new(&["[::1]".to_owned()]).allows("::1"));
    }
}
