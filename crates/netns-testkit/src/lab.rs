//! A lab: one server namespace and N client namespaces, each client on its own veth link.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::ns::{self, Ns, ip};

/// Interface name of the client end of every link (inside each client namespace).
pub const CLIENT_IF: &str = "eth0";

/// Most clients a lab can have (the client number is the third IPv4 octet).
pub const MAX_CLIENTS: usize = 254;

static COUNTER: AtomicU32 = AtomicU32::new(0);
static STALE: Once = Once::new();

fn check_k(k: usize) {
    assert!(
        (1..=MAX_CLIENTS).contains(&k),
        "client number {k} out of range 1..={MAX_CLIENTS}"
    );
}

/// Server-side interface name of client `k`'s link: `cli<k>`.
pub fn server_if(k: usize) -> String {
    check_k(k);
    format!("cli{k}")
}

/// `198.18.k.1`: the server's address on client `k`'s link (prefix /24).
pub fn server_v4(k: usize) -> Ipv4Addr {
    check_k(k);
    Ipv4Addr::new(198, 18, k as u8, 1)
}

/// `198.18.k.2`: client `k`'s address (prefix /24).
pub fn client_v4(k: usize) -> Ipv4Addr {
    check_k(k);
    Ipv4Addr::new(198, 18, k as u8, 2)
}

/// `2001:2:0:k::1`: the server's IPv6 address on client `k`'s link (prefix /64). The fourth group
/// is `k` written in hex, as `Ipv6Addr` formats it (`k = 10` gives `2001:2:0:a::1`).
pub fn server_v6(k: usize) -> Ipv6Addr {
    check_k(k);
    Ipv6Addr::new(0x2001, 2, 0, k as u16, 0, 0, 0, 1)
}

/// `2001:2:0:k::2`: client `k`'s IPv6 address (prefix /64).
pub fn client_v6(k: usize) -> Ipv6Addr {
    check_k(k);
    Ipv6Addr::new(0x2001, 2, 0, k as u16, 0, 0, 0, 2)
}

/// A fresh set of namespaces:
///
/// - a server namespace ([`Lab::server`]),
/// - `n` client namespaces ([`Lab::client`]`(k)`, `k` = 1..=n),
/// - for each client `k` a veth pair created directly inside the two namespaces (nothing ever
///   exists in the host namespace): `cli<k>` in the server with `198.18.k.1/24` and
///   `2001:2:0:k::1/64`, `eth0` in client `k` with `198.18.k.2/24` and `2001:2:0:k::2/64`
///   (IPv6 added with `nodad`, usable at once),
/// - in each client default routes (v4 and v6) via the server, so knocks to addresses that are
///   not the server's own still go out on `eth0` and reach `cli<k>` (the server does not forward),
/// - loopback up everywhere,
/// - a temporary directory ([`Lab::dir`]) for configs and logs; kept (and its path printed) if
///   the lab is dropped while panicking, removed otherwise.
///
/// Namespace names are `ntk<pid>-<counter>-<random>-srv` / `-c<k>`: unique per process and call,
/// so labs can be built in parallel threads and processes. Every lab reuses the same addresses,
/// which is fine since labs are isolated from each other.
///
/// Dropping the lab kills every process left in its namespaces and deletes them.
#[derive(Debug)]
pub struct Lab {
    // Field order = drop order: clients, then server, then the directory check in Drop::drop.
    clients: Vec<Ns>,
    server: Ns,
    id: String,
    dir: PathBuf,
}

fn short_random() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u16
}

impl Lab {
    /// Builds a lab with `clients` client namespaces (0..=254). Needs root and `ip` (iproute2).
    pub fn new(clients: usize) -> Result<Lab> {
        if clients > MAX_CLIENTS {
            return Err(Error::new(format!(
                "a lab has at most {MAX_CLIENTS} clients, {clients} asked"
            )));
        }
        STALE.call_once(|| match ns::cleanup_stale() {
            Ok(v) if !v.is_empty() => {
                eprintln!("netns-testkit: deleted stale namespaces {v:?}")
            }
            Ok(_) => {}
            Err(e) => eprintln!("netns-testkit: cleaning stale namespaces: {e}"),
        });
        let id = format!(
            "{}{}-{}-{:04x}",
            ns::NS_PREFIX,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            short_random()
        );
        let dir = std::env::temp_dir().join(format!("netns-testkit-{id}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let server = match Ns::create(&format!("{id}-srv"), &dir) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut lab = Lab {
            clients: Vec::with_capacity(clients),
            server,
            id,
            dir,
        };
        for k in 1..=clients {
            // On error `lab` is dropped and deletes what exists so far.
            lab.add_client(k)?;
        }
        Ok(lab)
    }

    fn add_client(&mut self, k: usize) -> Result<()> {
        let c = Ns::create(&format!("{}-c{k}", self.id), &self.dir)?;
        let s = self.server.name().to_string();
        let cn = c.name().to_string();
        self.clients.push(c);
        let sif = server_if(k);
        ip(&[
            "link", "add", &sif, "netns", &s, "type", "veth", "peer", "name", CLIENT_IF, "netns",
            &cn,
        ])?;
        let sv4 = format!("{}/24", server_v4(k));
        let cv4 = format!("{}/24", client_v4(k));
        let sv6 = format!("{}/64", server_v6(k));
        let cv6 = format!("{}/64", client_v6(k));
        ip(&["-n", &s, "addr", "add", &sv4, "dev", &sif])?;
        ip(&["-n", &s, "addr", "add", &sv6, "dev", &sif, "nodad"])?;
        ip(&["-n", &cn, "addr", "add", &cv4, "dev", CLIENT_IF])?;
        ip(&["-n", &cn, "addr", "add", &cv6, "dev", CLIENT_IF, "nodad"])?;
        ip(&["-n", &s, "link", "set", &sif, "up"])?;
        ip(&["-n", &cn, "link", "set", CLIENT_IF, "up"])?;
        ip(&[
            "-n",
            &cn,
            "route",
            "add",
            "default",
            "via",
            &server_v4(k).to_string(),
        ])?;
        ip(&[
            "-n",
            &cn,
            "-6",
            "route",
            "add",
            "default",
            "via",
            &server_v6(k).to_string(),
        ])?;
        Ok(())
    }

    /// The server namespace.
    pub fn server(&self) -> &Ns {
        &self.server
    }

    /// Client namespace `k` (1-based). Panics if there is no client `k`.
    pub fn client(&self, k: usize) -> &Ns {
        assert!(
            (1..=self.clients.len()).contains(&k),
            "lab {} has clients 1..={}, not {k}",
            self.id,
            self.clients.len()
        );
        &self.clients[k - 1]
    }

    /// All client namespaces, client 1 first.
    pub fn clients(&self) -> &[Ns] {
        &self.clients
    }

    /// The lab's unique id (prefix of its namespace names).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lab's temporary directory (configs, logs of spawned programs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path inside [`Lab::dir`].
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Writes `content` to `file` inside [`Lab::dir`] and returns its path.
    pub fn write_file(&self, file: &str, content: &str) -> Result<PathBuf> {
        let p = self.path(file);
        std::fs::write(&p, content)
            .map_err(|e| Error::io(format!("cannot write {}", p.display()), e))?;
        Ok(p)
    }

    /// Server-side interface of client `k`'s link (`cli<k>`).
    pub fn server_if(&self, k: usize) -> String {
        server_if(k)
    }

    /// Client-side interface name ([`CLIENT_IF`], `eth0`).
    pub fn client_if(&self) -> &'static str {
        CLIENT_IF
    }

    /// `198.18.k.1`.
    pub fn server_v4(&self, k: usize) -> Ipv4Addr {
        server_v4(k)
    }

    /// `198.18.k.2`.
    pub fn client_v4(&self, k: usize) -> Ipv4Addr {
        client_v4(k)
    }

    /// `2001:2:0:k::1`.
    pub fn server_v6(&self, k: usize) -> Ipv6Addr {
        server_v6(k)
    }

    /// `2001:2:0:k::2`.
    pub fn client_v6(&self, k: usize) -> Ipv6Addr {
        client_v6(k)
    }

    /// Server address on link `k`, IPv6 if `v6`.
    pub fn server_ip(&self, k: usize, v6: bool) -> IpAddr {
        if v6 {
            server_v6(k).into()
        } else {
            server_v4(k).into()
        }
    }

    /// Client `k`'s address, IPv6 if `v6`.
    pub fn client_ip(&self, k: usize, v6: bool) -> IpAddr {
        if v6 {
            client_v6(k).into()
        } else {
            client_v4(k).into()
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Kill everything first in all namespaces, so nothing talks across a half-deleted lab;
        // the Ns fields then delete the namespaces.
        for ns in self.clients.iter().chain(std::iter::once(&self.server)) {
            if let Err(e) = ns.kill_all() {
                eprintln!("netns-testkit: {e}");
            }
        }
        if std::thread::panicking() || std::env::var_os("KNOCK_KEEP_LAB_DIR").is_some() {
            eprintln!(
                "netns-testkit: lab {} files kept in {}",
                self.id,
                self.dir.display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("netns-testkit: cannot remove {}: {e}", self.dir.display());
        }
    }
}
