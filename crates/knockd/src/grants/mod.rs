//! Native nftables grants that the kernel expires by itself.
//!
//! A grant is an element `address . protocol . port` with its own timeout in a set of the
//! table knockd owns (`inet knockd` by default); the kernel deletes it when the timeout runs
//! out, whether or not knockd is still alive. A base chain drops traffic to the protected
//! ports (every door's `open =`) unless it is established/related, from loopback, granted, or
//! inside a scheduled door's window. See `docs/nftables.md` for the ruleset and the figures.
//!
//! - [`NftBackend::open`] checks that nftables can be used (typed [`NftError`]s an admin
//!   understands), **adopts** an existing table (grants of a previous run are kept) and starts
//!   a worker thread that owns the netlink socket.
//! - [`NftBackend::apply`] loads the [`GrantRuleset`] (built from the configuration by the pure
//!   [`GrantRuleset::from_config`]) with `nft -f`, idempotently and without touching grants:
//!   call it on start, on SIGHUP and at [`GrantRuleset::reapply_at`].
//! - [`GrantHandle::grant`] / [`GrantHandle::grant_async`] add or refresh a grant over netlink
//!   (one batch, a fraction of a millisecond); the async variant never blocks the caller.
//! - [`NftBackend::list`] lists the live grants with their remaining time (`--status`).
//! - [`NftBackend::teardown`] removes everything if `Nft_Cleanup` says so; dropping the
//!   backend leaves the kernel state alone (as a crash would).
//!
//! The backend works in the network namespace of the thread that calls [`NftBackend::open`].

mod error;
mod netlink;
mod nftcmd;
mod ruleset;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use knock_core::config::{Config, NftChainRef};
use knock_core::proto::ProtoPort;

pub use error::NftError;
pub use nftcmd::default_nft_path;
pub use ruleset::{
    BASE_PRIORITY, DEFAULT_SET_SIZE, DEFAULT_TABLE, GrantRuleset, JUMP_COMMENT, Names,
    ScheduleClock, ScheduledRule, Target, TimeSlot, chain_rules, element_key, find_jump_handles,
    kernel_minuteswest, kernel_slots, needs_grants, normalize_sources, parse_element_key,
    render_apply, render_teardown,
};

use netlink::{BatchError, ElemOp, NlSocket, family_number};
use nftcmd::Nft;

/// Longest grant accepted.
pub const MAX_GRANT: Duration = Duration::from_secs(knock_core::config::MAX_GRANT_SECS);

/// Most grant requests waiting for the worker; more are refused with [`NftError::Busy`].
pub const MAX_PENDING: usize = 4096;

/// How the backend is set up (from `[options]`, plus test knobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftConfig {
    pub target: Target,
    /// `Nft_Cleanup`: [`NftBackend::teardown`] removes the table (or knockd's objects in the
    /// user's table).
    pub cleanup: bool,
    /// The `nft` program used to load the ruleset.
    pub nft_path: PathBuf,
    /// Size limit of each grant set.
    pub set_size: u32,
}

impl NftConfig {
    /// The settings a configuration asks for.
    pub fn from_config(cfg: &Config) -> NftConfig {
        NftConfig {
            target: Target::from_config(cfg),
            cleanup: cfg.options.nft_cleanup,
            nft_path: default_nft_path(),
            set_size: DEFAULT_SET_SIZE,
        }
    }

    /// knockd's own table `inet NAME`.
    pub fn table(name: &str) -> NftConfig {
        NftConfig {
            target: Target::Table {
                name: name.to_string(),
            },
            cleanup: false,
            nft_path: default_nft_path(),
            set_size: DEFAULT_SET_SIZE,
        }
    }

    /// `Nft_Chain` mode.
    pub fn user_chain(chain: NftChainRef) -> NftConfig {
        NftConfig {
            target: Target::UserChain(chain),
            ..NftConfig::table(DEFAULT_TABLE)
        }
    }
}

/// A grant's timeout in whole milliseconds (the kernel's unit), rounded up and at least 1: a
/// timeout of 0 would make nftables keep the element forever.
fn grant_millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Table, chain and family names must be plain nft identifiers (they go into scripts).
fn check_names(target: &Target) -> Result<(), NftError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphabetic()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let (family, names): (&str, Vec<&str>) = match target {
        Target::Table { name } => ("inet", vec![name]),
        Target::UserChain(c) => (&c.family, vec![&c.table, &c.chain]),
    };
    if family_number(family).is_none() {
        return Err(NftError::BadName {
            what: "table family (inet, ip or ip6)",
            name: family.to_string(),
        });
    }
    match names.into_iter().find(|n| !ok(n)) {
        Some(bad) => Err(NftError::BadName {
            what: "table or chain name (letters, digits, _ and -)",
            name: bad.to_string(),
        }),
        None => Ok(()),
    }
}

/// A live grant, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantInfo {
    pub addr: IpAddr,
    pub proto_port: ProtoPort,
    /// The timeout it was given (last grant or refresh).
    pub timeout: Duration,
    /// Time left before the kernel removes it.
    pub remaining: Duration,
}

impl fmt::Display for GrantInfo {
    /// `198.18.1.2 tcp/22 27s left (of 30s)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}s left (of {}s)",
            self.addr,
            self.proto_port,
            self.remaining.as_secs(),
            self.timeout.as_secs()
        )
    }
}

/// A completed grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantDone {
    pub addr: IpAddr,
    pub proto_port: ProtoPort,
    pub timeout: Duration,
    /// The element already existed and its timeout was restarted.
    pub refreshed: bool,
    /// From the request to the kernel's acknowledgement of the committed element.
    pub latency: Duration,
}

enum Reply<T> {
    Sync(mpsc::SyncSender<T>),
    Async(tokio::sync::oneshot::Sender<T>),
}

impl<T> Reply<T> {
    fn send(self, v: T) {
        // The requester may have gone away (dropped its future): nothing to do then.
        match self {
            Reply::Sync(s) => {
                let _ = s.send(v);
            }
            Reply::Async(s) => {
                let _ = s.send(v);
            }
        }
    }
}

struct GrantRequest {
    addr: IpAddr,
    proto_port: ProtoPort,
    timeout: Duration,
    issued: Instant,
}

enum Job {
    Apply(Box<GrantRuleset>, Reply<Result<(), NftError>>),
    Grant(GrantRequest, Reply<Result<GrantDone, NftError>>),
    List(Reply<Result<Vec<GrantInfo>, NftError>>),
    Verify(Reply<Result<bool, NftError>>),
    Teardown(Reply<Result<(), NftError>>),
}

/// The worker's side: owns the netlink socket and runs `nft`.
struct Worker {
    sock: NlSocket,
    nft: Nft,
    target: Target,
    names: Names,
    family: u8,
    set_size: u32,
    /// The last ruleset applied, to re-create everything if someone removed it.
    last: Option<GrantRuleset>,
}

impl Worker {
    fn run(mut self, rx: mpsc::Receiver<Job>, pending: Arc<AtomicUsize>) {
        while let Ok(job) = rx.recv() {
            match job {
                Job::Grant(req, reply) => {
                    pending.fetch_sub(1, Ordering::Relaxed);
                    reply.send(self.grant_healing(&req));
                }
                Job::Verify(reply) => reply.send(self.verify()),
                Job::Apply(rs, reply) => reply.send(self.apply(&rs)),
                Job::List(reply) => reply.send(self.list().map(Option::unwrap_or_default)),
                Job::Teardown(reply) => {
                    reply.send(self.teardown());
                    return;
                }
            }
        }
    }

    /// A grant; if knockd's sets are gone (`nft flush ruleset` by a firewall reload), loads
    /// the last ruleset again and retries once.
    fn grant_healing(&mut self, req: &GrantRequest) -> Result<GrantDone, NftError> {
        match self.grant(req) {
            Err(NftError::NotApplied { .. }) if self.last.is_some() => {
                let rs = self.last.clone().unwrap_or_default();
                self.apply(&rs)?;
                self.grant(req)
            }
            other => other,
        }
    }

    /// Whether knockd's sets and chain are loaded (an admin's `nft flush ruleset` removes
    /// them).
    fn verify(&mut self) -> Result<bool, NftError> {
        let sets: Vec<String> = [
            self.names.set4.clone(),
            self.names.set6.clone(),
            Some(self.names.protected.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        for set in sets {
            if self
                .sock
                .dump(self.family, &self.names.table, &set)?
                .is_none()
            {
                return Ok(false);
            }
        }
        if let Target::UserChain(_) = &self.target {
            return Ok(!self.user_jumps()?.is_empty());
        }
        Ok(true)
    }

    fn table_desc(&self) -> String {
        format!("{} {}", self.names.family, self.names.table)
    }

    fn grant(&mut self, req: &GrantRequest) -> Result<GrantDone, NftError> {
        let addr = req.addr.to_canonical();
        let pp = req.proto_port;
        let set = self
            .names
            .set_for(addr)
            .ok_or_else(|| NftError::FamilyNotHandled {
                addr,
                proto_port: pp,
                family: self.names.family.clone(),
            })?
            .to_string();
        if req.timeout.is_zero() || req.timeout > MAX_GRANT {
            return Err(NftError::BadTimeout {
                addr,
                proto_port: pp,
                timeout_ms: req.timeout.as_millis(),
                max_days: MAX_GRANT.as_secs() / 86_400,
            });
        }
        // Round up to whole milliseconds (the kernel's unit); never 0 = "no timeout".
        let ms = grant_millis(req.timeout);
        let key = ruleset::element_key(addr, pp);
        let table = self.names.table.clone();
        let map_err = |w: &Worker, e: BatchError| -> NftError {
            match e {
                BatchError::Kernel { errno, .. } => match errno {
                    libc::ENOENT => NftError::NotApplied {
                        table: w.table_desc(),
                        set: set.clone(),
                    },
                    libc::ENFILE => NftError::SetFull {
                        addr,
                        proto_port: pp,
                        limit: w.set_size,
                    },
                    _ => NftError::from_errno(
                        &format!("add element {addr} . {pp} to {} {set}", w.table_desc()),
                        errno,
                    ),
                },
                BatchError::Io(io) => NftError::io(
                    format!("netlink add element to {} {set}", w.table_desc()),
                    &io,
                ),
            }
        };
        let add = ElemOp::AddExcl {
            key: &key,
            timeout_ms: ms,
        };
        let refresh = [
            ElemOp::Del { key: &key },
            ElemOp::Add {
                key: &key,
                timeout_ms: ms,
            },
        ];
        // Look first: a batch the kernel refuses (EEXIST) is aborted, which costs
        // milliseconds, while a lookup costs microseconds. A fresh element is one batch; an
        // existing one is deleted and re-added in one atomic batch, which restarts its timeout
        // on every kernel (a plain re-add only does so since Linux 6.12).
        let mut refreshed = self.sock.get(self.family, &table, &set, &key)?.is_some();
        let mut result = if refreshed {
            self.sock.batch(self.family, &table, &set, &refresh)
        } else {
            self.sock.batch(self.family, &table, &set, &[add])
        };
        // Races with another writer or with the expiry: retry the other way.
        for _ in 0..2 {
            match result {
                Err(BatchError::Kernel {
                    errno: libc::EEXIST,
                    ..
                }) if !refreshed => {
                    refreshed = true;
                    result = self.sock.batch(self.family, &table, &set, &refresh);
                }
                Err(BatchError::Kernel {
                    errno: libc::ENOENT,
                    op: 0,
                }) if refreshed => {
                    refreshed = false;
                    result = self.sock.batch(self.family, &table, &set, &[add]);
                }
                _ => break,
            }
        }
        result.map_err(|e| map_err(self, e))?;
        Ok(GrantDone {
            addr,
            proto_port: pp,
            timeout: Duration::from_millis(ms),
            refreshed,
            latency: req.issued.elapsed(),
        })
    }

    /// Live grants; `None` if knockd's sets do not exist.
    fn list(&mut self) -> Result<Option<Vec<GrantInfo>>, NftError> {
        let mut out = Vec::new();
        let mut found = false;
        let sets: Vec<String> = [&self.names.set4, &self.names.set6]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for set in sets {
            let Some(elems) = self.sock.dump(self.family, &self.names.table, &set)? else {
                continue;
            };
            found = true;
            for e in elems {
                let Some((addr, proto_port)) = ruleset::parse_element_key(&e.key) else {
                    continue;
                };
                out.push(GrantInfo {
                    addr,
                    proto_port,
                    timeout: Duration::from_millis(e.timeout_ms.unwrap_or(0)),
                    remaining: Duration::from_millis(e.expiration_ms.unwrap_or(0)),
                });
            }
        }
        out.sort_by_key(|g| (g.addr, g.proto_port));
        Ok(found.then_some(out))
    }

    /// Handles of knockd's jump rules in the user chain (`Nft_Chain` mode); checks that the
    /// chain exists.
    fn user_jumps(&self) -> Result<Vec<u64>, NftError> {
        let Target::UserChain(c) = &self.target else {
            return Ok(Vec::new());
        };
        match self.nft.run(
            &["-a", "list", "chain", &c.family, &c.table, &c.chain],
            None,
            &format!("listing chain {} {} {}", c.family, c.table, c.chain),
        ) {
            Ok(out) => Ok(ruleset::find_jump_handles(&out.stdout, &self.names.chain)),
            Err(NftError::NftFailed { stderr, .. }) if stderr.contains("No such file") => {
                Err(NftError::UserChainMissing {
                    family: c.family.clone(),
                    table: c.table.clone(),
                    chain: c.chain.clone(),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn apply(&mut self, rs: &GrantRuleset) -> Result<(), NftError> {
        let jumps = self.user_jumps()?;
        let script = ruleset::render_apply(&self.target, rs, self.set_size, &jumps);
        self.nft
            .run(&["-f", "-"], Some(&script), &self.target.to_string())
            .map_err(|e| self.explain_apply_error(e))?;
        self.last = Some(rs.clone());
        Ok(())
    }

    fn explain_apply_error(&self, e: NftError) -> NftError {
        match e {
            NftError::NftFailed { target, stderr }
                if stderr.contains("File exists") || stderr.contains("Device or resource busy") =>
            {
                NftError::NftFailed {
                    target,
                    stderr: format!(
                        "{stderr} (an object of the same name but another definition exists in \
                         {}; knockd's objects are listed in docs/nftables.md)",
                        self.table_desc()
                    ),
                }
            }
            other => other,
        }
    }

    fn teardown(&mut self) -> Result<(), NftError> {
        let jumps = self.user_jumps()?;
        let script = ruleset::render_teardown(&self.target, self.set_size, &jumps);
        self.nft
            .run(
                &["-f", "-"],
                Some(&script),
                &format!("removing knockd from {}", self.target),
            )
            .map(drop)
    }
}

/// A cheap, cloneable handle for granting from any thread or task (the packet path). It never
/// blocks in [`GrantHandle::grant_async`].
#[derive(Clone)]
pub struct GrantHandle {
    tx: mpsc::Sender<Job>,
    pending: Arc<AtomicUsize>,
}

impl fmt::Debug for GrantHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantHandle")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish()
    }
}

/// The completion of a [`GrantHandle::grant_async`]; await it for logging, or drop it (the
/// grant still happens).
#[derive(Debug)]
pub struct PendingGrant {
    rx: tokio::sync::oneshot::Receiver<Result<GrantDone, NftError>>,
}

impl Future for PendingGrant {
    type Output = Result<GrantDone, NftError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(NftError::WorkerGone)))
    }
}

/// The completion of an async backend request ([`NftBackend::apply_async`],
/// [`NftBackend::list_async`]).
#[derive(Debug)]
pub struct Completion<T> {
    rx: Option<tokio::sync::oneshot::Receiver<Result<T, NftError>>>,
}

impl<T> Future for Completion<T> {
    type Output = Result<T, NftError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.rx.as_mut() {
            None => Poll::Ready(Err(NftError::WorkerGone)),
            Some(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(NftError::WorkerGone))),
        }
    }
}

impl PendingGrant {
    /// Waits for the completion from synchronous code (not from inside an async task).
    pub fn wait(self) -> Result<GrantDone, NftError> {
        self.rx.blocking_recv().unwrap_or(Err(NftError::WorkerGone))
    }
}

impl GrantHandle {
    /// Queues a grant (or refresh) of `proto_port` to `addr` for `timeout`. Returns at once;
    /// refuses with [`NftError::Busy`] when [`MAX_PENDING`] requests are already waiting.
    pub fn grant_async(
        &self,
        addr: IpAddr,
        proto_port: ProtoPort,
        timeout: Duration,
    ) -> Result<PendingGrant, NftError> {
        let issued = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(addr, proto_port, timeout, issued, Reply::Async(tx))?;
        Ok(PendingGrant { rx })
    }

    /// Grants and waits for the kernel's acknowledgement (synchronous code only).
    pub fn grant(
        &self,
        addr: IpAddr,
        proto_port: ProtoPort,
        timeout: Duration,
    ) -> Result<GrantDone, NftError> {
        let issued = Instant::now();
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(addr, proto_port, timeout, issued, Reply::Sync(tx))?;
        rx.recv().unwrap_or(Err(NftError::WorkerGone))
    }

    fn submit(
        &self,
        addr: IpAddr,
        proto_port: ProtoPort,
        timeout: Duration,
        issued: Instant,
        reply: Reply<Result<GrantDone, NftError>>,
    ) -> Result<(), NftError> {
        let n = self.pending.fetch_add(1, Ordering::Relaxed);
        if n >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(NftError::Busy {
                addr,
                proto_port,
                pending: n,
            });
        }
        let req = GrantRequest {
            addr,
            proto_port,
            timeout,
            issued,
        };
        self.tx.send(Job::Grant(req, reply)).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            NftError::WorkerGone
        })
    }

    /// Requests waiting for the worker right now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// The nftables backend: knockd's table (or its objects in a user table) and a worker thread
/// owning the netlink socket.
pub struct NftBackend {
    handle: GrantHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    cfg: NftConfig,
    adopted: Option<usize>,
    nft_version: String,
}

impl fmt::Debug for NftBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NftBackend")
            .field("target", &self.cfg.target)
            .field("adopted", &self.adopted)
            .finish()
    }
}

impl NftBackend {
    /// Checks that nftables is usable (kernel support, CAP_NET_ADMIN, `nft` present, the
    /// `Nft_Chain` chain exists), looks for grants of a previous run (see
    /// [`NftBackend::adopted`]) and starts the worker. Changes nothing in the kernel.
    pub fn open(cfg: NftConfig) -> Result<NftBackend, NftError> {
        check_names(&cfg.target)?;
        let mut sock = NlSocket::open()?;
        sock.probe()?;
        let nft = Nft::new(cfg.nft_path.clone());
        let nft_version = nft.version()?;
        let names = cfg.target.names();
        let family = family_number(&names.family).ok_or_else(|| NftError::BadName {
            what: "table family (inet, ip or ip6)",
            name: names.family.clone(),
        })?;
        let mut worker = Worker {
            sock,
            nft,
            target: cfg.target.clone(),
            names,
            family,
            set_size: cfg.set_size,
            last: None,
        };
        worker.user_jumps()?;
        let adopted = worker.list()?.map(|g| g.len());
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let p2 = pending.clone();
        let thread = std::thread::Builder::new()
            .name("knockd-nft".into())
            .spawn(move || worker.run(rx, p2))
            .map_err(|e| NftError::io("cannot start the nftables worker thread", &e))?;
        Ok(NftBackend {
            handle: GrantHandle { tx, pending },
            thread: Some(thread),
            cfg,
            adopted,
            nft_version,
        })
    }

    /// `Some(n)`: knockd's sets already existed at [`NftBackend::open`] (a previous run's
    /// table was adopted) with `n` live grants; `None`: nothing there yet.
    pub fn adopted(&self) -> Option<usize> {
        self.adopted
    }

    /// The `nft --version` line.
    pub fn nft_version(&self) -> &str {
        &self.nft_version
    }

    pub fn config(&self) -> &NftConfig {
        &self.cfg
    }

    /// A handle for granting from other threads/tasks.
    pub fn handle(&self) -> GrantHandle {
        self.handle.clone()
    }

    fn call<T>(&self, job: impl FnOnce(Reply<Result<T, NftError>>) -> Job) -> Result<T, NftError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle
            .tx
            .send(job(Reply::Sync(tx)))
            .map_err(|_| NftError::WorkerGone)?;
        rx.recv().unwrap_or(Err(NftError::WorkerGone))
    }

    fn call_async<T>(&self, job: impl FnOnce(Reply<Result<T, NftError>>) -> Job) -> Completion<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.handle.tx.send(job(Reply::Async(tx))).is_ok();
        Completion {
            rx: sent.then_some(rx),
        }
    }

    /// Creates or updates knockd's table/sets/chain for `ruleset`, atomically, keeping every
    /// grant element. Idempotent. Blocks for one `nft` run (a few milliseconds).
    pub fn apply(&self, ruleset: &GrantRuleset) -> Result<(), NftError> {
        self.call(|r| Job::Apply(Box::new(ruleset.clone()), r))
    }

    /// [`NftBackend::apply`] for async code.
    pub fn apply_async(&self, ruleset: &GrantRuleset) -> Completion<()> {
        let rs = Box::new(ruleset.clone());
        self.call_async(move |r| Job::Apply(rs, r))
    }

    /// See [`GrantHandle::grant`].
    pub fn grant(
        &self,
        addr: IpAddr,
        proto_port: ProtoPort,
        timeout: Duration,
    ) -> Result<GrantDone, NftError> {
        self.handle.grant(addr, proto_port, timeout)
    }

    /// See [`GrantHandle::grant_async`].
    pub fn grant_async(
        &self,
        addr: IpAddr,
        proto_port: ProtoPort,
        timeout: Duration,
    ) -> Result<PendingGrant, NftError> {
        self.handle.grant_async(addr, proto_port, timeout)
    }

    /// The live grants, sorted by address then port (empty if the sets do not exist).
    pub fn list(&self) -> Result<Vec<GrantInfo>, NftError> {
        self.call(Job::List)
    }

    /// [`NftBackend::list`] for async code (`--status` queries).
    pub fn list_async(&self) -> Completion<Vec<GrantInfo>> {
        self.call_async(Job::List)
    }

    /// Whether knockd's sets (and, in `Nft_Chain` mode, its jump rule) are in the kernel. A
    /// firewall reload with `flush ruleset` removes them: call this now and then and
    /// [`NftBackend::apply`] again when it says `false` (a grant that finds its set missing
    /// re-applies the last ruleset by itself).
    pub fn verify(&self) -> Result<bool, NftError> {
        self.call(Job::Verify)
    }

    /// Clean shutdown: with `Nft_Cleanup`, removes knockd's table (or, in `Nft_Chain` mode,
    /// its jump rule, chain and sets), and every grant with it; otherwise leaves everything
    /// in place (ports stay protected, grants expire on time, the next start adopts them).
    pub fn teardown(mut self) -> Result<(), NftError> {
        let result = if self.cfg.cleanup {
            self.call(Job::Teardown)
        } else {
            Ok(())
        };
        self.stop();
        result
    }

    /// Removes knockd's objects whatever `Nft_Cleanup` says.
    pub fn remove(mut self) -> Result<(), NftError> {
        let result = self.call(Job::Teardown);
        self.stop();
        result
    }

    fn stop(&mut self) {
        // Closing our sender ends the worker once other handles are gone too; do not wait
        // for handles held elsewhere.
        let (dead_tx, _) = mpsc::channel();
        self.handle.tx = dead_tx;
        // Only our handle and the worker's counter left: the worker is about to exit.
        if Arc::strong_count(&self.handle.pending) <= 2
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

impl Drop for NftBackend {
    /// Stops using the kernel state without changing it (like a crash: grants keep expiring
    /// on their own, ports stay protected).
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(
            check_names(&Target::Table {
                name: "knockd".into()
            })
            .is_ok()
        );
        let bad = check_names(&Target::Table {
            name: "x; flush ruleset".into(),
        })
        .unwrap_err();
        assert_eq!(
            bad.to_string(),
            "bad nftables table or chain name (letters, digits, _ and -): `x; flush ruleset`"
        );
        let chain = |f: &str, t: &str, c: &str| {
            check_names(&Target::UserChain(NftChainRef {
                family: f.into(),
                table: t.into(),
                chain: c.into(),
            }))
        };
        assert!(chain("inet", "filter", "input").is_ok());
        assert!(chain("bridge", "filter", "input").is_err());
        assert!(chain("ip", "filter", "in put").is_err());
    }

    #[test]
    fn millis_never_zero() {
        assert_eq!(grant_millis(Duration::from_nanos(1)), 1);
        assert_eq!(grant_millis(Duration::from_micros(1500)), 2);
        assert_eq!(grant_millis(Duration::from_secs(30)), 30_000);
    }

    #[test]
    fn grant_info_text() {
        let g = GrantInfo {
            addr: "198.18.1.2".parse().unwrap(),
            proto_port: ProtoPort {
                proto: knock_core::proto::Protocol::Tcp,
                port: 22,
            },
            timeout: Duration::from_secs(30),
            remaining: Duration::from_millis(27_900),
        };
        assert_eq!(g.to_string(), "198.18.1.2 tcp/22 27s left (of 30s)");
    }
}
