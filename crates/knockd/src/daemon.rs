//! The daemon: wires capture → decode → match → act, signals, the status socket and the
//! configuration's lifecycle.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use knock_core::config::{self, Config, Trigger};
use knock_core::matcher::{DEFAULT_CAPACITY, Event, Matcher, Outcome, Pattern};
use knock_core::packet::Packet;
use knock_core::proto::{Knock, ProtoPort, Protocol};
use knock_core::spa::Decision;
use tokio::signal::unix::{SignalKind, signal};

use crate::actions::{Job, Refused, Runner};
use crate::capture::{CaptureConfig, FileCapture, Frame, FrameView, Interfaces, LiveCapture};
use crate::cli::{Cli, DEFAULT_CONFIG};
use crate::doors::{self, DoorSet};
use crate::example::{EXAMPLE_CONFIG, EXAMPLE_NAME};
use crate::grants::{GrantRuleset, NftBackend, NftConfig, ScheduleClock, needs_grants};
use crate::ifaddrs::LocalAddrs;
use crate::lifecycle::{self, Daemonized, PidFile};
use crate::logging::{LogTargets, Logger, debug_stamp};
use crate::lookup::Names;
use crate::spa::{SpaState, Verdict};
use crate::status::{self, Snapshot};

/// How often expired attempts are swept out of the table.
const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// How often the interfaces' addresses are re-read.
const ADDR_REFRESH: Duration = Duration::from_secs(1);
/// Most frames served per wake-up before timers and signals get a turn.
const MAX_BATCH: usize = 1024;
/// How often the nftables ruleset is checked (a firewall reload may have flushed it).
const NFT_CHECK: Duration = Duration::from_secs(10);

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Example,
}

impl Source {
    /// The name used in messages: the path, or `<built-in example>`.
    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Example => EXAMPLE_NAME.to_string(),
        }
    }

    /// Reads and parses the configuration. Errors are located (`file:line: ...`).
    pub fn load(&self) -> Result<Config, String> {
        match self {
            Source::Example => {
                config::parse(EXAMPLE_CONFIG, EXAMPLE_NAME).map_err(|e| e.to_string())
            }
            Source::File(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read config file {}: {e}", p.display()))?;
                config::parse(&text, &p.display().to_string()).map_err(|e| e.to_string())
            }
        }
    }
}

/// Picks the configuration: `-c`, else /etc/knockd.conf, else (or with `--example`) the
/// built-in example.
pub fn source_for(cli: &Cli) -> Source {
    if cli.example {
        return Source::Example;
    }
    match &cli.config {
        Some(p) => Source::File(p.clone()),
        None if Path::new(DEFAULT_CONFIG).exists() => Source::File(PathBuf::from(DEFAULT_CONFIG)),
        None => Source::Example,
    }
}

/// Settings that come from the command line and the configuration together.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: Source,
    pub interfaces: Interfaces,
    pub log: LogTargets,
    pub pidfile: PathBuf,
    pub status_socket: PathBuf,
    pub only_ipv4: bool,
    pub lookup: bool,
    pub pcap_file: Option<PathBuf>,
    /// The command line, for what a reload recomputes.
    pub cli: Cli,
}

impl Settings {
    /// Command-line flags win over the configuration (unlike knockd 0.8, where `LogFile`
    /// overrides `-g`).
    pub fn new(cli: &Cli, source: Source, config: &Config) -> Result<Settings, String> {
        let spec = cli
            .interface
            .clone()
            .or_else(|| config.options.interface.clone())
            .unwrap_or_else(|| config::DEFAULT_INTERFACE.to_string());
        let interfaces = Interfaces::parse(&spec).map_err(|e| e.to_string())?;
        Ok(Settings {
            source,
            interfaces,
            log: log_targets(cli, config),
            pidfile: cli
                .pidfile
                .clone()
                .or_else(|| config.options.pid_file.as_ref().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PID_FILE)),
            status_socket: status_socket(config),
            only_ipv4: cli.only_ipv4,
            lookup: cli.lookup,
            pcap_file: cli.pcap_file.clone(),
            cli: cli.clone(),
        })
    }
}

fn log_targets(cli: &Cli, config: &Config) -> LogTargets {
    LogTargets {
        file: cli
            .logfile
            .clone()
            .or_else(|| config.options.log_file.as_ref().map(PathBuf::from)),
        syslog: config.options.use_syslog,
        verbose: cli.verbose,
        debug: cli.debug,
    }
}

/// The status socket a configuration names.
pub fn status_socket(config: &Config) -> PathBuf {
    PathBuf::from(
        config
            .options
            .status_socket
            .as_deref()
            .unwrap_or(status::DEFAULT_SOCKET),
    )
}

/// The command line's entry point; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    if cli.print_example {
        print!("{EXAMPLE_CONFIG}");
        return 0;
    }
    let source = source_for(&cli);
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("knockd: {e}");
            return 1;
        }
    };
    if cli.status {
        return match status::query(&status_socket(&config), cli.json) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("knockd: {e}");
                1
            }
        };
    }
    let settings = match Settings::new(&cli, source, &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("knockd: {e}");
            return 1;
        }
    };
    let doors = match DoorSet::build(config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("knockd: {e}");
            return 1;
        }
    };
    if cli.check {
        print!("{}", summary(&settings, &doors));
        return 0;
    }
    if settings.pcap_file.is_none()
        && let Err(e) = settings.interfaces.check_exist()
    {
        eprintln!("knockd: {e}");
        return 1;
    }
    let logger = match Logger::new(settings.log.clone()) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("knockd: {e}");
            return 1;
        }
    };
    let mut daemonized = None;
    let mut _pidfile = None;
    if cli.daemon {
        match lifecycle::daemonize() {
            Ok(d) => daemonized = Some(d),
            Err(e) => {
                eprintln!("knockd: cannot daemonize: {e}");
                return 1;
            }
        }
        match PidFile::create(&settings.pidfile) {
            Ok(p) => _pidfile = Some(p),
            Err(e) => {
                fail(&logger, daemonized.as_mut(), &e.to_string());
                return 1;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            fail(
                &logger,
                daemonized.as_mut(),
                &format!("cannot start the runtime: {e}"),
            );
            return 1;
        }
    };
    let result = runtime.block_on(run(
        settings,
        doors,
        Arc::clone(&logger),
        daemonized.as_mut(),
    ));
    match result {
        Ok(()) => 0,
        Err(e) => {
            fail(&logger, daemonized.as_mut(), &e);
            1
        }
    }
}

fn fail(logger: &Logger, daemonized: Option<&mut Daemonized>, msg: &str) {
    logger.error(msg);
    if let Some(d) = daemonized {
        d.failed(msg);
    }
}

/// `--check`: what the configuration says, door by door.
pub fn summary(settings: &Settings, doors: &DoorSet) -> String {
    let mut s = format!(
        "{}: OK, {} door(s), listening on {}\n",
        settings.source.name(),
        doors.config.doors.len(),
        settings.interfaces
    );
    for d in &doors.config.doors {
        s.push_str(&format!("  [{}] {}", d.name, d.trigger));
        if !d.tcp_flags.is_any() {
            s.push_str(&format!(", tcpflags {}", d.tcp_flags));
        }
        if !d.open.is_empty() {
            let open: Vec<String> = d.open.iter().map(ToString::to_string).collect();
            s.push_str(&format!(
                ", opens {} for {} s",
                open.join(","),
                d.open_timeout
            ));
        }
        if let Some(c) = &d.start_command {
            s.push_str(&format!(", runs: {c}"));
        }
        s.push('\n');
    }
    s
}

/// Counters of the packet path.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    seen: u64,
    matched: u64,
    not_knock: u64,
    malformed: u64,
    refused: u64,
    /// Wake-ups that delivered frames, and the frames they delivered.
    batches: u64,
}

/// Where frames come from.
enum Input {
    Live(LiveCapture),
    File(FileCapture),
}

struct Daemon {
    settings: Settings,
    logger: Arc<Logger>,
    doors: DoorSet,
    matcher: Matcher,
    runner: Runner,
    addrs: Arc<LocalAddrs>,
    names: Option<Names>,
    counters: Counters,
    outcomes: Vec<Outcome>,
    epoch: Instant,
    started: Instant,
    spa: SpaState,
    /// nftables, when some door has `open =` and nftables works.
    grants: Option<NftBackend>,
    /// When the schedule conversion must be redone (DST), Unix seconds.
    reapply_at: Option<i64>,
    /// Knock events of the current capture wake-up, matched together by [`Daemon::flush`].
    events: Vec<Event>,
    /// A door's ports changed (one-time sequence): the kernel filter must be rebuilt.
    refilter: bool,
}

/// Opens nftables and loads the ruleset when the configuration has doors with `open =`.
fn open_grants(config: &Config) -> Result<Option<(NftBackend, GrantRuleset)>, String> {
    if !needs_grants(config) {
        return Ok(None);
    }
    let backend = NftBackend::open(NftConfig::from_config(config)).map_err(|e| e.to_string())?;
    let ruleset = GrantRuleset::from_config(config, &ScheduleClock::system());
    backend.apply(&ruleset).map_err(|e| e.to_string())?;
    Ok(Some((backend, ruleset)))
}

/// No door needs nftables: warn if a previous run left knockd's table behind, since it still
/// drops traffic to the ports it protected and no door can open them any more. It is left
/// alone (another knockd may use it); nothing is said when nftables cannot be used.
fn warn_leftover_table(config: &Config, logger: &Logger) {
    let Ok(backend) = NftBackend::open(NftConfig::from_config(config)) else {
        return;
    };
    let Some(n) = backend.adopted() else {
        return;
    };
    let target = &backend.config().target;
    let names = target.names();
    let how = match target {
        crate::grants::Target::Table { .. } => {
            format!("nft delete table {} {}", names.family, names.table)
        }
        crate::grants::Target::UserChain(_) => format!(
            "remove knockd's jump rule, chain {} and sets from table {} {}",
            names.chain, names.family, names.table
        ),
    };
    logger.warn(&format!(
        "nftables: {target} still holds knockd's ruleset of a previous run ({n} live grant(s)): \
         it keeps dropping the ports it protects, but no door has open = any more; \
         if that is not wanted: {how}"
    ));
}

/// nftables cannot be used: the doors whose `open =` needs it are refused (disabled), the
/// others run.
fn disable_grant_doors(
    doors: &DoorSet,
    matcher: &mut Matcher,
    spa: &mut SpaState,
    logger: &Logger,
    why: &str,
) {
    for (i, door) in doors.config.doors.iter().enumerate() {
        if door.open.is_empty() {
            continue;
        }
        logger.error(&format!(
            "door [{}] is disabled: its open = needs nftables, which cannot be used: {why}",
            door.name
        ));
        if let Some(m) = doors.matched.iter().position(|&x| x == i) {
            let _ = matcher.set_pattern(m, Pattern::Disabled);
        }
        spa.disable(i);
    }
}

fn build_matcher(doors: &DoorSet) -> Result<Matcher, String> {
    let capacity = doors
        .config
        .options
        .state_capacity
        .unwrap_or(DEFAULT_CAPACITY);
    Matcher::new(doors.rules.clone(), capacity).map_err(|e| {
        // The matcher numbers its doors; name the configuration door and its line instead.
        match e.door().and_then(|m| doors.door(m)) {
            Some(d) => {
                let msg = e.to_string();
                let detail = msg.split_once(": ").map_or(msg.as_str(), |(_, r)| r);
                format!("door [{}] (line {}): {detail}", d.name, d.line)
            }
            None => e.to_string(),
        }
    })
}

/// Runs the daemon until SIGTERM/SIGINT, or until a pcap file is read to its end.
async fn run(
    settings: Settings,
    doors: DoorSet,
    logger: Arc<Logger>,
    mut daemonized: Option<&mut Daemonized>,
) -> Result<(), String> {
    let mut matcher = build_matcher(&doors)?;
    let mut spa = SpaState::build(&doors.config, &mut |w| logger.warn(&w))?;
    if let Err(e) = spa.check_writable() {
        logger.warn(&format!(
            "{e}: SPA replays will not be remembered across restarts"
        ));
    }
    let (grants, reapply_at) = match open_grants(&doors.config) {
        Ok(Some((backend, ruleset))) => {
            let names = backend.config().target.names();
            let table = format!("{} {}", names.family, names.table);
            match backend.adopted() {
                Some(n) => logger.log(&format!(
                    "nftables: adopted table {table} with {n} live grant(s)"
                )),
                None => logger.log(&format!("nftables: created table {table}")),
            }
            (Some(backend), ruleset.reapply_at)
        }
        Ok(None) => {
            warn_leftover_table(&doors.config, &logger);
            (None, None)
        }
        Err(e) => {
            disable_grant_doors(&doors, &mut matcher, &mut spa, &logger, &e);
            (None, None)
        }
    };
    let watches = doors::watches(&doors, matcher.watched());
    let addrs = LocalAddrs::new(settings.interfaces.clone())
        .map_err(|e| format!("cannot read the addresses of {}: {e}", settings.interfaces))?;
    let _refresher = addrs.spawn_refresher(ADDR_REFRESH);
    let mut input = match &settings.pcap_file {
        Some(path) => Input::File(
            FileCapture::open(path, &watches, settings.only_ipv4).map_err(|e| e.to_string())?,
        ),
        None => {
            let cfg = CaptureConfig {
                ipv4_only: settings.only_ipv4,
                ..CaptureConfig::default()
            };
            Input::Live(
                LiveCapture::open(&settings.interfaces, &watches, &cfg)
                    .map_err(|e| e.to_string())?,
            )
        }
    };
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("signals: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("signals: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("signals: {e}"))?;
    let status_listener = match status::bind(&settings.status_socket) {
        Ok(l) => Some(l),
        Err(e) => {
            logger.error(&format!("{e}; knockd --status will not answer"));
            None
        }
    };
    let _socket_file = status_listener
        .as_ref()
        .map(|_| status::SocketFile(settings.status_socket.clone()));

    let mut d = Daemon {
        names: settings.lookup.then(Names::new),
        settings,
        runner: Runner::new(Arc::clone(&logger)),
        logger,
        doors,
        matcher,
        addrs,
        counters: Counters::default(),
        outcomes: Vec::with_capacity(16),
        epoch: Instant::now(),
        started: Instant::now(),
        spa,
        grants,
        reapply_at,
        refilter: false,
        events: Vec::with_capacity(MAX_BATCH),
    };
    d.announce();
    d.lint();
    if let Some(dz) = daemonized.as_mut() {
        dz.ready();
    }

    let mut expiry = tokio::time::interval(EXPIRY_TICK);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut nft_check = tokio::time::interval(NFT_CHECK);
    nft_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            biased;
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
            _ = hup.recv() => d.reload(&mut input),
            frame = next_frame(&mut input) => match frame {
                Ok(Some(f)) => {
                    d.on_frame(f.view(), matches!(input, Input::File(_)));
                    // Serve every frame already waiting in the ring in this wake-up.
                    if let Input::Live(c) = &mut input
                        && let Err(e) = c.drain(MAX_BATCH, |v| d.on_frame(v, false))
                    {
                        break Err(e.to_string());
                    }
                    d.flush();
                    d.counters.batches += 1;
                    d.refilter(&mut input);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            },
            _ = expiry.tick() => d.expire(),
            _ = nft_check.tick() => d.check_grants(),
            conn = accept(status_listener.as_ref()) => {
                if let Some(stream) = conn {
                    let snap = d.snapshot(&mut input);
                    let grants = d.grants.as_ref().map(NftBackend::list_async);
                    tokio::spawn(status_reply(stream, snap, grants));
                }
            }
        }
    };
    d.logger.log("shutting down");
    if !d.runner.shutdown().await {
        d.logger
            .error("some commands were still running when knockd exited");
    }
    if let Some(backend) = d.grants.take()
        && let Err(e) = backend.teardown()
    {
        d.logger.error(&format!("nftables: {e}"));
    }
    result
}

async fn next_frame(input: &mut Input) -> Result<Option<Frame>, String> {
    match input {
        Input::Live(c) => c.next_frame().await.map(Some).map_err(|e| e.to_string()),
        Input::File(f) => f.next().transpose().map_err(|e| e.to_string()),
    }
}

async fn accept(listener: Option<&tokio::net::UnixListener>) -> Option<tokio::net::UnixStream> {
    match listener {
        Some(l) => l.accept().await.ok().map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn status_reply(
    mut stream: tokio::net::UnixStream,
    mut snap: Snapshot,
    grants: Option<crate::grants::Completion<Vec<crate::grants::GrantInfo>>>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    if let Some(list) = grants
        && let Ok(Ok(list)) = tokio::time::timeout(Duration::from_secs(2), list).await
    {
        snap.grants = list
            .iter()
            .map(|g| status::GrantLine {
                address: g.addr.to_string(),
                port: g.proto_port.to_string(),
                seconds_left: g.remaining.as_secs(),
            })
            .collect();
    }
    let mut line = String::new();
    let (r, mut w) = stream.split();
    let mut reader = BufReader::new(r);
    let read = tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line)).await;
    let body = match read {
        Ok(Ok(_)) if line.trim() == "json" => snap.to_json() + "\n",
        _ => snap.to_text(),
    };
    let _ = w.write_all(body.as_bytes()).await;
    let _ = w.shutdown().await;
}

impl Daemon {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn who(&self, ip: IpAddr) -> String {
        match &self.names {
            Some(n) => n.display(ip),
            None => ip.to_string(),
        }
    }

    fn door_name(&self, m: usize) -> &str {
        self.doors.door(m).map_or("?", |d| d.name.as_str())
    }

    /// Warnings about weak static doors (startup and reload).
    fn lint(&self) {
        let listening = crate::listening::listening();
        for door in &self.doors.config.doors {
            let host = knock_core::lint::Host {
                listening: &|k| listening.contains(&k),
                ephemeral: crate::listening::ephemeral_ports(),
            };
            for w in knock_core::lint::check_door(door, &host) {
                self.logger.warn(&w.to_string());
            }
        }
    }

    /// Startup lines: knockd's, and for the built-in example how to knock it.
    fn announce(&self) {
        let ifs = self.settings.interfaces.to_string();
        self.logger.verbose(&format!("listening on {ifs}..."));
        self.logger.log(&format!("starting up, listening on {ifs}"));
        if self.settings.source == Source::Example {
            let addr = self
                .addrs
                .snapshot()
                .iter()
                .find(|a| a.is_ipv4())
                .map_or_else(|| "<this host>".to_string(), |a| a.to_string());
            let ports: Vec<String> = self
                .doors
                .rules
                .first()
                .and_then(|r| match &r.pattern {
                    Pattern::Fixed(seq) => Some(seq.iter().map(|k| k.port.to_string()).collect()),
                    _ => None,
                })
                .unwrap_or_default();
            let why = if self.settings.cli.example {
                "--example".to_string()
            } else {
                format!("no -c and no {DEFAULT_CONFIG}")
            };
            println!(
                "knockd: {why}: running the built-in example door [example] on {ifs}.\n\
                 knockd: knock it from another terminal with:  knock {addr} {}\n\
                 knockd: (knockd --print-example shows its configuration; Ctrl-C stops)",
                ports.join(" ")
            );
        }
    }

    fn on_frame(&mut self, frame: FrameView<'_>, from_file: bool) {
        self.counters.seen += 1;
        let pkt = match frame.decode() {
            Ok(p) => p,
            Err(e) if e.is_not_knock() => {
                self.counters.not_knock += 1;
                return;
            }
            Err(e) => {
                self.counters.malformed += 1;
                if self.settings.cli.debug {
                    self.logger.debug(&format!(
                        "{}: undecodable frame on {}: {e}",
                        debug_stamp(),
                        frame.iface
                    ));
                }
                return;
            }
        };
        if self.settings.only_ipv4 && pkt.src.is_ipv6() {
            return;
        }
        if self.settings.cli.debug {
            self.logger.debug(&format!(
                "{}: {}: {}:{} -> {}:{} {} bytes",
                debug_stamp(),
                pkt.proto,
                pkt.src,
                pkt.src_port,
                pkt.dst,
                pkt.dst_port,
                frame.wire_len
            ));
        }
        let now_ms = if from_file {
            frame.ts.as_millis() as u64
        } else {
            self.now_ms()
        };
        let unix_secs = if from_file {
            frame.ts.as_secs()
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        self.on_packet(&pkt, now_ms, unix_secs, from_file);
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, now_ms: u64, unix_secs: u64, from_file: bool) {
        let knock = Knock::new(pkt.dst_port, pkt.proto);
        let spa_port = pkt.proto == Protocol::Udp && self.spa.listens(pkt.dst_port);
        if !spa_port && !self.matcher.watches(knock) {
            return;
        }
        // Offline (pcap file) there are no interface addresses to compare with: every
        // destination counts as local.
        let dst_is_local = from_file || self.addrs.is_local_or_refresh(pkt.dst);
        if spa_port && dst_is_local {
            self.on_spa(pkt, unix_secs);
        }
        if !self.matcher.watches(knock) {
            return;
        }
        self.counters.matched += 1;
        let ev = Event {
            now_ms,
            unix_secs,
            src: pkt.src,
            dst: pkt.dst,
            dst_is_local,
            knock,
            tcp_flags: pkt.tcp_flags,
        };
        self.events.push(ev);
        // One-time doors change their sequence on success: their packets are matched one at a
        // time so no later packet of the batch sees a used sequence.
        if self.events.len() >= MAX_BATCH || self.doors.has_onetime {
            self.flush();
        }
    }

    /// Matches the events gathered from one capture wake-up (see
    /// [`Matcher::process_batch`]) and acts on the outcomes.
    fn flush(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let mut outcomes = std::mem::take(&mut self.outcomes);
        self.matcher.process_batch(&self.events, &mut outcomes);
        self.events.clear();
        for o in outcomes.drain(..) {
            self.on_outcome(o);
        }
        self.outcomes = outcomes;
    }

    fn expire(&mut self) {
        let now = self.now_ms();
        let mut outcomes = std::mem::take(&mut self.outcomes);
        self.matcher.expire(now, &mut outcomes);
        for o in outcomes.drain(..) {
            self.on_outcome(o);
        }
        self.outcomes = outcomes;
    }

    fn on_outcome(&mut self, o: Outcome) {
        match o {
            Outcome::Stage { src, door, stage } => {
                let line = format!("{}: {}: Stage {stage}", self.who(src), self.door_name(door));
                self.logger.limited(&line);
            }
            Outcome::Timeout { src, door, stage } => {
                let line = format!(
                    "{}: {}: sequence timeout (stage {stage})",
                    self.who(src),
                    self.door_name(door)
                );
                self.logger.limited(&line);
            }
            Outcome::Replay { src, door } => {
                self.logger.log(&format!(
                    "{}: {}: sequence already used by another source in this time step, refused",
                    self.who(src),
                    self.door_name(door)
                ));
            }
            Outcome::Open { src, door } => self.open(src, door),
        }
    }

    /// A completed knock: log, run the door's commands, move one-time sequences on.
    fn open(&mut self, src: IpAddr, m: usize) {
        let Some(door) = self.doors.door(m).cloned() else {
            return;
        };
        self.logger
            .log(&format!("{}: {}: OPEN SESAME", self.who(src), door.name));
        let ip = src.to_string();
        let vars = [("IP", ip.as_str())];
        let v6 = src.is_ipv6();
        let job = Job {
            door: door.name.clone(),
            src,
            start: door
                .start_command_for(v6)
                .map(|c| config::expand_command(c, &vars)),
            stop: door
                .stop_command_for(v6)
                .map(|c| config::expand_command(c, &vars)),
            cmd_timeout: Duration::from_secs(door.cmd_timeout),
            // Each one-time sequence is used once: its completions cannot be repeated to
            // fork-bomb the host, so they are not subject to the cooldown.
            cooldown: !matches!(door.trigger, Trigger::OneTime { .. }),
        };
        match self.runner.launch(job) {
            Ok(()) => {}
            Err(Refused::Cooldown) => {
                self.counters.refused += 1;
                self.logger.log(&format!(
                    "{ip}: {}: completed again within {} s, command not rerun",
                    door.name,
                    crate::actions::COOLDOWN.as_secs()
                ));
            }
            Err(Refused::Busy) => {
                self.counters.refused += 1;
                self.logger.limited(&format!(
                    "{ip}: {}: too many commands in flight, command not run",
                    door.name
                ));
            }
            Err(Refused::ShuttingDown) => {}
        }
        self.grant(src, &door.name, &door.open, door.open_timeout);
        if let Trigger::OneTime { file } = &door.trigger {
            self.next_onetime(m, &door.name, file);
        }
    }

    /// Grants `ports` to `addr` for `timeout` seconds in nftables, off the packet path; the
    /// result is logged when the kernel has it.
    fn grant(&self, addr: IpAddr, door: &str, ports: &[ProtoPort], timeout: u64) {
        let Some(backend) = &self.grants else {
            return;
        };
        for &p in ports {
            let who = self.who(addr);
            let door = door.to_string();
            let logger = Arc::clone(&self.logger);
            match backend.grant_async(addr, p, Duration::from_secs(timeout)) {
                Ok(pending) => {
                    tokio::spawn(async move {
                        match pending.await {
                            Ok(done) => logger.log(&format!(
                                "{who}: {door}: {} {p} for {timeout} s",
                                if done.refreshed {
                                    "refreshed grant of"
                                } else {
                                    "granted"
                                }
                            )),
                            Err(e) => {
                                logger.error(&format!("{who}: {door}: grant of {p} failed: {e}"))
                            }
                        }
                    });
                }
                Err(e) => self
                    .logger
                    .error(&format!("{who}: {door}: grant of {p} failed: {e}")),
            }
        }
    }

    /// A datagram to an SPA port.
    fn on_spa(&mut self, pkt: &Packet<'_>, unix_secs: u64) {
        let verdict = self.spa.check(
            &self.doors.config,
            pkt.dst_port,
            pkt.payload,
            pkt.payload_complete,
            pkt.src,
            unix_secs,
        );
        let who = self.who(pkt.src);
        let name = |i: usize| {
            self.doors
                .config
                .doors
                .get(i)
                .map_or("?".to_string(), |d| d.name.clone())
        };
        match verdict {
            Verdict::Rejected(e) => self
                .logger
                .limited(&format!("{who}: SPA packet rejected: {e}")),
            Verdict::Incomplete => self.logger.limited(&format!(
                "{who}: SPA packet cut short (fragmented or over the snap length), ignored"
            )),
            Verdict::Replayed { door } => self.logger.limited(&format!(
                "{who}: {}: SPA packet replayed, refused",
                name(door)
            )),
            Verdict::Refused { door, user, reason } => self.logger.log(&format!(
                "{who}: {}: SPA request from user {user} refused: {reason}",
                name(door)
            )),
            Verdict::Accepted {
                door,
                user,
                decision,
            } => self.spa_accepted(pkt.src, door, &user, decision),
        }
    }

    fn spa_accepted(&mut self, src: IpAddr, index: usize, user: &str, decision: Decision) {
        let Some(door) = self.doors.config.doors.get(index).cloned() else {
            return;
        };
        let who = self.who(src);
        match decision {
            Decision::Access { ip, ports, timeout } => {
                let list: Vec<String> = ports.iter().map(ToString::to_string).collect();
                self.logger.log(&format!(
                    "{who}: {}: SPA request from user {user}: OPEN SESAME for {ip} {} ({timeout} s)",
                    door.name,
                    list.join(",")
                ));
                if !door.open.is_empty() {
                    self.grant(ip, &door.name, &ports, timeout);
                }
                self.spa_commands(&door, ip, &ports, timeout);
            }
            Decision::Command { ip, command } => {
                self.logger.log(&format!(
                    "{who}: {}: SPA request from user {user}: running the allowed command for {ip}",
                    door.name
                ));
                let job = Job {
                    door: door.name.clone(),
                    src: ip,
                    start: Some(command),
                    stop: None,
                    cmd_timeout: Duration::ZERO,
                    cooldown: false,
                };
                if self.runner.launch(job).is_err() {
                    self.counters.refused += 1;
                }
            }
        }
    }

    /// An SPA door's start/stop commands: `%IP%`, `%PORT%`, `%PROTO%`, `%TIMEOUT%`; run once
    /// per requested port when they use `%PORT%` or `%PROTO%`, else once. The stop command
    /// runs when the granted time is over.
    fn spa_commands(
        &mut self,
        door: &knock_core::config::Door,
        ip: IpAddr,
        ports: &[ProtoPort],
        timeout: u64,
    ) {
        let v6 = ip.is_ipv6();
        let (start, stop) = (door.start_command_for(v6), door.stop_command_for(v6));
        if start.is_none() && stop.is_none() {
            return;
        }
        let per_port = [start, stop]
            .iter()
            .flatten()
            .any(|c| c.contains("%PORT%") || c.contains("%PROTO%"));
        let ip_s = ip.to_string();
        let t = timeout.to_string();
        let all: Vec<String> = ports.iter().map(ToString::to_string).collect();
        let all = all.join(",");
        let runs: Vec<(String, String)> = if per_port {
            ports
                .iter()
                .map(|p| (p.port.to_string(), p.proto.to_string()))
                .collect()
        } else {
            vec![(all, String::new())]
        };
        for (port, proto) in runs {
            let vars = [
                ("IP", ip_s.as_str()),
                ("PORT", port.as_str()),
                ("PROTO", proto.as_str()),
                ("TIMEOUT", t.as_str()),
            ];
            let job = Job {
                door: door.name.clone(),
                src: ip,
                start: start.map(|c| config::expand_command(c, &vars)),
                stop: stop.map(|c| config::expand_command(c, &vars)),
                cmd_timeout: Duration::from_secs(timeout),
                cooldown: false,
            };
            if self.runner.launch(job).is_err() {
                self.counters.refused += 1;
            }
        }
    }

    /// Periodic nftables upkeep: restore a flushed ruleset; redo the schedule conversion after
    /// a UTC offset change (DST).
    fn check_grants(&mut self) {
        let Some(backend) = &self.grants else {
            return;
        };
        let dst_change = self
            .reapply_at
            .is_some_and(|t| crate::spa::unix_now() as i64 >= t);
        let missing = matches!(backend.verify(), Ok(false));
        if !(dst_change || missing) {
            return;
        }
        let ruleset = GrantRuleset::from_config(&self.doors.config, &ScheduleClock::system());
        self.reapply_at = ruleset.reapply_at;
        if missing {
            self.logger
                .error("nftables: knockd's ruleset was removed (firewall reload?); restoring it");
        }
        let logger = Arc::clone(&self.logger);
        let done = backend.apply_async(&ruleset);
        tokio::spawn(async move {
            if let Err(e) = done.await {
                logger.error(&format!("nftables: {e}"));
            }
        });
    }

    fn next_onetime(&mut self, m: usize, name: &str, file: &str) {
        let pattern = match doors::consume_onetime(file) {
            Ok(Some(seq)) => Pattern::Fixed(seq),
            Ok(None) => {
                self.logger.log(&format!(
                    "no more sequences left in the one time sequences file for door {name} --> disabling the door"
                ));
                Pattern::Disabled
            }
            Err(e) => {
                self.logger
                    .error(&format!("door {name}: {e} --> disabling the door"));
                Pattern::Disabled
            }
        };
        if let Some(rule) = self.doors.rules.get_mut(m) {
            rule.pattern = pattern.clone();
        }
        if let Err(e) = self.matcher.set_pattern(m, pattern) {
            self.logger.error(&format!("door {name}: {e}"));
        }
        self.refilter = true;
    }

    /// Rebuilds the kernel filter after a door's ports changed, so the next one-time
    /// sequence's ports reach the daemon.
    fn refilter(&mut self, input: &mut Input) {
        if !std::mem::take(&mut self.refilter) {
            return;
        }
        if let Input::Live(c) = input {
            let watches = doors::watches(&self.doors, self.matcher.watched());
            if let Err(e) = c.set_filter(&watches, self.settings.only_ipv4) {
                self.logger.error(&e.to_string());
            }
        }
    }

    /// SIGHUP: re-read the configuration; keep the running one if the new one is bad.
    fn reload(&mut self, input: &mut Input) {
        let name = self.settings.source.name();
        self.logger.log(&format!("re-reading config file: {name}"));
        let new = self
            .settings
            .source
            .load()
            .and_then(DoorSet::build)
            .and_then(|doors| build_matcher(&doors).map(|m| (doors, m)));
        let (doors, mut matcher) = match new {
            Ok(x) => x,
            Err(e) => {
                self.logger
                    .error(&format!("{e}; keeping the running configuration"));
                // The log file is reopened all the same (log rotation sends SIGHUP).
                if let Err(e) = self.logger.reconfigure(self.settings.log.clone()) {
                    self.logger.error(&e.to_string());
                }
                return;
            }
        };
        let mut spa = match SpaState::build(&doors.config, &mut |w| self.logger.warn(&w)) {
            Ok(s) => s,
            Err(e) => {
                self.logger
                    .error(&format!("{e}; keeping the running configuration"));
                return;
            }
        };
        // The kernel filter first: if it cannot take the new ports, nothing has changed yet.
        let watches = doors::watches(&doors, matcher.watched());
        if let Input::Live(c) = input
            && let Err(e) = c.set_filter(&watches, self.settings.only_ipv4)
        {
            self.logger
                .error(&format!("{e}; keeping the running configuration"));
            return;
        }
        // nftables: keep the backend (grants survive a reload) and load the new ruleset.
        if needs_grants(&doors.config) {
            if self.grants.is_none() {
                match open_grants(&doors.config) {
                    Ok(g) => {
                        self.reapply_at = g.as_ref().and_then(|(_, rs)| rs.reapply_at);
                        self.grants = g.map(|(b, _)| b);
                    }
                    Err(e) => disable_grant_doors(&doors, &mut matcher, &mut spa, &self.logger, &e),
                }
            } else if let Some(backend) = &self.grants {
                let ruleset = GrantRuleset::from_config(&doors.config, &ScheduleClock::system());
                self.reapply_at = ruleset.reapply_at;
                if let Err(e) = backend.apply(&ruleset) {
                    disable_grant_doors(
                        &doors,
                        &mut matcher,
                        &mut spa,
                        &self.logger,
                        &e.to_string(),
                    );
                }
            }
        } else if let Some(backend) = &self.grants {
            // No door has `open =` any more: protect nothing (live grants expire by themselves),
            // rather than keep ports closed that no door can open.
            let ruleset = GrantRuleset::from_config(&doors.config, &ScheduleClock::system());
            self.reapply_at = ruleset.reapply_at;
            if let Err(e) = backend.apply(&ruleset) {
                self.logger.error(&format!("nftables: {e}"));
            }
        }
        let targets = log_targets(&self.settings.cli, &doors.config);
        if let Err(e) = self.logger.reconfigure(targets.clone()) {
            self.logger.error(&e.to_string());
        } else {
            self.settings.log = targets;
        }
        if doors.config.options.interface.is_some()
            && doors.config.options.interface != self.doors.config.options.interface
        {
            self.logger
                .log("the Interface option changed: restart knockd to listen elsewhere");
        }
        // A rotating sequence used before the reload stays refused to other sources.
        matcher.inherit_replay_memory(&self.matcher);
        self.doors = doors;
        self.matcher = matcher;
        let old = std::mem::replace(&mut self.spa, spa);
        self.spa.inherit(old);
        self.lint();
    }

    fn snapshot(&self, input: &mut Input) -> Snapshot {
        let m = self.matcher.stats();
        let (mut received, mut dropped, mut if_dropped) = (0, 0, 0);
        if let Input::Live(c) = input
            && let Ok(stats) = c.stats()
        {
            for s in stats {
                received += u64::from(s.received);
                dropped += u64::from(s.dropped);
                if_dropped += u64::from(s.if_dropped);
            }
        }
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            config: self.settings.source.name(),
            interfaces: self.settings.interfaces.to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            doors: self.doors.config.doors.len(),
            packets_seen: self.counters.seen,
            packets_matched: self.counters.matched,
            packets_not_knock: self.counters.not_knock,
            packets_malformed: self.counters.malformed,
            attempts_tracked: m.tracked,
            attempts_capacity: m.capacity,
            attempts_table_bytes: m.table_bytes,
            evictions: m.evictions,
            completions: m.completions,
            timeouts: m.timeouts,
            replays: m.replays,
            commands_in_flight: self.runner.in_flight(),
            commands_refused: self.counters.refused,
            spa_accepted: self.spa.accepted,
            spa_rejected: self.spa.rejected,
            capture_wakeups: self.counters.batches,
            capture_received: received,
            capture_dropped: dropped,
            capture_if_dropped: if_dropped,
            grants: Vec::new(),
        }
    }
}
