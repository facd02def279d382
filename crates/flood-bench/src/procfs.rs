//! Reading a process from the outside: CPU time, memory, and the kernel's counters of its
//! packet sockets.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Clock ticks per second for /proc/PID/stat times.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime (in ticks) from the text of /proc/PID/stat. The command name may contain
/// spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Result<u64, String> {
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| format!("/proc stat line without ')': {stat:?}"))?;
    // After ')': field 3 (state) is index 0, so utime (field 14) is index 11, stime index 12.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize, name: &str| -> Result<u64, String> {
        f.get(i)
            .ok_or_else(|| format!("/proc stat line has no {name} field: {stat:?}"))?
            .parse::<u64>()
            .map_err(|_| format!("/proc stat line: {name} field {:?} is not a number", f[i]))
    };
    Ok(get(11, "utime")? + get(12, "stime")?)
}

/// CPU seconds (user + system, all threads) used so far by `pid`.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let p = format!("/proc/{pid}/stat");
    let s = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
    Ok(parse_stat_cpu_ticks(&s)? as f64 / clk_tck())
}

/// A `Key:   N kB` value (in kB) from the text of /proc/PID/status.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Memory of a process, in kB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

/// VmRSS and VmHWM of `pid`.
pub fn mem(pid: u32) -> Result<Mem, String> {
    let p = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
    Ok(Mem {
        rss_kb: parse_status_kb(&s, "VmRSS").ok_or_else(|| format!("{p}: no VmRSS"))?,
        hwm_kb: parse_status_kb(&s, "VmHWM").ok_or_else(|| format!("{p}: no VmHWM"))?,
    })
}

/// Inodes of the packet sockets listed in the text of /proc/PID/net/packet.
pub fn parse_packet_inodes(table: &str) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(8)?.parse().ok())
        .collect()
}

/// Kernel counters of packet sockets (`PACKET_STATISTICS`): packets queued to the socket and
/// packets dropped because its buffer/ring was full. Reading them resets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockStats {
    /// Packets that passed the socket's filter and were queued for the process.
    pub received: u64,
    /// Packets that passed the filter but were dropped (buffer or ring full).
    pub dropped: u64,
}

/// Duplicates of another process's packet sockets (via `pidfd_getfd(2)`, needs root), to read
/// their kernel counters. The process never notices, except that the counters are reset on
/// each read: do not use on a process that reads them itself (libpcap's `pcap_stats`).
#[derive(Debug)]
pub struct PacketSockets {
    fds: Vec<OwnedFd>,
}

impl PacketSockets {
    /// Finds the packet sockets of `pid`.
    pub fn of(pid: u32) -> Result<PacketSockets, String> {
        let tp = format!("/proc/{pid}/net/packet");
        let table = std::fs::read_to_string(&tp).map_err(|e| format!("{tp}: {e}"))?;
        let inodes = parse_packet_inodes(&table);
        let dir = format!("/proc/{pid}/fd");
        let mut targets = Vec::new();
        for ent in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
            let Ok(ent) = ent else { continue };
            let Ok(link) = std::fs::read_link(ent.path()) else {
                continue;
            };
            let link = link.to_string_lossy();
            let Some(ino) = link
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&ino)
                && let Ok(fd) = ent.file_name().to_string_lossy().parse::<i32>()
            {
                targets.push(fd);
            }
        }
        if targets.is_empty() {
            return Err(format!("process {pid} has no packet socket"));
        }
        // SAFETY: syscalls with integer arguments; returned fds are wrapped at once.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
        if pidfd < 0 {
            return Err(format!("pidfd_open({pid}): {}", io::Error::last_os_error()));
        }
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        let mut fds = Vec::new();
        for t in targets {
            use std::os::fd::AsRawFd;
            // SAFETY: as above.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), t, 0) };
            if fd < 0 {
                return Err(format!(
                    "pidfd_getfd({pid}, fd {t}): {}",
                    io::Error::last_os_error()
                ));
            }
            fds.push(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        Ok(PacketSockets { fds })
    }

    /// Counters since the previous read (summed over the sockets), then reset.
    pub fn take(&self) -> Result<SockStats, String> {
        use std::os::fd::AsRawFd;
        let mut total = SockStats::default();
        for fd in &self.fds {
            // SAFETY: tpacket_stats is plain data; getsockopt writes at most `len` bytes.
            let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
            let r = unsafe {
                libc::getsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_STATISTICS,
                    (&raw mut st).cast(),
                    &mut len,
                )
            };
            if r < 0 {
                return Err(format!("PACKET_STATISTICS: {}", io::Error::last_os_error()));
            }
            // tp_packets counts drops too.
            total.received += u64::from(st.tp_packets.saturating_sub(st.tp_drops));
            total.dropped += u64::from(st.tp_drops);
        }
        Ok(total)
    }
}

/// A counter from the text of /proc/net/snmp (`Proto: names` line followed by `Proto: values`)
/// or /proc/net/snmp6 (`NameValue` lines), e.g. `("Tcp", "InSegs")` or `("Udp6", "InDatagrams")`.
pub fn snmp_counter(snmp: &str, snmp6: &str, proto: &str, name: &str) -> Option<u64> {
    let prefix = format!("{proto}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
    if let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let i = names.split_whitespace().position(|n| n == name)?;
        return values.split_whitespace().nth(i)?.parse().ok();
    }
    let key = format!("{proto}{name}");
    snmp6.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == key).then(|| w.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_counters() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Tcp: RtoAlgorithm InSegs InCsumErrors\nTcp: 1 1500 3\n\
                    Udp: InDatagrams NoPorts InCsumErrors\nUdp: 10 20 0\n";
        let snmp6 = "Udp6InDatagrams                 7\nUdp6NoPorts                     5\n";
        assert_eq!(snmp_counter(snmp, snmp6, "Tcp", "InSegs"), Some(1500));
        assert_eq!(snmp_counter(snmp, snmp6, "Tcp", "InCsumErrors"), Some(3));
        assert_eq!(snmp_counter(snmp, snmp6, "Udp", "NoPorts"), Some(20));
        assert_eq!(snmp_counter(snmp, snmp6, "Udp6", "NoPorts"), Some(5));
        assert_eq!(snmp_counter(snmp, snmp6, "Udp6", "InCsumErrors"), None);
        assert_eq!(snmp_counter(snmp, snmp6, "Icmp", "InMsgs"), None);
    }

    #[test]
    fn stat_line_with_odd_command_name() {
        let line = "1234 (kno) ck d) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 \
                    12345 10000000 500 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(line).unwrap(), 325);
        assert!(parse_stat_cpu_ticks("1234 (x) S 1 2").is_err());
        assert!(parse_stat_cpu_ticks("garbage").is_err());
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        let m = mem(pid).unwrap();
        assert!(m.rss_kb > 0 && m.hwm_kb >= m.rss_kb);
    }

    #[test]
    fn status_values() {
        let s = "Name:\tknockd\nVmHWM:\t    5204 kB\nVmRSS:\t    5100 kB\n";
        assert_eq!(parse_status_kb(s, "VmHWM"), Some(5204));
        assert_eq!(parse_status_kb(s, "VmRSS"), Some(5100));
        assert_eq!(parse_status_kb(s, "VmSwap"), None);
    }

    #[test]
    fn packet_table() {
        let t = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n\
                 000000004057bb39 3      3    0003   2     1 0      0      69877 \n";
        assert_eq!(parse_packet_inodes(t), vec![69877]);
    }
}
