//! Helpers of the end-to-end tests of nftables grants and SPA doors (`e2e_grants.rs`,
//! `e2e_spa.rs`), on top of `crate::common` (the daemon, its configuration, the knock clients):
//! `nft` inside the lab and the grant sets it shows, real TCP services behind the protected
//! ports and sessions through them, connection probes, random SPA keys. Every `nft` command
//! runs inside the lab.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netns_testkit::{Lab, Ns, wait_until};

use crate::common::{T, s};

/// How long a connection attempt to a closed (dropped) port is given.
pub const NO: Duration = Duration::from_millis(700);
/// How long a connection attempt to an open port is given.
pub const YES: Duration = Duration::from_secs(3);
/// The reference SPA client (Debian package `fwknop-client`).
pub const FWKNOP: &str = "/usr/bin/fwknop";

/// `nft ARGS` in the server namespace; its stdout.
pub fn nft(lab: &Lab, args: &[&str]) -> String {
    let mut v = vec!["nft"];
    v.extend_from_slice(args);
    lab.server()
        .run_stdout(&v)
        .unwrap_or_else(|e| panic!("nft in the lab: {e}"))
}

/// Loads an nft script in the server namespace.
pub fn nft_script(lab: &Lab, script: &str) {
    let path = lab.write_file("user.nft", script).unwrap();
    lab.server()
        .run(&["nft", "-f", s(&path)])
        .unwrap_or_else(|e| panic!("loading the user ruleset: {e}"));
}

/// The tables in the server namespace (`family name` each).
pub fn tables(lab: &Lab) -> Vec<String> {
    nft(lab, &["list", "tables"])
        .lines()
        .filter_map(|l| l.strip_prefix("table "))
        .map(str::to_string)
        .collect()
}

/// One element of a grant set as `nft -j list set` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Elem {
    /// `198.18.1.2 . tcp . 2222`
    pub key: String,
    /// Seconds.
    pub timeout: Option<f64>,
    /// Seconds left.
    pub expires: Option<f64>,
}

/// The elements of set `set` of table `family table`, from `nft -j list set` in the lab.
pub fn set_elements(lab: &Lab, family: &str, table: &str, set: &str) -> Vec<Elem> {
    let text = nft(lab, &["-j", "list", "set", family, table, set]);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("nft -j output {text:?}: {e}"));
    let mut out = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let Some(elems) = item["set"]["elem"].as_array() else {
            continue;
        };
        for e in elems {
            let (val, timeout, expires) = match e.get("elem") {
                Some(inner) => (
                    &inner["val"],
                    inner["timeout"].as_f64(),
                    inner["expires"].as_f64(),
                ),
                None => (e, None, None),
            };
            let key = match val.get("concat").and_then(|c| c.as_array()) {
                Some(parts) => parts
                    .iter()
                    .map(|p| match p {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" . "),
                None => val.to_string(),
            };
            out.push(Elem {
                key,
                timeout,
                expires,
            });
        }
    }
    out
}

/// Elements of knockd's `grants4` (or `grants6`) in its own table `inet knockd`.
pub fn grants(lab: &Lab, v6: bool) -> Vec<Elem> {
    set_elements(
        lab,
        "inet",
        "knockd",
        if v6 { "grants6" } else { "grants4" },
    )
}

/// Whether client `k` can open a new TCP connection to the server's `port`.
pub fn can(lab: &Lab, k: usize, v6: bool, port: u16) -> bool {
    lab.client(k)
        .tcp_connect_ok(lab.server_ip(k, v6), port, YES)
}

/// Whether a new TCP connection from client `k` to `port` fails (dropped or refused).
pub fn cannot(lab: &Lab, k: usize, v6: bool, port: u16) -> bool {
    !lab.client(k).tcp_connect_ok(lab.server_ip(k, v6), port, NO)
}

/// A TCP echo service on `[::]:port` in a namespace; its connections stay open until the
/// peer closes them or the service is dropped.
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start(ns: &Ns, port: u16) -> Echo {
        let l = ns
            .run_in(move || TcpListener::bind(("::", port)))
            .unwrap()
            .unwrap_or_else(|e| panic!("bind [::]:{port} in {}: {e}", ns.name()));
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let st2 = st.clone();
                        conns.push(std::thread::spawn(move || {
                            let _ = c.set_nonblocking(false);
                            let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
                            let mut buf = [0u8; 512];
                            while !st2.load(Ordering::Relaxed) {
                                match c.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        if c.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::WouldBlock
                                                | std::io::ErrorKind::TimedOut
                                                | std::io::ErrorKind::Interrupted
                                        ) => {}
                                    Err(_) => return,
                                }
                            }
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Echo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP connection from client `k` to the server's `port` (the socket lives in the client
/// namespace).
pub fn session(lab: &Lab, k: usize, v6: bool, port: u16) -> TcpStream {
    let sa = SocketAddr::new(lab.server_ip(k, v6), port);
    let s = lab
        .client(k)
        .run_in(|| TcpStream::connect_timeout(&sa, YES))
        .unwrap()
        .unwrap_or_else(|e| panic!("client {k}: connect to {sa}: {e}"));
    s.set_read_timeout(Some(T)).unwrap();
    s
}

/// Sends `msg` over an echo session and reads it back.
pub fn roundtrip(s: &mut TcpStream, msg: &str) -> std::io::Result<()> {
    s.write_all(msg.as_bytes())?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got)?;
    if got != msg.as_bytes() {
        return Err(std::io::Error::other(format!(
            "echo returned {:?} for {msg:?}",
            String::from_utf8_lossy(&got)
        )));
    }
    Ok(())
}

/// Polls until `cond` holds or `limit` passes; returns how long it took (None on timeout).
pub fn time_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    wait_until(limit, &mut cond).then(|| t0.elapsed())
}

/// Fills `b` from the kernel's randomness.
fn urandom(b: &mut [u8]) {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(b))
        .expect("/dev/urandom");
}

/// `N` random bytes from the kernel (for SPA salts and nonces in tests).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    urandom(&mut b);
    b
}

/// A fresh random base64 key of `n` bytes.
pub fn random_key_b64(n: usize) -> String {
    use base64::Engine as _;
    let mut b = vec![0u8; n];
    urandom(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The UDP sockets of namespace `ns` (`ss -H -u -l -n -a`), one a line.
pub fn udp_listeners(ns: &Ns) -> String {
    ns.run_stdout(&["ss", "-H", "-u", "-l", "-n", "-a"])
        .unwrap_or_else(|e| panic!("ss in {}: {e}", ns.name()))
}
