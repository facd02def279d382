//! The ruleset description built from a configuration, and the exact `nft` script text that
//! loads it. Everything here is pure (no kernel, no clock: the time-zone facts come in a
//! [`ScheduleClock`]) and unit-tested.
//!
//! ## Time in nftables
//!
//! - `meta hour` compares the time of day **in UTC** (the kernel computes it from the real-time
//!   clock with offset 0). `nft` converts the `"HH:MM"` it is given from its own local time
//!   zone to UTC *when the rule is loaded*, using the offset of that moment, and shows UTC
//!   values converted back to the local zone when listing.
//! - `meta day` compares the weekday in the **kernel's time zone** (`sys_tz`, set with
//!   `settimeofday`; usually 0 = UTC unless the hardware clock runs in local time), not
//!   converted by `nft`.
//!
//! So `nft`'s own conversion is wrong for windows near midnight whenever local time is not UTC
//! (the hour moves to the previous/next UTC day but the weekday does not). We therefore do the
//! conversion ourselves: every local window is turned into UTC pieces, cut where the UTC day or
//! the kernel's day changes, and written as `meta day` + `meta hour` in those frames; `nft` is
//! run with `TZ=UTC` so it does not shift the hours again. The result is exact for the offset
//! in force when the rules are loaded; [`GrantRuleset::reapply_at`] says when that offset
//! changes next (DST), at which point the daemon must load them again.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use knock_core::addr::IpNet;
use knock_core::config::{Config, NftChainRef, Trigger};
use knock_core::proto::{ProtoPort, Protocol};
use knock_core::schedule::{Schedule, Weekday};

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;

/// Priority of the base chain of knockd's own table: `filter - 10` (-10). See
/// `docs/nftables.md`: after conntrack (-200, so `ct state` is known) and after DNAT
/// (prerouting), just before the usual `filter` (0) chains.
pub const BASE_PRIORITY: &str = "filter - 10";

/// Default name of the table knockd owns.
pub const DEFAULT_TABLE: &str = "knockd";

/// Default maximum number of grants per address family.
pub const DEFAULT_SET_SIZE: u32 = 65_536;

/// Comment that marks knockd's jump rule in a user chain (`Nft_Chain` mode).
pub const JUMP_COMMENT: &str = "knockd";

/// Where knockd puts its sets and rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// knockd owns the table `inet NAME` (sets `grants4`, `grants6`, `protected`, base chain
    /// `input`).
    Table { name: String },
    /// `Nft_Chain`: sets `knockd_grants4`, `knockd_grants6`, `knockd_protected` and the
    /// regular chain `knockd_input` inside the user's table; one `jump knockd_input` rule at
    /// the top of the user's chain.
    UserChain(NftChainRef),
}

impl Target {
    /// The target the configuration asks for (`Nft_Chain` wins over `Nft_Table`).
    pub fn from_config(cfg: &Config) -> Target {
        match &cfg.options.nft_chain {
            Some(c) => Target::UserChain(c.clone()),
            None => Target::Table {
                name: cfg
                    .options
                    .nft_table
                    .clone()
                    .unwrap_or_else(|| DEFAULT_TABLE.to_string()),
            },
        }
    }

    /// Names of everything knockd creates for this target.
    pub fn names(&self) -> Names {
        match self {
            Target::Table { name } => Names {
                family: "inet".into(),
                table: name.clone(),
                chain: "input".into(),
                user_chain: None,
                set4: Some("grants4".into()),
                set6: Some("grants6".into()),
                protected: "protected".into(),
            },
            Target::UserChain(c) => Names {
                family: c.family.clone(),
                table: c.table.clone(),
                chain: "knockd_input".into(),
                user_chain: Some(c.chain.clone()),
                set4: (c.family != "ip6").then(|| "knockd_grants4".into()),
                set6: (c.family != "ip").then(|| "knockd_grants6".into()),
                protected: "knockd_protected".into(),
            },
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Table { name } => write!(f, "table inet {name}"),
            Target::UserChain(c) => write!(f, "chain {} {} {}", c.family, c.table, c.chain),
        }
    }
}

/// Names of knockd's objects for one [`Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub family: String,
    pub table: String,
    /// The chain holding knockd's rules (`input`, a base chain, or `knockd_input`, a regular
    /// chain jumped to from `user_chain`).
    pub chain: String,
    /// `Nft_Chain` mode: the user's chain that jumps to `chain`.
    pub user_chain: Option<String>,
    /// IPv4 grant set, absent for an `ip6` user table.
    pub set4: Option<String>,
    /// IPv6 grant set, absent for an `ip` user table.
    pub set6: Option<String>,
    pub protected: String,
}

impl Names {
    /// The grant set for this address family, if the target handles it.
    pub fn set_for(&self, addr: IpAddr) -> Option<&str> {
        match addr {
            IpAddr::V4(_) => self.set4.as_deref(),
            IpAddr::V6(_) => self.set6.as_deref(),
        }
    }
}

/// The time-zone facts a schedule conversion needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleClock {
    /// Local time minus UTC, in seconds, now (3600 for CET, -18000 for EST).
    pub utc_offset_secs: i32,
    /// The kernel's `sys_tz.tz_minuteswest` (minutes *west* of UTC, as `settimeofday` takes
    /// it): nf_tables computes `meta day` in that zone.
    pub kernel_minuteswest: i32,
    /// When `utc_offset_secs` changes next (DST), Unix seconds; `None` if never.
    pub valid_until: Option<i64>,
}

impl ScheduleClock {
    /// Local time is UTC and so is the kernel's zone.
    pub const UTC: ScheduleClock = ScheduleClock {
        utc_offset_secs: 0,
        kernel_minuteswest: 0,
        valid_until: None,
    };

    /// The host's facts now: the system time zone (`TZ` or `/etc/localtime`, via jiff) and the
    /// kernel's `sys_tz`.
    pub fn system() -> ScheduleClock {
        let tz = jiff::tz::TimeZone::system();
        let now = jiff::Timestamp::now();
        let offset = tz.to_offset(now).seconds();
        let valid_until = tz.following(now).next().map(|t| t.timestamp().as_second());
        ScheduleClock {
            utc_offset_secs: offset,
            kernel_minuteswest: kernel_minuteswest(),
            valid_until,
        }
    }
}

/// The kernel's `sys_tz.tz_minuteswest` (0 if it cannot be read).
pub fn kernel_minuteswest() -> i32 {
    #[repr(C)]
    struct KernelTz {
        minuteswest: libc::c_int,
        dsttime: libc::c_int,
    }
    let mut tz = KernelTz {
        minuteswest: 0,
        dsttime: 0,
    };
    // SAFETY: gettimeofday(2) with a NULL timeval and a valid struct timezone.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_gettimeofday,
            std::ptr::null_mut::<libc::timeval>(),
            &mut tz as *mut KernelTz,
        )
    };
    let _ = tz.dsttime;
    if rc == 0 { tz.minuteswest } else { 0 }
}

/// A time slot in the kernel's frames: `meta day` in `days` (bit n = weekday n, Monday = 0,
/// in the kernel's zone) and `meta hour` from `first_sec` to `last_sec` inclusive (seconds of
/// the UTC day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeSlot {
    pub first_sec: u32,
    pub last_sec: u32,
    pub days: u8,
}

impl TimeSlot {
    /// Whether the slot matches a kernel weekday (Monday = 0) and UTC second of the day.
    pub fn matches(&self, kernel_day: u8, utc_sec: u32) -> bool {
        self.days & (1 << kernel_day) != 0 && (self.first_sec..=self.last_sec).contains(&utc_sec)
    }
}

/// Converts a local-time schedule into kernel slots (see the module documentation).
pub fn kernel_slots(schedule: &Schedule, clock: &ScheduleClock) -> Vec<TimeSlot> {
    let off = i64::from(clock.utc_offset_secs);
    // The kernel's weekday at UTC instant u is the weekday of u + k.
    let k = -i64::from(clock.kernel_minuteswest) * 60;
    // 1. UTC intervals [a, b) in seconds of the UTC week (0 = Monday 00:00 UTC).
    let mut ivs: Vec<(i64, i64)> = Vec::new();
    for w in &schedule.windows {
        let (start, end) = (i64::from(w.start) * 60, i64::from(w.end) * 60);
        let len = if w.wraps() {
            end + DAY - start
        } else {
            end - start
        };
        for d in 0..7i64 {
            if w.days & (1 << d) == 0 {
                continue;
            }
            let a = (d * DAY + start - off).rem_euclid(WEEK);
            let b = a + len;
            if b <= WEEK {
                ivs.push((a, b));
            } else {
                ivs.push((a, WEEK));
                ivs.push((0, b - WEEK));
            }
        }
    }
    // 2. Union.
    ivs.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (a, b) in ivs {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    // 3. Cut at UTC midnights and at the kernel zone's midnights.
    let mut cuts: BTreeSet<i64> = BTreeSet::new();
    for j in 0..=7 {
        cuts.insert(j * DAY);
        cuts.insert((j * DAY - k).rem_euclid(WEEK));
    }
    cuts.insert(WEEK);
    let mut slots: Vec<TimeSlot> = Vec::new();
    for (a, b) in merged {
        let mut x = a;
        while x < b {
            let y = cuts.range(x + 1..).next().copied().unwrap_or(WEEK).min(b);
            let kday = ((x + k).rem_euclid(WEEK) / DAY) as u8;
            let first = (x % DAY) as u32;
            let last = ((y - 1) % DAY) as u32;
            match slots
                .iter_mut()
                .find(|s| s.first_sec == first && s.last_sec == last)
            {
                Some(s) => s.days |= 1 << kday,
                None => slots.push(TimeSlot {
                    first_sec: first,
                    last_sec: last,
                    days: 1 << kday,
                }),
            }
            x = y;
        }
    }
    slots.sort_unstable();
    slots
}

/// A scheduled door: open for `sources` (all if empty) to `ports` during `slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRule {
    pub door: String,
    pub sources: Vec<IpNet>,
    pub ports: Vec<ProtoPort>,
    pub slots: Vec<TimeSlot>,
}

/// What knockd loads into nftables: the protected ports and the scheduled doors. Grants are
/// not part of it (they live in the sets and survive re-applying).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantRuleset {
    /// Every `open =` port of every door: dropped unless granted, scheduled or established.
    pub protected: BTreeSet<ProtoPort>,
    pub scheduled: Vec<ScheduledRule>,
    /// When the schedule conversion stops being exact (the next UTC offset change), Unix
    /// seconds: apply the ruleset again then. `None` without scheduled doors or DST.
    pub reapply_at: Option<i64>,
}

/// Whether any door needs nftables (has `open =`).
pub fn needs_grants(cfg: &Config) -> bool {
    cfg.doors.iter().any(|d| !d.open.is_empty())
}

impl GrantRuleset {
    /// Builds the ruleset of a configuration, converting schedules with `clock`.
    pub fn from_config(cfg: &Config, clock: &ScheduleClock) -> GrantRuleset {
        let mut rs = GrantRuleset::default();
        for door in &cfg.doors {
            rs.protected.extend(door.open.iter().copied());
            let (Trigger::Schedule, Some(schedule)) = (&door.trigger, &door.schedule) else {
                continue;
            };
            if door.open.is_empty() {
                continue;
            }
            rs.scheduled.push(ScheduledRule {
                door: door.name.clone(),
                sources: normalize_sources(&door.from),
                ports: dedup_ports(&door.open),
                slots: kernel_slots(schedule, clock),
            });
        }
        if !rs.scheduled.is_empty() {
            rs.reapply_at = clock.valid_until;
        }
        rs
    }
}

fn dedup_ports(p: &[ProtoPort]) -> Vec<ProtoPort> {
    p.iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Sorts, removes duplicates and networks contained in another one (nft refuses overlapping
/// intervals in an anonymous set).
pub fn normalize_sources(from: &[IpNet]) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = from.to_vec();
    v.sort_by_key(|n| (n.addr().is_ipv6(), n.prefix(), n.addr()));
    let mut out: Vec<IpNet> = Vec::new();
    for n in v {
        if !out
            .iter()
            .any(|o| o.prefix() <= n.prefix() && o.contains(n.addr()))
        {
            out.push(n);
        }
    }
    out.sort_by_key(|n| (n.addr().is_ipv6(), n.addr(), n.prefix()));
    out
}

fn net_text(n: &IpNet) -> String {
    let full = if n.addr().is_ipv4() { 32 } else { 128 };
    if n.prefix() == full {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

fn hhmm(sec: u32) -> String {
    let (h, m, s) = (sec / 3600, sec / 60 % 60, sec % 60);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

fn days_text(days: u8) -> Option<String> {
    if days & 0x7f == 0x7f {
        return None;
    }
    let names: Vec<String> = (0..7u8)
        .filter(|d| days & (1 << d) != 0)
        .filter_map(Weekday::from_monday0)
        .map(|d| format!("\"{}\"", d.long_name()))
        .collect();
    Some(if names.len() == 1 {
        format!("meta day {}", names[0])
    } else {
        format!("meta day {{ {} }}", names.join(", "))
    })
}

fn slot_text(s: &TimeSlot) -> String {
    let mut parts = Vec::new();
    if let Some(d) = days_text(s.days) {
        parts.push(d);
    }
    if !(s.first_sec == 0 && s.last_sec == DAY as u32 - 1) {
        parts.push(format!(
            "meta hour \"{}\"-\"{}\"",
            hhmm(s.first_sec),
            hhmm(s.last_sec)
        ));
    }
    parts.join(" ")
}

fn ports_text(ports: &[ProtoPort]) -> String {
    let items: Vec<String> = ports
        .iter()
        .map(|p| format!("{} . {}", p.proto, p.port))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// A door name made safe for an nft comment string.
fn comment_text(door: &str) -> String {
    let clean: String = door
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " _-.:/@+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(96)
        .collect();
    format!("knockd door [{clean}]")
}

/// The rule bodies (without `add rule FAMILY TABLE CHAIN`) of one scheduled door.
fn scheduled_rules(rule: &ScheduledRule, names: &Names) -> Vec<String> {
    let ports = format!("meta l4proto . th dport {}", ports_text(&rule.ports));
    let comment = format!("comment \"{}\"", comment_text(&rule.door));
    // Source matches, one per address family the target handles.
    let mut sources: Vec<Option<String>> = Vec::new();
    if rule.sources.is_empty() {
        sources.push(None);
    } else {
        for (v6, kw, handled) in [
            (false, "ip", names.set4.is_some()),
            (true, "ip6", names.set6.is_some()),
        ] {
            let nets: Vec<&IpNet> = rule
                .sources
                .iter()
                .filter(|n| n.addr().is_ipv6() == v6)
                .collect();
            if nets.is_empty() || !handled {
                continue;
            }
            if nets.iter().any(|n| n.prefix() == 0) {
                let p = if v6 { "ipv6" } else { "ipv4" };
                sources.push(Some(format!("meta nfproto {p}")));
            } else {
                let list: Vec<String> = nets.iter().map(|n| net_text(n)).collect();
                sources.push(Some(format!("{kw} saddr {{ {} }}", list.join(", "))));
            }
        }
    }
    let mut out = Vec::new();
    for src in &sources {
        for slot in &rule.slots {
            let mut parts: Vec<&str> = Vec::new();
            if let Some(s) = src {
                parts.push(s);
            }
            parts.push(&ports);
            let time = slot_text(slot);
            if !time.is_empty() {
                parts.push(&time);
            }
            parts.push("accept");
            parts.push(&comment);
            out.push(parts.join(" "));
        }
    }
    out
}

fn set_decl(kind: &str, size: u32) -> String {
    format!("{{ type {kind} . inet_proto . inet_service; flags timeout; size {size}; }}")
}

const PROTECTED_DECL: &str = "{ type inet_proto . inet_service; }";

/// The body of knockd's rule chain, in order.
pub fn chain_rules(target: &Target, rs: &GrantRuleset) -> Vec<String> {
    let n = target.names();
    let fast = match target {
        Target::Table { .. } => "accept",
        Target::UserChain(_) => "return",
    };
    let mut rules = vec![
        format!("meta l4proto . th dport != @{} {fast}", n.protected),
        "ct state established,related accept".to_string(),
        "iif \"lo\" accept".to_string(),
    ];
    if let Some(s) = &n.set4 {
        rules.push(format!("ip saddr . meta l4proto . th dport @{s} accept"));
    }
    if let Some(s) = &n.set6 {
        rules.push(format!("ip6 saddr . meta l4proto . th dport @{s} accept"));
    }
    for r in &rs.scheduled {
        rules.extend(scheduled_rules(r, &n));
    }
    rules.push("counter drop".to_string());
    rules
}

/// The `nft -f` script that creates or updates knockd's objects without touching grant
/// elements. `stale_jumps` are the handles of knockd jump rules already in the user chain
/// (`Nft_Chain` mode): they are replaced by one fresh jump at the top.
pub fn render_apply(
    target: &Target,
    rs: &GrantRuleset,
    set_size: u32,
    stale_jumps: &[u64],
) -> String {
    let n = target.names();
    let (f, t) = (&n.family, &n.table);
    let mut s = String::new();
    let _ = writeln!(s, "# knockd ruleset for {target} (loaded with TZ=UTC)");
    if matches!(target, Target::Table { .. }) {
        let _ = writeln!(s, "add table {f} {t}");
    }
    if let Some(set) = &n.set4 {
        let _ = writeln!(
            s,
            "add set {f} {t} {set} {}",
            set_decl("ipv4_addr", set_size)
        );
    }
    if let Some(set) = &n.set6 {
        let _ = writeln!(
            s,
            "add set {f} {t} {set} {}",
            set_decl("ipv6_addr", set_size)
        );
    }
    let p = &n.protected;
    let _ = writeln!(s, "add set {f} {t} {p} {PROTECTED_DECL}");
    let _ = writeln!(s, "flush set {f} {t} {p}");
    if !rs.protected.is_empty() {
        let items: Vec<ProtoPort> = rs.protected.iter().copied().collect();
        let _ = writeln!(s, "add element {f} {t} {p} {}", ports_text(&items));
    }
    let c = &n.chain;
    match target {
        Target::Table { .. } => {
            // Re-create the base chain so its hook, priority and policy are always ours.
            let def =
                format!("{{ type filter hook input priority {BASE_PRIORITY}; policy accept; }}");
            let _ = writeln!(s, "add chain {f} {t} {c} {def}");
            let _ = writeln!(s, "delete chain {f} {t} {c}");
            let _ = writeln!(s, "add chain {f} {t} {c} {def}");
        }
        Target::UserChain(_) => {
            let _ = writeln!(s, "add chain {f} {t} {c}");
            let _ = writeln!(s, "flush chain {f} {t} {c}");
        }
    }
    for r in chain_rules(target, rs) {
        let _ = writeln!(s, "add rule {f} {t} {c} {r}");
    }
    if let Some(uc) = &n.user_chain {
        for h in stale_jumps {
            let _ = writeln!(s, "delete rule {f} {t} {uc} handle {h}");
        }
        let _ = writeln!(
            s,
            "insert rule {f} {t} {uc} jump {c} comment \"{JUMP_COMMENT}\""
        );
    }
    s
}

/// The `nft -f` script that removes everything knockd created (and with it every grant).
pub fn render_teardown(target: &Target, set_size: u32, jumps: &[u64]) -> String {
    let n = target.names();
    let (f, t) = (&n.family, &n.table);
    let mut s = String::new();
    let _ = writeln!(s, "# remove knockd's objects from {target}");
    match target {
        Target::Table { .. } => {
            let _ = writeln!(s, "add table {f} {t}");
            let _ = writeln!(s, "delete table {f} {t}");
        }
        Target::UserChain(_) => {
            if let Some(uc) = &n.user_chain {
                for h in jumps {
                    let _ = writeln!(s, "delete rule {f} {t} {uc} handle {h}");
                }
            }
            let c = &n.chain;
            let _ = writeln!(s, "add chain {f} {t} {c}");
            let _ = writeln!(s, "delete chain {f} {t} {c}");
            for (set, kind) in [(&n.set4, "ipv4_addr"), (&n.set6, "ipv6_addr")] {
                if let Some(set) = set {
                    let _ = writeln!(s, "add set {f} {t} {set} {}", set_decl(kind, set_size));
                    let _ = writeln!(s, "delete set {f} {t} {set}");
                }
            }
            let p = &n.protected;
            let _ = writeln!(s, "add set {f} {t} {p} {PROTECTED_DECL}");
            let _ = writeln!(s, "delete set {f} {t} {p}");
        }
    }
    s
}

/// Handles of knockd's jump rules in the output of `nft -a list chain ...`.
pub fn find_jump_handles(listing: &str, chain: &str) -> Vec<u64> {
    let needle = format!("jump {chain}");
    listing
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| format!("{} {}", w[0], w[1]) == needle)
        })
        .filter_map(|l| {
            let (_, h) = l.rsplit_once("# handle ")?;
            h.trim().parse().ok()
        })
        .collect()
}

/// The kernel key of a grant element: address, protocol and port, each field padded to 4
/// bytes as nf_tables lays out concatenations (`ipv4_addr . inet_proto . inet_service`).
pub fn element_key(addr: IpAddr, pp: ProtoPort) -> Vec<u8> {
    let mut k = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    k.extend_from_slice(&[pp.proto.ip_number(), 0, 0, 0]);
    k.extend_from_slice(&pp.port.to_be_bytes());
    k.extend_from_slice(&[0, 0]);
    k
}

/// The inverse of [`element_key`]; `None` for keys we did not write.
pub fn parse_element_key(k: &[u8]) -> Option<(IpAddr, ProtoPort)> {
    let (addr, rest): (IpAddr, &[u8]) = match k.len() {
        12 => {
            let a: [u8; 4] = k[..4].try_into().ok()?;
            (IpAddr::from(a), &k[4..])
        }
        24 => {
            let a: [u8; 16] = k[..16].try_into().ok()?;
            (IpAddr::from(a), &k[16..])
        }
        _ => return None,
    };
    let proto = match rest[0] {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        _ => return None,
    };
    let port = u16::from_be_bytes([rest[4], rest[5]]);
    Some((addr, ProtoPort { proto, port }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_core::schedule::parse_schedule;

    fn conf(text: &str) -> Config {
        knock_core::config::parse(text, "test.conf").unwrap()
    }

    /// Brute force: is the schedule open at this UTC instant (seconds since a Monday 00:00 UTC)
    /// according to the local-time semantics, and according to the kernel slots?
    fn check_equivalent(sched: &str, clock: ScheduleClock) {
        let s = parse_schedule(sched).unwrap();
        let slots = kernel_slots(&s, &clock);
        let off = i64::from(clock.utc_offset_secs);
        let k = -i64::from(clock.kernel_minuteswest) * 60;
        for u in (0..WEEK).step_by(60) {
            let local = (u + off).rem_euclid(WEEK);
            let day = Weekday::from_monday0((local / DAY) as u8).unwrap();
            let minute = ((local % DAY) / 60) as u16;
            let want = s.is_open(day, minute);
            let kday = ((u + k).rem_euclid(WEEK) / DAY) as u8;
            let got = slots.iter().any(|sl| sl.matches(kday, (u % DAY) as u32));
            assert_eq!(
                want, got,
                "{sched} with {clock:?}: at UTC week second {u} local {day} minute {minute}: \
                 schedule says {want}, slots {slots:?} say {got}"
            );
        }
    }

    #[test]
    fn slots_match_local_semantics_in_many_zones() {
        let scheds = [
            "Mon-Fri 09:50-19:10",
            "Fri 22:00-02:00",
            "sat,Sunday 10:00-12:00; Fri-Mon 22:00-02:00",
            "* 00:00-24:00",
            "Sun 23:30-00:30",
            "Mon 00:00-01:00; Mon 00:30-02:00",
            "Wed 12:00-11:59",
        ];
        let offsets = [
            0,
            3600,
            7200,
            -5 * 3600,
            19800,
            -12 * 3600,
            14 * 3600,
            5 * 3600 + 2700,
        ];
        let kernels = [0, -60, 300, -330];
        for s in scheds {
            for off in offsets {
                for kmw in kernels {
                    check_equivalent(
                        s,
                        ScheduleClock {
                            utc_offset_secs: off,
                            kernel_minuteswest: kmw,
                            valid_until: None,
                        },
                    );
                }
            }
        }
    }

    #[test]
    fn slots_utc_and_shifted() {
        let s = parse_schedule("Mon-Fri 09:00-17:00").unwrap();
        assert_eq!(
            kernel_slots(&s, &ScheduleClock::UTC),
            vec![TimeSlot {
                first_sec: 9 * 3600,
                last_sec: 17 * 3600 - 1,
                days: 0b0011111
            }]
        );
        // Monday 01:00-02:00 in UTC+2 is Sunday 23:00-24:00 UTC.
        let s = parse_schedule("Mon 01:00-02:00").unwrap();
        let clock = ScheduleClock {
            utc_offset_secs: 7200,
            ..ScheduleClock::UTC
        };
        assert_eq!(
            kernel_slots(&s, &clock),
            vec![TimeSlot {
                first_sec: 23 * 3600,
                last_sec: DAY as u32 - 1,
                days: 1 << 6
            }]
        );
        // The whole week: one slot with no condition.
        let s = parse_schedule("* 00:00-24:00").unwrap();
        let all = kernel_slots(&s, &clock);
        assert_eq!(
            all,
            vec![TimeSlot {
                first_sec: 0,
                last_sec: DAY as u32 - 1,
                days: 0x7f
            }]
        );
        assert_eq!(slot_text(&all[0]), "");
    }

    const CONF: &str = "\
[options]
  logfile = /dev/null
[ssh]
  sequence = 7000,8000,9000
  open = tcp/22
  open_timeout = 30
[office]
  schedule = Mon-Fri 09:00-17:00; Sat 22:00-02:00
  from = 198.18.1.0/24, 198.18.1.7, 2001:2::/48
  open = tcp/8080, udp/5353
";

    #[test]
    fn ruleset_from_config() {
        let rs = GrantRuleset::from_config(&conf(CONF), &ScheduleClock::UTC);
        let pp = |s| knock_core::proto::parse_proto_port(s).unwrap();
        assert_eq!(
            rs.protected.iter().copied().collect::<Vec<_>>(),
            vec![pp("tcp/22"), pp("tcp/8080"), pp("udp/5353")]
        );
        assert_eq!(rs.scheduled.len(), 1);
        let r = &rs.scheduled[0];
        assert_eq!(r.door, "office");
        // 198.18.1.7 is inside 198.18.1.0/24: dropped.
        assert_eq!(
            r.sources.iter().map(net_text).collect::<Vec<_>>(),
            vec!["198.18.1.0/24", "2001:2::/48"]
        );
        assert_eq!(rs.reapply_at, None);
        let mut c = ScheduleClock::UTC;
        c.valid_until = Some(1_800_000_000);
        assert_eq!(
            GrantRuleset::from_config(&conf(CONF), &c).reapply_at,
            Some(1_800_000_000)
        );
        // Without scheduled doors there is nothing to re-apply.
        let plain = conf("[ssh]\n sequence = 1,2\n open = tcp/22\n");
        assert_eq!(GrantRuleset::from_config(&plain, &c).reapply_at, None);
        assert!(needs_grants(&plain));
        assert!(!needs_grants(&conf(
            "[x]\n sequence = 1,2\n command = true\n"
        )));
    }

    #[test]
    fn script_for_own_table() {
        let cfg = conf(CONF);
        let target = Target::from_config(&cfg);
        assert_eq!(
            target,
            Target::Table {
                name: "knockd".into()
            }
        );
        let rs = GrantRuleset::from_config(&cfg, &ScheduleClock::UTC);
        let script = render_apply(&target, &rs, DEFAULT_SET_SIZE, &[]);
        let want = r#"# knockd ruleset for table inet knockd (loaded with TZ=UTC)
add table inet knockd
add set inet knockd grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; size 65536; }
add set inet knockd grants6 { type ipv6_addr . inet_proto . inet_service; flags timeout; size 65536; }
add set inet knockd protected { type inet_proto . inet_service; }
flush set inet knockd protected
add element inet knockd protected { tcp . 22, tcp . 8080, udp . 5353 }
add chain inet knockd input { type filter hook input priority filter - 10; policy accept; }
delete chain inet knockd input
add chain inet knockd input { type filter hook input priority filter - 10; policy accept; }
add rule inet knockd input meta l4proto . th dport != @protected accept
add rule inet knockd input ct state established,related accept
add rule inet knockd input iif "lo" accept
add rule inet knockd input ip saddr . meta l4proto . th dport @grants4 accept
add rule inet knockd input ip6 saddr . meta l4proto . th dport @grants6 accept
add rule inet knockd input ip saddr { 198.18.1.0/24 } meta l4proto . th dport { tcp . 8080, udp . 5353 } meta day "Sunday" meta hour "00:00"-"01:59:59" accept comment "knockd door [office]"
add rule inet knockd input ip saddr { 198.18.1.0/24 } meta l4proto . th dport { tcp . 8080, udp . 5353 } meta day { "Monday", "Tuesday", "Wednesday", "Thursday", "Friday" } meta hour "09:00"-"16:59:59" accept comment "knockd door [office]"
add rule inet knockd input ip saddr { 198.18.1.0/24 } meta l4proto . th dport { tcp . 8080, udp . 5353 } meta day "Saturday" meta hour "22:00"-"23:59:59" accept comment "knockd door [office]"
add rule inet knockd input ip6 saddr { 2001:2::/48 } meta l4proto . th dport { tcp . 8080, udp . 5353 } meta day "Sunday" meta hour "00:00"-"01:59:59" accept comment "knockd door [office]"
add rule inet knockd input ip6 saddr { 2001:2::/48 } meta l4proto . th dport { tcp . 8080, udp . 5353 } meta day { "Monday", "Tuesday", "Wednesday", "Thursday", "Friday" } meta hour "09:00"-"16:59:59" accept comment "knockd door [office]"
add rule inet knockd input ip6 saddr { 2001:2::/48 } meta l4proto . th dport { tcp . 8080, udp . 5353 } meta day "Saturday" meta hour "22:00"-"23:59:59" accept comment "knockd door [office]"
add rule inet knockd input counter drop
"#;
        assert_eq!(script, want, "got:\n{script}");
    }

    #[test]
    fn script_for_user_chain_and_teardown() {
        let cfg = conf(
            "[options]\n nft_chain = ip filter input\n nft_cleanup = yes\n\
             [ssh]\n sequence = 1,2\n open = tcp/22\n\
             [web]\n schedule = * 08:00-20:00\n open = tcp/80\n",
        );
        let target = Target::from_config(&cfg);
        let rs = GrantRuleset::from_config(&cfg, &ScheduleClock::UTC);
        let script = render_apply(&target, &rs, 100, &[7, 9]);
        let want = r#"# knockd ruleset for chain ip filter input (loaded with TZ=UTC)
add set ip filter knockd_grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; size 100; }
add set ip filter knockd_protected { type inet_proto . inet_service; }
flush set ip filter knockd_protected
add element ip filter knockd_protected { tcp . 22, tcp . 80 }
add chain ip filter knockd_input
flush chain ip filter knockd_input
add rule ip filter knockd_input meta l4proto . th dport != @knockd_protected return
add rule ip filter knockd_input ct state established,related accept
add rule ip filter knockd_input iif "lo" accept
add rule ip filter knockd_input ip saddr . meta l4proto . th dport @knockd_grants4 accept
add rule ip filter knockd_input meta l4proto . th dport { tcp . 80 } meta hour "08:00"-"19:59:59" accept comment "knockd door [web]"
add rule ip filter knockd_input counter drop
delete rule ip filter input handle 7
delete rule ip filter input handle 9
insert rule ip filter input jump knockd_input comment "knockd"
"#;
        assert_eq!(script, want, "got:\n{script}");
        let td = render_teardown(&target, 100, &[12]);
        let want = r#"# remove knockd's objects from chain ip filter input
delete rule ip filter input handle 12
add chain ip filter knockd_input
delete chain ip filter knockd_input
add set ip filter knockd_grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; size 100; }
delete set ip filter knockd_grants4
add set ip filter knockd_protected { type inet_proto . inet_service; }
delete set ip filter knockd_protected
"#;
        assert_eq!(td, want, "got:\n{td}");
        assert_eq!(
            render_teardown(&Target::Table { name: "k".into() }, 1, &[]),
            "# remove knockd's objects from table inet k\nadd table inet k\ndelete table inet k\n"
        );
    }

    #[test]
    fn odd_sources_and_names() {
        let cfg = conf(
            "[options]\n nft_table = mine\n[w]\n schedule = Tue 10:00-11:00\n from = 0.0.0.0/0\n open = udp/53\n\
             [x\"y]\n schedule = Tue 10:00-11:00\n open = udp/54\n",
        );
        let target = Target::from_config(&cfg);
        assert_eq!(target.to_string(), "table inet mine");
        let rs = GrantRuleset::from_config(&cfg, &ScheduleClock::UTC);
        let rules = chain_rules(&target, &rs);
        assert!(rules.contains(
            &"meta nfproto ipv4 meta l4proto . th dport { udp . 53 } meta day \"Tuesday\" meta hour \"10:00\"-\"10:59:59\" accept comment \"knockd door [w]\"".to_string()
        ), "{rules:#?}");
        assert!(
            rules
                .iter()
                .any(|r| r.ends_with("comment \"knockd door [x_y]\"")),
            "{rules:#?}"
        );
    }

    #[test]
    fn jump_handles() {
        let listing = "table inet filter {\n\tchain input { # handle 1\n\t\ttype filter hook input priority filter; policy drop;\n\t\tjump knockd_input comment \"knockd\" # handle 4\n\t\tct state established accept # handle 2\n\t\tjump knockd_input_other # handle 5\n\t\tjump knockd_input # handle 6\n\t}\n}\n";
        assert_eq!(find_jump_handles(listing, "knockd_input"), vec![4, 6]);
        assert_eq!(find_jump_handles("", "knockd_input"), Vec::<u64>::new());
    }

    #[test]
    fn keys_roundtrip() {
        let pp = ProtoPort {
            proto: Protocol::Tcp,
            port: 22,
        };
        let a: IpAddr = "198.18.1.2".parse().unwrap();
        let k = element_key(a, pp);
        assert_eq!(k, vec![198, 18, 1, 2, 6, 0, 0, 0, 0, 22, 0, 0]);
        assert_eq!(parse_element_key(&k), Some((a, pp)));
        let b: IpAddr = "2001:2:0:1::2".parse().unwrap();
        let pu = ProtoPort {
            proto: Protocol::Udp,
            port: 0x1234,
        };
        let k6 = element_key(b, pu);
        assert_eq!(k6.len(), 24);
        assert_eq!(&k6[16..], &[17, 0, 0, 0, 0x12, 0x34, 0, 0]);
        assert_eq!(parse_element_key(&k6), Some((b, pu)));
        assert_eq!(parse_element_key(&[1, 2, 3]), None);
        let mut bad = k.clone();
        bad[4] = 1;
        assert_eq!(parse_element_key(&bad), None);
    }
}
