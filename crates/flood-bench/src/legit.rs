//! The legitimate knocker: full knock sequences through the normal socket stack, each attempt
//! from its own source address so the door's command record says which attempt it was.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Addresses the legitimate client uses (added to its interface), inside its lab subnet.
pub const POOL: usize = 200;

/// The `i`-th legitimate source address (`i < POOL`) of client 1: `198.18.1.10 + i` or
/// `2001:2:0:1::1:0 + i`.
pub fn pool_addr(i: usize, v6: bool) -> IpAddr {
    let i = i % POOL;
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 1, i as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10 + i as u8))
    }
}

/// `ip -batch` lines adding the pool to `dev`.
pub fn pool_batch(dev: &str) -> String {
    let mut s = String::new();
    for i in 0..POOL {
        s.push_str(&format!("addr add {}/32 dev {dev}\n", pool_addr(i, false)));
        s.push_str(&format!(
            "addr add {}/128 dev {dev} nodad\n",
            pool_addr(i, true)
        ));
    }
    s
}

/// Seconds since the Unix epoch, as the door's command records them.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One knock attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    pub src: IpAddr,
    /// When the last knock of the sequence was handed to the kernel (Unix seconds).
    pub sent_at: f64,
}

/// What the legitimate knocker does.
#[derive(Debug, Clone)]
pub struct LegitPlan {
    pub ports: Vec<u16>,
    pub udp: bool,
    pub server_v4: IpAddr,
    pub server_v6: IpAddr,
    pub interval: Duration,
    /// Share of attempts over IPv6, in percent (evenly spread).
    pub v6_percent: u8,
    /// First pool address to use (the plumbing check uses others than the run).
    pub first: usize,
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, large enough for both families.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: v.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: v.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Sends one knock from `src` to `dst`: one TCP SYN (a non-blocking connect, then close) or a
/// one-byte UDP datagram.
pub fn knock(src: IpAddr, dst: SocketAddr, udp: bool) -> io::Result<()> {
    let fam = if dst.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let ty = if udp {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    let err = |what: &str| {
        let e = io::Error::last_os_error();
        io::Error::new(e.kind(), format!("{what} {src} -> {dst}: {e}"))
    };
    // SAFETY: plain socket calls on a fd we own and close on every path.
    unsafe {
        let fd = libc::socket(fam, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(err("socket"));
        }
        let result = (|| {
            let (sa, len) = sockaddr(SocketAddr::new(src, 0));
            if libc::bind(fd, (&raw const sa).cast(), len) < 0 {
                return Err(err("bind"));
            }
            let (da, dlen) = sockaddr(dst);
            if udp {
                let b = [0u8; 1];
                if libc::sendto(fd, b.as_ptr().cast(), 1, 0, (&raw const da).cast(), dlen) < 0 {
                    return Err(err("sendto"));
                }
            } else if libc::connect(fd, (&raw const da).cast(), dlen) < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINPROGRESS) {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("connect {src} -> {dst}: {e}"),
                    ));
                }
            }
            Ok(())
        })();
        libc::close(fd);
        result
    }
}

/// One full attempt from pool address `i`; returns it with the time the last knock was sent.
pub fn attempt(plan: &LegitPlan, i: usize, v6: bool) -> io::Result<Attempt> {
    let src = pool_addr(i, v6);
    let server = if v6 { plan.server_v6 } else { plan.server_v4 };
    for &port in &plan.ports {
        knock(src, SocketAddr::new(server, port), plan.udp)?;
    }
    Ok(Attempt {
        src,
        sent_at: unix_now(),
    })
}

/// Runs attempts every `plan.interval` until `stop` is set. Call on a thread inside the client
/// namespace.
pub fn run(plan: &LegitPlan, stop: &AtomicBool) -> io::Result<Vec<Attempt>> {
    let mut out = Vec::new();
    let start = Instant::now();
    let mut k: usize = 0;
    while !stop.load(Ordering::Relaxed) && !crate::generator::interrupted() {
        let due = plan.interval * k as u32;
        let el = start.elapsed();
        if due > el {
            std::thread::sleep((due - el).min(Duration::from_millis(50)));
            continue;
        }
        let pct = usize::from(plan.v6_percent);
        let v6 = (k + 1) * pct / 100 > k * pct / 100;
        out.push(attempt(plan, plan.first + k, v6)?);
        k += 1;
    }
    Ok(out)
}

/// Parses the door's command records, one `IP UNIX_SECONDS` per line.
pub fn parse_stamps(text: &str) -> HashMap<IpAddr, Vec<f64>> {
    let mut m: HashMap<IpAddr, Vec<f64>> = HashMap::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(ip), Some(t)) = (w.next(), w.next()) else {
            continue;
        };
        if let (Ok(ip), Ok(t)) = (ip.parse::<IpAddr>(), t.parse::<f64>()) {
            m.entry(ip).or_default().push(t);
        }
    }
    for v in m.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    m
}

/// For each attempt, the knock-to-action latency in seconds if its command ran: the first
/// record for its source at or after the attempt (1 ms of clock slack) and before the next
/// attempt from the same source.
pub fn match_attempts(
    attempts: &[Attempt],
    stamps: &HashMap<IpAddr, Vec<f64>>,
) -> Vec<Option<f64>> {
    attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let next = attempts[i + 1..]
                .iter()
                .find(|b| b.src == a.src)
                .map_or(f64::INFINITY, |b| b.sent_at);
            stamps.get(&a.src).and_then(|v| {
                v.iter()
                    .find(|&&t| t >= a.sent_at - 0.001 && t < next)
                    .map(|t| (t - a.sent_at).max(0.0))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_distinct_and_in_client_subnet() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..POOL {
            for v6 in [false, true] {
                let a = pool_addr(i, v6);
                assert!(seen.insert(a));
                assert!(!crate::sources::in_spoof_range(a));
                match a {
                    IpAddr::V4(v) => assert_eq!(&v.octets()[..3], &[198, 18, 1]),
                    IpAddr::V6(v) => assert_eq!(&v.segments()[..4], &[0x2001, 2, 0, 1]),
                }
            }
        }
        assert_eq!(pool_addr(POOL, false), pool_addr(0, false));
        assert_eq!(pool_batch("eth0").lines().count(), 2 * POOL);
    }

    #[test]
    fn stamps_match_attempts() {
        let a: IpAddr = "198.18.1.10".parse().unwrap();
        let b: IpAddr = "198.18.1.11".parse().unwrap();
        let attempts = [
            Attempt {
                src: a,
                sent_at: 100.0,
            },
            Attempt {
                src: b,
                sent_at: 100.5,
            },
            Attempt {
                src: a,
                sent_at: 200.0,
            },
        ];
        let stamps = parse_stamps("198.18.1.10 100.002\nbad line\n198.18.1.10 200.25\n\n");
        let m = match_attempts(&attempts, &stamps);
        assert!((m[0].unwrap() - 0.002).abs() < 1e-9);
        assert_eq!(m[1], None);
        assert!((m[2].unwrap() - 0.25).abs() < 1e-9);
        // A record before the attempt does not count.
        let early = parse_stamps("198.18.1.11 99.0\n");
        assert_eq!(match_attempts(&attempts, &early)[1], None);
    }
}
