//! Harness for the end-to-end tests of nftables grants and SPA doors (`e2e_grants.rs`,
//! `e2e_spa.rs`): our `knockd` in the server namespace of a [`Lab`] (2 clients), listening on
//! `cli1,cli2`, with its LogFile, Status_Socket and SPA_Replay_File inside the lab directory;
//! real TCP services behind the protected ports; real clients (Debian `knock`, our `knock`,
//! Debian `fwknop`) run inside the client namespaces. Every `nft` command runs inside the lab.
//!
//! Every configuration gets a one-port UDP door `[sync]` on [`SYNC_PORT`] with no `open`:
//! knocking it after the packets under test and waiting for its `OPEN SESAME` proves the
//! daemon has processed everything client `k` sent before (one link, one capture, in order),
//! so "nothing happened" can be asserted without sleeping.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netns_testkit::{ChildGuard, Lab, Ns, bin, count_lines, wait_for_file_line, wait_until};

/// Patience for anything that should happen "at once".
pub const T: Duration = Duration::from_secs(5);
/// How long a connection attempt to a closed (dropped) port is given.
pub const NO: Duration = Duration::from_millis(700);
/// How long a connection attempt to an open port is given.
pub const YES: Duration = Duration::from_secs(3);
/// The `[sync]` door's port (UDP).
pub const SYNC_PORT: u16 = 5999;
/// The reference knock client (Debian package `knockd`).
pub const DEBIAN_KNOCK: &str = "/usr/bin/knock";
/// The reference SPA client (Debian package `fwknop-client`).
pub const FWKNOP: &str = "/usr/bin/fwknop";
/// Both server interfaces of a 2-client lab.
pub const IFACES: &str = "cli1,cli2";

pub fn s(p: &Path) -> &str {
    p.to_str().expect("lab paths are UTF-8")
}

/// `[options]`: LogFile, Status_Socket and SPA_Replay_File in the lab directory, then `extra`
/// (more option lines).
pub fn options(lab: &Lab, extra: &str) -> String {
    format!(
        "[options]\n LogFile = {}\n Status_Socket = {}\n SPA_Replay_File = {}\n{extra}\n",
        lab.path("knockd.log").display(),
        lab.path("knockd.sock").display(),
        lab.path("spa-replay.cache").display(),
    )
}

/// A whole configuration: [`options`] with `extra`, `doors`, then `[sync]`.
pub fn config(lab: &Lab, extra: &str, doors: &str) -> String {
    format!(
        "{}{doors}\n[sync]\n sequence = {SYNC_PORT}:udp\n",
        options(lab, extra)
    )
}

/// Our knockd running in the lab's server namespace.
pub struct Knockd {
    pub child: ChildGuard,
    pub log: PathBuf,
    pub conf: PathBuf,
    pub socket: PathBuf,
}

impl Knockd {
    /// Writes `knockd.conf` and starts knockd on [`IFACES`]; waits until it is listening.
    pub fn start(lab: &Lab, conf_text: &str) -> Knockd {
        let conf = lab.write_file("knockd.conf", conf_text).unwrap();
        Knockd::start_conf(lab, &conf, &[])
    }

    /// Starts knockd with an existing configuration, `prefix` (e.g. `setpriv ...`) before the
    /// program; waits until it is listening (the nftables ruleset is loaded before that).
    pub fn start_conf(lab: &Lab, conf: &Path, prefix: &[&str]) -> Knockd {
        let starts = count_lines(&lab.path("knockd.log"), "starting up, listening on ");
        let mut d = Knockd::spawn(lab, conf, prefix);
        d.wait_count("starting up, listening on ", starts + 1);
        d
    }

    /// Starts knockd without waiting for anything.
    pub fn spawn(lab: &Lab, conf: &Path, prefix: &[&str]) -> Knockd {
        let knockd = bin("knockd").unwrap();
        let mut args: Vec<&str> = prefix.to_vec();
        args.extend([s(&knockd), "-i", IFACES, "-c", s(conf)]);
        let child = lab.server().spawn(&args).unwrap();
        Knockd {
            child,
            log: lab.path("knockd.log"),
            conf: conf.to_path_buf(),
            socket: lab.path("knockd.sock"),
        }
    }

    /// Whether it runs, its stdout+stderr and its log file, for failure messages.
    pub fn state(&mut self) -> String {
        let st = match self.child.try_wait() {
            Ok(Some(st)) => format!("exited: {st}"),
            Ok(None) => "still running".to_string(),
            Err(e) => e.to_string(),
        };
        format!(
            "knockd {st}\n--- knockd stdout+stderr ---\n{}--- log file ---\n{}",
            self.child.log(),
            self.log_text()
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        match wait_for_file_line(&self.log, needle, T) {
            Ok(l) => l,
            Err(_) => panic!(
                "no log line containing {needle:?} within {T:?}\n{}",
                self.state()
            ),
        }
    }

    /// Lines of the log containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        count_lines(&self.log, needle)
    }

    /// Waits until at least `n` log lines contain `needle`; returns the last such line.
    pub fn wait_count(&mut self, needle: &str, n: usize) -> String {
        if !wait_until(T, || self.count(needle) >= n) {
            panic!(
                "fewer than {n} log lines containing {needle:?} after {T:?} (got {})\n{}",
                self.count(needle),
                self.state()
            );
        }
        self.log_text()
            .lines()
            .rfind(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    }

    /// Waits for the next log line containing `needle` (counting from now).
    pub fn expect_next(&mut self, needle: &str, before: usize) -> String {
        self.wait_count(needle, before + 1)
    }

    /// Knocks `[sync]` from client `k` and waits until it is logged: everything client `k`
    /// sent before has been processed.
    pub fn sync(&mut self, lab: &Lab, k: usize, v6: bool) {
        let needle = format!("{}: sync: OPEN SESAME", lab.client_ip(k, v6));
        let n = self.count(&needle);
        knock_debian(
            lab,
            k,
            &[
                &lab.server_ip(k, v6).to_string(),
                &format!("{SYNC_PORT}:udp"),
            ],
        );
        self.wait_count(&needle, n + 1);
    }

    /// Panics (with the daemon's output) unless it still runs.
    pub fn assert_running(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            panic!("knockd is not running\n{}", self.state());
        }
    }

    /// `knockd --status -c CONF` run in the server namespace (the real command line).
    pub fn status_text(&mut self, lab: &Lab) -> String {
        let knockd = bin("knockd").unwrap();
        let out = lab
            .server()
            .output(&[s(&knockd), "--status", "-c", s(&self.conf)])
            .unwrap();
        if !out.status.success() {
            panic!("knockd --status failed: {out:?}\n{}", self.state());
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The status socket's JSON answer.
    pub fn status_json(&self) -> serde_json::Value {
        let mut c = std::os::unix::net::UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket.display()));
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(b"json\n").unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status JSON {text:?}: {e}"))
    }

    /// The grants `--status` reports: (address, `proto/port`, seconds left).
    pub fn status_grants(&self) -> Vec<(String, String, u64)> {
        let v = self.status_json();
        v["grants"]
            .as_array()
            .unwrap_or_else(|| panic!("no grants array in {v}"))
            .iter()
            .map(|g| {
                (
                    g["address"].as_str().unwrap().to_string(),
                    g["port"].as_str().unwrap().to_string(),
                    g["seconds_left"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Sends `sig` and waits for the exit.
    pub fn stop_with(&mut self, sig: i32) -> ExitStatus {
        self.child.signal(sig).unwrap();
        match self.child.wait_timeout(T).unwrap() {
            Some(st) => st,
            None => panic!(
                "knockd still running {T:?} after signal {sig}\n{}",
                self.state()
            ),
        }
    }
}

fn run_in_client(lab: &Lab, k: usize, args: &[&str]) -> Output {
    let out = lab.client(k).output(args).unwrap();
    if !out.status.success() {
        panic!("{args:?} in client {k} failed: {out:?}");
    }
    out
}

/// The Debian `knock` in client `k`'s namespace.
pub fn knock_debian(lab: &Lab, k: usize, args: &[&str]) {
    let mut v = vec![DEBIAN_KNOCK];
    v.extend_from_slice(args);
    run_in_client(lab, k, &v);
}

/// Our `knock` in client `k`'s namespace.
pub fn knock_ours(lab: &Lab, k: usize, args: &[&str]) {
    let knock = bin("knock").unwrap();
    let mut v = vec![s(&knock)];
    v.extend_from_slice(args);
    run_in_client(lab, k, &v);
}

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

/// `n` random bytes from the kernel (for SPA salts and nonces in tests).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b
}

/// A fresh random base64 key of `n` bytes.
pub fn random_key_b64(n: usize) -> String {
    use base64::Engine as _;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Whether `addr` is the address of a socket listening on UDP `port` per `ss -uln` in `ns`.
pub fn udp_listeners(ns: &Ns) -> String {
    ns.run_stdout(&["ss", "-H", "-u", "-l", "-n", "-a"])
        .unwrap_or_else(|e| panic!("ss in {}: {e}", ns.name()))
}

/// The source of a TCP peer, canonical.
pub fn canon(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}
