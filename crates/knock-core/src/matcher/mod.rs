//! Knock sequence matching: decides, packet by packet, when a source completes a door's
//! sequence.
//!
//! State is kept per (source address, door) in a fixed-capacity table allocated once (see
//! [`Matcher::new`]). Rules, in the order they are applied to each watched packet, for each door
//! whose filters (target or local address, `from` list, TCP flags) the packet passes:
//!
//! 1. An attempt past its deadline is dropped ([`Outcome::Timeout`]) and the packet is evaluated
//!    as if there had been none. A knock exactly `timeout_ms` after the first knock still counts;
//!    one millisecond later it does not.
//! 2. The next expected knock advances the attempt ([`Outcome::Stage`]); the last one completes
//!    it ([`Outcome::Open`], or [`Outcome::Replay`] for a rotating sequence another source
//!    already used) and forgets it.
//! 3. A repeat of the knock just matched (retransmitted SYN) changes nothing.
//! 4. Any other watched packet resets the attempt, and is then evaluated as a possible first
//!    knock, so an immediate retry works.
//!
//! Packets to ports no door watches are ignored entirely; a TCP packet whose flags do not satisfy
//! a door's rule is ignored by that door (no advance, no reset).
//!
//! Time is passed in: `now_ms` is a monotonic millisecond clock (the matcher never lets it go
//! backwards), `unix_secs` the wall clock, used only by rotating doors.

mod table;
#[cfg(test)]
mod tests;

use crate::addr::IpNet;
use crate::proto::{Knock, Protocol};
use crate::rotate::{self, RotateError, RotatingSpec};
use crate::tcpflags::FlagRule;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
pub use table::MAX_TIMEOUT_MS;
use table::{Key, Table};

/// Attempts tracked by default (about 6.4 MB of table).
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Largest table accepted.
pub const MAX_CAPACITY: usize = 1 << 30;
/// Most knocks in a fixed sequence (knockd's limit).
pub const MAX_SEQUENCE: usize = 32;
/// Most doors one matcher handles.
pub const MAX_DOORS: usize = 1 << 16;

/// What a door listens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A fixed sequence of 1..=[`MAX_SEQUENCE`] knocks; repeats allowed.
    Fixed(Vec<Knock>),
    /// A sequence derived from a secret and the wall clock (see [`crate::rotate`]).
    Rotating(RotatingSpec),
    /// Matches nothing (a one-time-sequences door whose sequences are used up).
    Disabled,
}

/// One door's matching rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorRule {
    pub pattern: Pattern,
    /// Applied to TCP knocks only.
    pub flags: FlagRule,
    /// Time allowed from the first knock to the last, in milliseconds.
    pub timeout_ms: u64,
    /// If set, knocks must be addressed to this IP; otherwise to a local address.
    pub target: Option<IpAddr>,
    /// Sources allowed to knock; empty means anyone.
    pub from: Vec<IpNet>,
}

impl DoorRule {
    /// A rule with knockd's defaults: any flags, local destination, anyone may knock.
    pub fn new(pattern: Pattern, timeout_ms: u64) -> DoorRule {
        DoorRule {
            pattern,
            flags: FlagRule::ANY,
            timeout_ms,
            target: None,
            from: Vec::new(),
        }
    }
}

/// One captured packet, as the matcher needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Monotonic clock, milliseconds.
    pub now_ms: u64,
    /// Wall clock, seconds since the Unix epoch (rotating doors only).
    pub unix_secs: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Whether `dst` is one of the listening interface's addresses.
    pub dst_is_local: bool,
    pub knock: Knock,
    /// TCP flags byte (ignored for UDP).
    pub tcp_flags: u8,
}

/// What a packet (or the passing of time) did. `door` indexes the rules given to
/// [`Matcher::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The source reached `stage` (1-based) of the door's sequence: knockd's `Stage <n>`.
    Stage { src: IpAddr, door: usize, stage: u8 },
    /// The source completed the sequence: knockd's `OPEN SESAME`.
    Open { src: IpAddr, door: usize },
    /// The attempt ran out of time at `stage`: knockd's `sequence timeout (stage <n>)`.
    Timeout { src: IpAddr, door: usize, stage: u8 },
    /// A rotating sequence completed by a source other than the one that already opened the
    /// door with the same step's sequence: refused.
    Replay { src: IpAddr, door: usize },
}

/// Something the kernel filter must let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watch {
    Port(Knock),
    /// Every port `lo..=hi` of `proto` (a rotating door's range).
    Range {
        proto: Protocol,
        lo: u16,
        hi: u16,
    },
}

/// Counters for the daemon's status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Attempts currently tracked.
    pub tracked: usize,
    /// Most attempts the table holds.
    pub capacity: usize,
    /// Bytes of the table's arrays (fixed at construction).
    pub table_bytes: usize,
    /// Events given to [`Matcher::process`].
    pub packets: u64,
    /// Of those, events to ports no door watches.
    pub unwatched: u64,
    /// Sequences completed ([`Outcome::Open`]).
    pub completions: u64,
    /// Rotating sequences refused as replays.
    pub replays: u64,
    /// Attempts that ran out of time.
    pub timeouts: u64,
    /// Attempts dropped, oldest first, to make room in a full table.
    pub evictions: u64,
}

/// A rule the matcher cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error("door {door}: empty knock sequence")]
    EmptySequence { door: usize },
    #[error("door {door}: {len} knocks in the sequence, at most {MAX_SEQUENCE} allowed")]
    TooLong { door: usize, len: usize },
    #[error("door {door}: {source}")]
    Rotating { door: usize, source: RotateError },
    #[error("attempt table capacity {0} is out of range (1..={MAX_CAPACITY})")]
    Capacity(usize),
    #[error("{0} doors configured, at most {MAX_DOORS} supported")]
    TooManyDoors(usize),
    #[error(
        "door {door}: timeout of {timeout_ms} ms is longer than the {MAX_TIMEOUT_MS} ms supported"
    )]
    Timeout { door: usize, timeout_ms: u64 },
    #[error("no door {door} (there are {count})")]
    NoSuchDoor { door: usize, count: usize },
}

impl MatcherError {
    /// The index of the door the error is about, if it is about one.
    pub fn door(&self) -> Option<usize> {
        match self {
            MatcherError::EmptySequence { door }
            | MatcherError::TooLong { door, .. }
            | MatcherError::Rotating { door, .. }
            | MatcherError::Timeout { door, .. }
            | MatcherError::NoSuchDoor { door, .. } => Some(*door),
            MatcherError::Capacity(_) | MatcherError::TooManyDoors(_) => None,
        }
    }
}

/// The sequence matcher. See the module documentation for the rules.
pub struct Matcher {
    doors: Vec<Door>,
    table: Table,
    hasher: RandomState,
    /// One bit per (protocol, port): TCP ports 0..65536 then UDP ports.
    watch: Box<[u64]>,
    clock: u64,
    counters: Stats,
}

struct Door {
    kind: Kind,
    flags: FlagRule,
    target: Option<IpAddr>,
    from: Vec<IpNet>,
    timeout_ms: u64,
}

enum Kind {
    Fixed(Vec<Knock>),
    Rotating(Box<Rot>),
    Disabled,
}

/// A rotating door's cached sequences and replay memory.
struct Rot {
    spec: RotatingSpec,
    /// The step whose window (t-1, t, t+1) `seqs` holds; `None` before the first packet.
    t: Option<u64>,
    /// Sequences of steps t-1, t and t+1; empty when the step does not exist.
    seqs: [Vec<u16>; 3],
    /// Which source first opened the door with each recent step's sequence (steps >= t-2).
    openers: [Opener; 4],
}

#[derive(Clone, Copy, Default)]
struct Opener {
    used: bool,
    step: u64,
    addr: u128,
    v6: bool,
}

impl Door {
    #[inline]
    fn accepts(&self, ev: &Event) -> bool {
        if matches!(self.kind, Kind::Disabled) {
            return false;
        }
        let dst_ok = match self.target {
            Some(t) => t == ev.dst,
            None => ev.dst_is_local,
        };
        dst_ok
            && (self.from.is_empty() || self.from.iter().any(|n| n.contains(ev.src)))
            && (ev.knock.proto != Protocol::Tcp || self.flags.matches(ev.tcp_flags))
    }
}

fn build_kind(door: usize, pattern: Pattern) -> Result<Kind, MatcherError> {
    match pattern {
        Pattern::Fixed(seq) => {
            if seq.is_empty() {
                Err(MatcherError::EmptySequence { door })
            } else if seq.len() > MAX_SEQUENCE {
                Err(MatcherError::TooLong {
                    door,
                    len: seq.len(),
                })
            } else {
                Ok(Kind::Fixed(seq))
            }
        }
        Pattern::Rotating(spec) => {
            spec.validate()
                .map_err(|source| MatcherError::Rotating { door, source })?;
            let len = spec.length;
            Ok(Kind::Rotating(Box::new(Rot {
                spec,
                t: None,
                seqs: [
                    Vec::with_capacity(len),
                    Vec::with_capacity(len),
                    Vec::with_capacity(len),
                ],
                openers: [Opener::default(); 4],
            })))
        }
        Pattern::Disabled => Ok(Kind::Disabled),
    }
}

fn fill(spec: &RotatingSpec, step: Option<u64>, buf: &mut Vec<u16>) {
    match step {
        Some(s) => {
            if rotate::sequence_into(spec, s, buf).is_err() {
                buf.clear();
            }
        }
        None => buf.clear(),
    }
}

/// The step of candidate `c` (0, 1, 2) of an attempt begun at step `base`: base-1, base, base+1.
#[inline]
fn cand_step(base: u64, c: u32) -> Option<u64> {
    base.checked_add(u64::from(c))?.checked_sub(1)
}

impl Rot {
    /// Brings the cache to the step of `unix` and returns that step. Sequences are derived only
    /// when the step changes.
    fn refresh(&mut self, unix: u64) -> u64 {
        let t = rotate::current_step(unix, self.spec.step);
        if self.t == Some(t) {
            return t;
        }
        if self.t.and_then(|old| old.checked_add(1)) == Some(t) {
            self.seqs.rotate_left(1);
            fill(&self.spec, t.checked_add(1), &mut self.seqs[2]);
        } else {
            fill(&self.spec, t.checked_sub(1), &mut self.seqs[0]);
            fill(&self.spec, Some(t), &mut self.seqs[1]);
            fill(&self.spec, t.checked_add(1), &mut self.seqs[2]);
        }
        self.t = Some(t);
        for o in &mut self.openers {
            if o.used && o.step.saturating_add(2) < t {
                o.used = false;
            }
        }
        t
    }

    /// The sequence of step `s`, if `s` is in the current window.
    #[inline]
    fn seq(&self, s: u64) -> Option<&[u16]> {
        let idx = s.checked_add(1)?.checked_sub(self.t?)?;
        let v = self.seqs.get(usize::try_from(idx).ok()?)?;
        (v.len() == self.spec.length).then_some(v.as_slice())
    }

    /// Decides Open or Replay for a source completing the sequences of the steps in `mask`
    /// (relative to `base`), and remembers the opener.
    fn complete(&mut self, base: u64, mask: u8, addr: u128, v6: bool) -> bool {
        let mut unused = None;
        for c in 0..3 {
            if mask & (1 << c) == 0 {
                continue;
            }
            let Some(step) = cand_step(base, c) else {
                continue;
            };
            match self.openers.iter().find(|o| o.used && o.step == step) {
                Some(o) if o.addr == addr && o.v6 == v6 => return true,
                Some(_) => {}
                None => {
                    if unused.is_none() {
                        unused = Some(step);
                    }
                }
            }
        }
        let Some(step) = unused else {
            return false;
        };
        let t = self.t.unwrap_or(step);
        // A free record, else the one farthest from the current step (only after the wall
        // clock jumped).
        let mut pick = 0;
        let mut far = 0;
        for (i, o) in self.openers.iter().enumerate() {
            if !o.used {
                pick = i;
                break;
            }
            let d = o.step.abs_diff(t);
            if d >= far {
                far = d;
                pick = i;
            }
        }
        self.openers[pick] = Opener {
            used: true,
            step,
            addr,
            v6,
        };
        true
    }
}

#[inline]
fn split_ip(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

#[inline]
fn join_ip(addr: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(addr))
    } else {
        IpAddr::V4(Ipv4Addr::from(addr as u32))
    }
}

/// Per-door hash from the keyed source hash: a bijective mix, so (source, door) pairs collide
/// only as unpredictably as the keyed hash itself.
#[inline]
fn door_hash(h: u64, door: usize) -> u32 {
    let mut x = h ^ (door as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    (x >> 32) as u32
}

#[inline]
fn watch_index(k: Knock) -> usize {
    let base = match k.proto {
        Protocol::Tcp => 0,
        Protocol::Udp => 65_536,
    };
    base + usize::from(k.port)
}

/// Everything one door's step needs besides the door.
struct Cx<'a> {
    table: &'a mut Table,
    counters: &'a mut Stats,
    out: &'a mut Vec<Outcome>,
    now: u64,
    key: Key,
    hash: u32,
    src: IpAddr,
    knock: Knock,
    timeout_ms: u64,
}

impl Cx<'_> {
    #[inline]
    fn door(&self) -> usize {
        usize::from(self.key.door)
    }

    /// The source's live attempt on this door; an expired one is dropped with a Timeout.
    #[inline]
    fn lookup(&mut self) -> Option<u32> {
        let s = self.table.find(self.hash, self.key)?;
        if self.table.is_expired(s, self.now) {
            let stage = self.table.view(s).stage;
            self.out.push(Outcome::Timeout {
                src: self.src,
                door: self.door(),
                stage,
            });
            self.counters.timeouts += 1;
            self.table.remove(s);
            return None;
        }
        Some(s)
    }

    /// Starts an attempt at stage 1.
    fn start(&mut self, base_step: u64, cands: u8) {
        let expires_at = self.now.saturating_add(self.timeout_ms).saturating_add(1);
        if let Some((_, evicted)) = self
            .table
            .insert(self.hash, self.key, expires_at, 1, cands, base_step)
        {
            if evicted {
                self.counters.evictions += 1;
            }
            self.out.push(Outcome::Stage {
                src: self.src,
                door: self.door(),
                stage: 1,
            });
        }
    }

    fn open(&mut self) {
        self.counters.completions += 1;
        self.out.push(Outcome::Open {
            src: self.src,
            door: self.door(),
        });
    }

    fn fixed(&mut self, seq: &[Knock]) {
        let knock = self.knock;
        if let Some(s) = self.lookup() {
            let stage = usize::from(self.table.view(s).stage);
            if seq.get(stage) == Some(&knock) {
                if stage + 1 >= seq.len() {
                    self.table.remove(s);
                    self.open();
                } else {
                    let stage = stage as u8 + 1;
                    self.table.set_progress(s, stage, 0);
                    self.out.push(Outcome::Stage {
                        src: self.src,
                        door: self.door(),
                        stage,
                    });
                }
                return;
            }
            if stage >= 1 && seq.get(stage - 1) == Some(&knock) {
                return; // repeat of the knock just matched
            }
            self.table.remove(s); // wrong knock: reset, then evaluate as a first knock
        }
        if seq.first() == Some(&knock) {
            if seq.len() == 1 {
                self.open();
            } else {
                self.start(0, 0);
            }
        }
    }

    fn rotating(&mut self, rot: &mut Rot, unix_secs: u64) {
        let t = rot.refresh(unix_secs);
        let port = self.knock.port;
        let in_range = self.knock.proto == rot.spec.proto && rot.spec.in_range(port);
        let length = rot.spec.length;
        if let Some(s) = self.lookup() {
            let e = self.table.view(s);
            let base_step = self.table.base_step(s);
            let stage = usize::from(e.stage);
            let mut next = 0u8;
            let mut repeat = false;
            if in_range {
                for c in 0..3 {
                    if e.cands & (1 << c) == 0 {
                        continue;
                    }
                    let Some(seq) = cand_step(base_step, c).and_then(|st| rot.seq(st)) else {
                        continue;
                    };
                    if seq.get(stage) == Some(&port) {
                        next |= 1 << c;
                    } else if stage >= 1 && seq.get(stage - 1) == Some(&port) {
                        repeat = true;
                    }
                }
            }
            if next != 0 {
                if stage + 1 >= length {
                    self.table.remove(s);
                    self.finish(rot, base_step, next);
                } else {
                    let stage = e.stage + 1;
                    self.table.set_progress(s, stage, next);
                    self.out.push(Outcome::Stage {
                        src: self.src,
                        door: self.door(),
                        stage,
                    });
                }
                return;
            }
            if repeat {
                return;
            }
            self.table.remove(s);
        }
        if in_range {
            let mut mask = 0u8;
            for c in 0..3 {
                if let Some(seq) = cand_step(t, c).and_then(|st| rot.seq(st))
                    && seq.first() == Some(&port)
                {
                    mask |= 1 << c;
                }
            }
            if mask != 0 {
                if length == 1 {
                    self.finish(rot, t, mask);
                } else {
                    self.start(t, mask);
                }
            }
        }
    }

    fn finish(&mut self, rot: &mut Rot, base: u64, mask: u8) {
        if rot.complete(base, mask, self.key.addr, self.key.v6) {
            self.open();
        } else {
            self.counters.replays += 1;
            self.out.push(Outcome::Replay {
                src: self.src,
                door: self.door(),
            });
        }
    }
}

impl Matcher {
    /// Builds a matcher for `doors` with room for `capacity` attempts (see
    /// [`DEFAULT_CAPACITY`]); all memory is allocated here.
    pub fn new(doors: Vec<DoorRule>, capacity: usize) -> Result<Matcher, MatcherError> {
        if doors.len() > MAX_DOORS {
            return Err(MatcherError::TooManyDoors(doors.len()));
        }
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(MatcherError::Capacity(capacity));
        }
        let mut spans: Vec<u64> = Vec::new();
        let mut class_of = Vec::with_capacity(doors.len());
        let mut built = Vec::with_capacity(doors.len());
        for (d, rule) in doors.into_iter().enumerate() {
            if rule.timeout_ms > MAX_TIMEOUT_MS {
                return Err(MatcherError::Timeout {
                    door: d,
                    timeout_ms: rule.timeout_ms,
                });
            }
            let span = rule.timeout_ms.saturating_add(1);
            let class = match spans.iter().position(|&s| s == span) {
                Some(c) => c,
                None => {
                    spans.push(span);
                    spans.len() - 1
                }
            };
            class_of.push(class as u16);
            built.push(Door {
                kind: build_kind(d, rule.pattern)?,
                flags: rule.flags,
                target: rule.target,
                from: rule.from,
                timeout_ms: rule.timeout_ms,
            });
        }
        let mut m = Matcher {
            doors: built,
            table: Table::new(capacity, class_of, &spans),
            hasher: RandomState::new(),
            watch: vec![0u64; 2 * 65_536 / 64].into_boxed_slice(),
            clock: 0,
            counters: Stats::default(),
        };
        m.rebuild_watch();
        Ok(m)
    }

    /// Number of doors.
    pub fn door_count(&self) -> usize {
        self.doors.len()
    }

    fn rebuild_watch(&mut self) {
        self.watch.fill(0);
        for door in &self.doors {
            match &door.kind {
                Kind::Fixed(seq) => {
                    for &k in seq {
                        let i = watch_index(k);
                        self.watch[i / 64] |= 1 << (i % 64);
                    }
                }
                Kind::Rotating(rot) => {
                    for port in rot.spec.lo..=rot.spec.hi {
                        let i = watch_index(Knock::new(port, rot.spec.proto));
                        self.watch[i / 64] |= 1 << (i % 64);
                    }
                }
                Kind::Disabled => {}
            }
        }
    }

    /// Whether `k` is a knock port of any door (rotating ranges included).
    #[inline]
    pub fn watches(&self, k: Knock) -> bool {
        let i = watch_index(k);
        self.watch[i / 64] & (1 << (i % 64)) != 0
    }

    /// What the kernel filter must pass: each rotating range once (overlaps merged), then the
    /// fixed knocks not inside a range, sorted and without duplicates.
    pub fn watched(&self) -> Vec<Watch> {
        let mut ranges: Vec<(Protocol, u16, u16)> = self
            .doors
            .iter()
            .filter_map(|d| match &d.kind {
                Kind::Rotating(r) => Some((r.spec.proto, r.spec.lo, r.spec.hi)),
                _ => None,
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(Protocol, u16, u16)> = Vec::new();
        for (p, lo, hi) in ranges {
            match merged.last_mut() {
                Some((lp, _, lhi)) if *lp == p && u32::from(lo) <= u32::from(*lhi) + 1 => {
                    *lhi = (*lhi).max(hi);
                }
                _ => merged.push((p, lo, hi)),
            }
        }
        let mut ports: Vec<Knock> = self
            .doors
            .iter()
            .filter_map(|d| match &d.kind {
                Kind::Fixed(seq) => Some(seq.iter().copied()),
                _ => None,
            })
            .flatten()
            .filter(|k| {
                !merged
                    .iter()
                    .any(|&(p, lo, hi)| p == k.proto && lo <= k.port && k.port <= hi)
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let mut out: Vec<Watch> = merged
            .into_iter()
            .map(|(proto, lo, hi)| Watch::Range { proto, lo, hi })
            .collect();
        out.extend(ports.into_iter().map(Watch::Port));
        out
    }

    /// Feeds one packet; outcomes are appended to `out`. Does not allocate (except to grow
    /// `out`, and to derive a rotating door's sequences when its step changes).
    pub fn process(&mut self, ev: &Event, out: &mut Vec<Outcome>) {
        self.process_hashed(ev, None, out);
    }

    /// [`Matcher::process`] with the source's hash already computed (or not).
    fn process_hashed(&mut self, ev: &Event, src_hash: Option<u64>, out: &mut Vec<Outcome>) {
        self.counters.packets += 1;
        let now = self.clock.max(ev.now_ms);
        self.clock = now;
        if self.table.has_stale(now) {
            // Only if expire() was not called for days: keeps deadlines unambiguous.
            self.expire_until(now, table::STALE_MS, out);
        }
        if !self.watches(ev.knock) {
            self.counters.unwatched += 1;
            return;
        }
        let (addr, v6) = split_ip(ev.src);
        let mut src_hash = src_hash;
        let Matcher {
            doors,
            table,
            hasher,
            counters,
            ..
        } = self;
        for (d, door) in doors.iter_mut().enumerate() {
            if !door.accepts(ev) {
                continue;
            }
            let h = *src_hash.get_or_insert_with(|| hasher.hash_one((addr, v6)));
            let mut cx = Cx {
                table: &mut *table,
                counters: &mut *counters,
                out: &mut *out,
                now,
                key: Key {
                    addr,
                    v6,
                    door: d as u16,
                },
                hash: door_hash(h, d),
                src: ev.src,
                knock: ev.knock,
                timeout_ms: door.timeout_ms,
            };
            match &mut door.kind {
                Kind::Fixed(seq) => cx.fixed(seq),
                Kind::Rotating(rot) => cx.rotating(rot, ev.unix_secs),
                Kind::Disabled => {}
            }
        }
    }

    /// [`Matcher::process`] for several events, in order, with the same outcomes. With a large
    /// table each event's lookup is a cache miss; announcing every lookup of the batch to the
    /// CPU first lets those misses overlap instead of queueing one behind the other. The
    /// daemon hands over the frames of one capture wake-up this way.
    pub fn process_batch(&mut self, evs: &[Event], out: &mut Vec<Outcome>) {
        const CHUNK: usize = 64;
        let mut hashes = [None; CHUNK];
        for chunk in evs.chunks(CHUNK) {
            for (ev, slot) in chunk.iter().zip(hashes.iter_mut()) {
                *slot = None;
                if !self.watches(ev.knock) {
                    continue;
                }
                let h = self.hasher.hash_one(split_ip(ev.src));
                *slot = Some(h);
                for (d, door) in self.doors.iter().enumerate() {
                    if door.accepts(ev) {
                        self.table.prefetch(door_hash(h, d));
                    }
                }
            }
            for (ev, h) in chunk.iter().zip(hashes) {
                self.process_hashed(ev, h, out);
            }
        }
    }

    /// Drops every attempt whose deadline has passed at `now_ms`, with a Timeout outcome each.
    pub fn expire(&mut self, now_ms: u64, out: &mut Vec<Outcome>) {
        let now = self.clock.max(now_ms);
        self.clock = now;
        self.expire_until(now, 0, out);
    }

    /// Drops attempts whose deadline is at least `grace` ms before `now`.
    fn expire_until(&mut self, now: u64, grace: u64, out: &mut Vec<Outcome>) {
        let limit = now.saturating_sub(grace);
        while let Some(s) = self.table.first_expired(limit) {
            let e = self.table.view(s);
            out.push(Outcome::Timeout {
                src: join_ip(e.addr, e.v6),
                door: usize::from(e.door),
                stage: e.stage,
            });
            self.counters.timeouts += 1;
            self.table.remove(s);
        }
    }

    /// The earliest `now_ms` at which [`Matcher::expire`] will drop something.
    pub fn next_deadline(&self) -> Option<u64> {
        self.table.next_deadline()
    }

    /// Replaces a door's pattern (one-time sequences moving on, or running out) and forgets
    /// that door's attempts.
    pub fn set_pattern(&mut self, door: usize, pattern: Pattern) -> Result<(), MatcherError> {
        let count = self.doors.len();
        if door >= count {
            return Err(MatcherError::NoSuchDoor { door, count });
        }
        let kind = build_kind(door, pattern)?;
        self.table.remove_door(door as u16);
        self.doors[door].kind = kind;
        self.rebuild_watch();
        Ok(())
    }

    /// Carries the replay memory of rotating doors over from `old`, the matcher a reload
    /// replaces: each rotating door takes the openers of the first door of `old` with the same
    /// spec (same secret and parameters, hence the same sequences), wherever it sits in the
    /// list. Attempts in progress are not carried over.
    pub fn inherit_replay_memory(&mut self, old: &Matcher) {
        for door in &mut self.doors {
            let Kind::Rotating(rot) = &mut door.kind else {
                continue;
            };
            let prev = old.doors.iter().find_map(|d| match &d.kind {
                Kind::Rotating(o) if o.spec == rot.spec => Some(o),
                _ => None,
            });
            if let Some(o) = prev {
                rot.openers = o.openers;
            }
        }
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        Stats {
            tracked: self.table.len(),
            capacity: self.table.capacity(),
            table_bytes: self.table.footprint(),
            ..self.counters
        }
    }

    #[cfg(test)]
    fn check(&self) {
        self.table.check();
    }
}
