//! The local addresses of the watched interfaces, followed as they change.
//!
//! Only packets addressed to the host count as knocks. Addresses come and go (DHCP, PPP,
//! SLAAC, an admin's `ip addr add`), so [`LocalAddrs`] re-reads them with `getifaddrs` every
//! second from a tokio task, and on demand when a packet arrives for an address it does not know
//! (rate-limited, so a flood of such packets cannot make it spin). The packet path reads an
//! immutable snapshot behind a read lock.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use crate::capture::Interfaces;

/// A set of addresses (small: a sorted, deduplicated vector).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrSet {
    addrs: Vec<IpAddr>,
}

impl AddrSet {
    /// The addresses among `entries` (interface name, address) that belong to `ifaces`.
    pub fn from_entries<'a, I>(entries: I, ifaces: &Interfaces) -> AddrSet
    where
        I: IntoIterator<Item = (&'a str, IpAddr)>,
    {
        let mut addrs: Vec<IpAddr> = entries
            .into_iter()
            .filter(|(name, _)| ifaces.covers(name))
            .map(|(_, a)| a)
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        AddrSet { addrs }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addrs.binary_search(&ip).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addrs.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

/// Allows an action at most once per `min_gap`. Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub struct RateLimit {
    min_gap: Duration,
    last: Option<Instant>,
}

impl RateLimit {
    pub fn new(min_gap: Duration) -> RateLimit {
        RateLimit {
            min_gap,
            last: None,
        }
    }

    /// Whether the action may run at `now`; if so, records it.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.min_gap => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// Error of reading the system's addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read interface addresses (getifaddrs): {0}")]
pub struct AddrError(#[from] pub nix::Error);

/// Reads the current addresses of `ifaces` with `getifaddrs`.
pub fn read_system(ifaces: &Interfaces) -> Result<AddrSet, AddrError> {
    let list = nix::ifaddrs::getifaddrs()?;
    let entries: Vec<(String, IpAddr)> = list
        .filter_map(|ifa| {
            let addr = ifa.address?;
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                return None;
            };
            Some((ifa.interface_name, ip))
        })
        .collect();
    Ok(AddrSet::from_entries(
        entries.iter().map(|(n, a)| (n.as_str(), *a)),
        ifaces,
    ))
}

/// Minimum time between two on-demand refreshes.
pub const ON_DEMAND_GAP: Duration = Duration::from_millis(100);

/// The followed local addresses of the watched interfaces.
#[derive(Debug)]
pub struct LocalAddrs {
    ifaces: Interfaces,
    current: RwLock<Arc<AddrSet>>,
    on_demand: Mutex<RateLimit>,
    refreshes: AtomicU64,
    errors: AtomicU64,
}

impl LocalAddrs {
    /// Reads the addresses of `ifaces` now.
    pub fn new(ifaces: Interfaces) -> Result<Arc<LocalAddrs>, AddrError> {
        let set = read_system(&ifaces)?;
        Ok(Arc::new(LocalAddrs::with_set(ifaces, set)))
    }

    /// A `LocalAddrs` starting from a given set (tests; `refresh` reads the system).
    pub fn with_set(ifaces: Interfaces, set: AddrSet) -> LocalAddrs {
        LocalAddrs {
            ifaces,
            current: RwLock::new(Arc::new(set)),
            on_demand: Mutex::new(RateLimit::new(ON_DEMAND_GAP)),
            refreshes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// The current addresses.
    pub fn snapshot(&self) -> Arc<AddrSet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether `ip` is one of the current addresses (no refresh).
    pub fn is_local(&self, ip: IpAddr) -> bool {
        match self.current.read() {
            Ok(g) => g.contains(ip),
            Err(poisoned) => poisoned.into_inner().contains(ip),
        }
    }

    /// Like [`is_local`](Self::is_local), but an unknown address triggers an immediate refresh
    /// first (at most once per [`ON_DEMAND_GAP`]), so a knock to an address added a moment ago
    /// counts.
    pub fn is_local_or_refresh(&self, ip: IpAddr) -> bool {
        if self.is_local(ip) {
            return true;
        }
        let allowed = match self.on_demand.lock() {
            Ok(mut rl) => rl.allow(Instant::now()),
            Err(poisoned) => poisoned.into_inner().allow(Instant::now()),
        };
        if allowed && self.refresh().is_ok() {
            return self.is_local(ip);
        }
        false
    }

    /// Re-reads the addresses; returns whether they changed. On error the old set stays.
    pub fn refresh(&self) -> Result<bool, AddrError> {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let set = match read_system(&self.ifaces) {
            Ok(s) => s,
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        Ok(self.replace(set))
    }

    /// Installs a new set; returns whether it differs from the old one.
    pub fn replace(&self, set: AddrSet) -> bool {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if **g == set {
            return false;
        }
        *g = Arc::new(set);
        true
    }

    /// Number of refreshes so far (periodic and on demand), and how many failed.
    pub fn refresh_counts(&self) -> (u64, u64) {
        (
            self.refreshes.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    /// Spawns a tokio task refreshing every `every` (the task ends when the last `Arc` goes).
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<LocalAddrs> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    // Errors are counted; the previous addresses stay in force.
                    Some(me) => {
                        let _ = me.refresh();
                    }
                    None => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn entries() -> Vec<(&'static str, IpAddr)> {
        vec![
            ("lo", ip("127.0.0.1")),
            ("lo", ip("::1")),
            ("eth0", ip("198.18.1.1")),
            ("eth0:1", ip("198.18.1.9")),
            ("eth0", ip("2001:2:0:1::1")),
            ("eth0", ip("fe80::1")),
            ("eth1", ip("198.18.2.1")),
            ("eth0", ip("198.18.1.1")),
        ]
    }

    #[test]
    fn shared_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<LocalAddrs>();
    }

    #[test]
    fn set_selects_interfaces() {
        let all = AddrSet::from_entries(entries(), &Interfaces::Any);
        assert_eq!(all.len(), 7);
        assert!(all.contains(ip("127.0.0.1")) && all.contains(ip("198.18.2.1")));
        let eth0 = AddrSet::from_entries(entries(), &Interfaces::parse("eth0").unwrap());
        let got: Vec<IpAddr> = eth0.iter().collect();
        assert_eq!(
            got,
            vec![
                ip("198.18.1.1"),
                ip("198.18.1.9"),
                ip("2001:2:0:1::1"),
                ip("fe80::1")
            ]
        );
        assert!(!eth0.contains(ip("198.18.2.1")) && !eth0.contains(ip("::1")));
        let none = AddrSet::from_entries(entries(), &Interfaces::parse("wg0").unwrap());
        assert!(none.is_empty());
    }

    #[test]
    fn rate_limit() {
        let t0 = Instant::now();
        let mut rl = RateLimit::new(Duration::from_millis(100));
        assert!(rl.allow(t0));
        assert!(!rl.allow(t0));
        assert!(!rl.allow(t0 + Duration::from_millis(99)));
        assert!(rl.allow(t0 + Duration::from_millis(100)));
        assert!(!rl.allow(t0 + Duration::from_millis(150)));
        // A clock that goes backwards never panics, never allows early.
        assert!(!rl.allow(t0));
    }

    #[test]
    fn replace_and_lookup() {
        let la = LocalAddrs::with_set(
            Interfaces::Any,
            AddrSet::from_entries(entries(), &Interfaces::Any),
        );
        assert!(la.is_local(ip("198.18.1.1")));
        assert!(!la.is_local(ip("198.18.3.1")));
        let mut e = entries();
        e.push(("eth3", ip("198.18.3.1")));
        assert!(la.replace(AddrSet::from_entries(e.clone(), &Interfaces::Any)));
        assert!(!la.replace(AddrSet::from_entries(e, &Interfaces::Any)));
        assert!(la.is_local(ip("198.18.3.1")));
        assert_eq!(la.snapshot().len(), 8);
    }

    #[test]
    fn system_loopback_is_local() {
        let la = LocalAddrs::new(Interfaces::parse("lo").unwrap()).unwrap();
        assert!(la.is_local(ip("127.0.0.1")));
        // An unknown address triggers one refresh, then the rate limit holds.
        assert!(!la.is_local_or_refresh(ip("198.18.77.77")));
        assert!(!la.is_local_or_refresh(ip("198.18.77.78")));
        assert_eq!(la.refresh_counts(), (1, 0));
    }

    #[tokio::test]
    async fn refresher_task_runs_and_stops() {
        let la = LocalAddrs::new(Interfaces::Any).unwrap();
        let task = la.spawn_refresher(Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(la.refresh_counts().0 >= 2, "{:?}", la.refresh_counts());
        drop(la);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("refresher ends when LocalAddrs is dropped")
            .unwrap();
    }
}
