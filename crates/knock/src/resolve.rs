//! Host resolution, done once per run, and the choice of target addresses.
//!
//! [`resolve`] asks the system resolver (getaddrinfo on Unix, the same order the classic client
//! sees: RFC 6724, so usually IPv6 first when both ends have it). [`select_targets`] is pure and
//! picks the addresses to knock on according to `-4`/`-6`/`--both` and `--bind`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::cli::{BindOptions, Family};

/// Why no target address could be found.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve host \"{host}\": {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot resolve host \"{0}\": no address")]
    NoAddress(String),
    #[error("host \"{host}\" has no IPv{family} address (it has {has})")]
    NoFamily {
        host: String,
        family: u8,
        has: String,
    },
    #[error("host \"{host}\" has no address of the family of --bind {bind} (it has {has})")]
    NoBindFamily {
        host: String,
        bind: String,
        has: String,
    },
}

/// Resolves `host` (a name or an address literal, IPv6 optionally in brackets, with an optional
/// `%scope`) to its addresses, in resolver order, without duplicates. Ports are 0.
pub fn resolve(host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
    let name = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let found = (name, 0u16)
        .to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            host: host.to_string(),
            source,
        })?;
    let addrs = dedup_in_order(found);
    if addrs.is_empty() {
        return Err(ResolveError::NoAddress(host.to_string()));
    }
    Ok(addrs)
}

/// Keeps the first occurrence of every address.
fn dedup_in_order(found: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    addrs
}

/// Picks the addresses to knock on from the resolved ones, in the order they will be hit.
///
/// - [`Family::First`]: the first address (classic behaviour), restricted to the families of
///   the `--bind` addresses when there are some;
/// - [`Family::V4`] / [`Family::V6`]: the first address of that family;
/// - [`Family::Both`]: the first address of each family the host has, in resolver order.
pub fn select_targets(
    host: &str,
    addrs: &[SocketAddr],
    family: Family,
    bind: &BindOptions,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let first_v4 = addrs.iter().copied().find(SocketAddr::is_ipv4);
    let first_v6 = addrs.iter().copied().find(SocketAddr::is_ipv6);
    let has = || describe(addrs);
    let missing = |family| ResolveError::NoFamily {
        host: host.to_string(),
        family,
        has: has(),
    };
    match family {
        Family::V4 => first_v4.map(|a| vec![a]).ok_or_else(|| missing(4)),
        Family::V6 => first_v6.map(|a| vec![a]).ok_or_else(|| missing(6)),
        Family::Both => {
            // cli guarantees that with --both, --bind has both families or none.
            let mut out: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| Some(*a) == first_v4 || Some(*a) == first_v6)
                .collect();
            out.dedup();
            if out.is_empty() {
                Err(ResolveError::NoAddress(host.to_string()))
            } else {
                Ok(out)
            }
        }
        Family::First => {
            if !bind.has_source() {
                return addrs
                    .first()
                    .map(|a| vec![*a])
                    .ok_or_else(|| ResolveError::NoAddress(host.to_string()));
            }
            addrs
                .iter()
                .find(|a| match a.ip() {
                    IpAddr::V4(_) => bind.v4.is_some(),
                    IpAddr::V6(_) => bind.v6.is_some(),
                })
                .map(|a| vec![*a])
                .ok_or_else(|| ResolveError::NoBindFamily {
                    host: host.to_string(),
                    bind: [bind.v4.map(IpAddr::from), bind.v6.map(IpAddr::from)]
                        .into_iter()
                        .flatten()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    has: has(),
                })
        }
    }
}

/// `198.18.1.2, 2001:2::2` (or `no address`), for error messages.
fn describe(addrs: &[SocketAddr]) -> String {
    if addrs.is_empty() {
        return "no address".into();
    }
    addrs
        .iter()
        .map(|a| a.ip().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 0)
    }

    fn ips(v: &[SocketAddr]) -> Vec<String> {
        v.iter().map(|a| a.ip().to_string()).collect()
    }

    fn dual() -> Vec<SocketAddr> {
        vec![
            sa("2001:2:0:1::2"),
            sa("198.18.1.2"),
            sa("2001:2:0:1::3"),
            sa("198.18.1.3"),
        ]
    }

    const NO_BIND: BindOptions = BindOptions {
        v4: None,
        v6: None,
        interface: None,
    };

    #[test]
    fn literals_resolve_without_dns() {
        assert_eq!(ips(&resolve("198.18.1.2").unwrap()), ["198.18.1.2"]);
        assert_eq!(ips(&resolve("2001:2::2").unwrap()), ["2001:2::2"]);
        assert_eq!(ips(&resolve("[2001:2::2]").unwrap()), ["2001:2::2"]);
    }

    // An unresolvable name is tested in tests/wire.rs, against a DNS responder inside a
    // namespace: a unit test here would query the host's real resolver.

    #[test]
    fn first_is_the_resolver_s_first() {
        let t = select_targets("h", &dual(), Family::First, &NO_BIND).unwrap();
        assert_eq!(ips(&t), ["2001:2:0:1::2"]);
        let v4first = [sa("198.18.1.2"), sa("2001:2::2")];
        let t = select_targets("h", &v4first, Family::First, &NO_BIND).unwrap();
        assert_eq!(ips(&t), ["198.18.1.2"]);
    }

    #[test]
    fn forced_families() {
        let t = select_targets("h", &dual(), Family::V4, &NO_BIND).unwrap();
        assert_eq!(ips(&t), ["198.18.1.2"]);
        let t = select_targets("h", &dual(), Family::V6, &NO_BIND).unwrap();
        assert_eq!(ips(&t), ["2001:2:0:1::2"]);
        let e = select_targets("h", &[sa("198.18.1.2")], Family::V6, &NO_BIND).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host \"h\" has no IPv6 address (it has 198.18.1.2)"
        );
        let e = select_targets("h", &[sa("2001:2::2")], Family::V4, &NO_BIND).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host \"h\" has no IPv4 address (it has 2001:2::2)"
        );
    }

    #[test]
    fn both_families_first_of_each_in_resolver_order() {
        let t = select_targets("h", &dual(), Family::Both, &NO_BIND).unwrap();
        assert_eq!(ips(&t), ["2001:2:0:1::2", "198.18.1.2"]);
        let v4first = [sa("198.18.1.2"), sa("198.18.1.3"), sa("2001:2::2")];
        let t = select_targets("h", &v4first, Family::Both, &NO_BIND).unwrap();
        assert_eq!(ips(&t), ["198.18.1.2", "2001:2::2"]);
        // A single-family host is knocked on that family only.
        let t = select_targets("h", &[sa("198.18.1.2")], Family::Both, &NO_BIND).unwrap();
        assert_eq!(ips(&t), ["198.18.1.2"]);
        let t = select_targets("h", &[sa("2001:2::2")], Family::Both, &NO_BIND).unwrap();
        assert_eq!(ips(&t), ["2001:2::2"]);
    }

    #[test]
    fn bind_restricts_the_default_choice() {
        let bind4 = BindOptions {
            v4: Some("198.18.1.1".parse().unwrap()),
            ..BindOptions::default()
        };
        let t = select_targets("h", &dual(), Family::First, &bind4).unwrap();
        assert_eq!(ips(&t), ["198.18.1.2"]);
        let e = select_targets("h", &[sa("2001:2::2")], Family::First, &bind4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host \"h\" has no address of the family of --bind 198.18.1.1 (it has 2001:2::2)"
        );
        let bind6 = BindOptions {
            v6: Some("2001:2::1".parse().unwrap()),
            ..BindOptions::default()
        };
        let v4first = [sa("198.18.1.2"), sa("2001:2::2")];
        let t = select_targets("h", &v4first, Family::First, &bind6).unwrap();
        assert_eq!(ips(&t), ["2001:2::2"]);
    }

    #[test]
    fn duplicates_removed_order_kept() {
        let v = dedup_in_order([
            sa("198.18.1.2"),
            sa("2001:2::2"),
            sa("198.18.1.2"),
            sa("2001:2::3"),
        ]);
        assert_eq!(ips(&v), ["198.18.1.2", "2001:2::2", "2001:2::3"]);
    }
}
