//! The packet generator: crafted Ethernet frames sent in batches with `sendmmsg(2)` on an
//! `AF_PACKET` socket that bypasses the qdisc (`PACKET_QDISC_BYPASS`).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::frame::{self, MAX_FRAME, Packet, Transport};
use crate::sources::{Sources, mix64};

/// An `AF_PACKET`/`SOCK_RAW` socket bound to one interface, for sending only (protocol 0: it
/// receives nothing). It belongs to the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
}

fn os_err(what: String) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl PacketSocket {
    /// Opens the socket on `ifname` (looked up in the calling thread's namespace).
    pub fn open(ifname: &str) -> io::Result<PacketSocket> {
        let cname = std::ffi::CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        // SAFETY: plain libc calls on owned values; the fd is wrapped in OwnedFd at once.
        unsafe {
            let ifindex = libc::if_nametoindex(cname.as_ptr());
            if ifindex == 0 {
                return Err(os_err(format!("interface {ifname}")));
            }
            let raw = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            if raw < 0 {
                return Err(os_err(format!("AF_PACKET socket for {ifname}")));
            }
            let fd = OwnedFd::from_raw_fd(raw);
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = 0;
            sll.sll_ifindex = ifindex as i32;
            if libc::bind(
                raw,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) < 0
            {
                return Err(os_err(format!("bind AF_PACKET socket to {ifname}")));
            }
            let one: libc::c_int = 1;
            if libc::setsockopt(
                raw,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            ) < 0
            {
                return Err(os_err(format!("PACKET_QDISC_BYPASS on {ifname}")));
            }
            let sndbuf: libc::c_int = 8 << 20;
            // Best effort: a larger send buffer only avoids ENOBUFS stalls.
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                (&raw const sndbuf).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
            Ok(PacketSocket {
                fd,
                ifname: ifname.to_string(),
            })
        }
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct FloodPlan {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub dst_v4: IpAddr,
    pub dst_v6: IpAddr,
    pub dst_port: u16,
    pub transport: Transport,
    pub sources: Sources,
    /// Packets per second; `None` = as fast as possible.
    pub rate: Option<u64>,
    /// Stop after this long (always bounded).
    pub duration: Duration,
    /// Stop after this many packets, if set.
    pub count: Option<u64>,
    /// Frames per `sendmmsg` call.
    pub batch: usize,
    pub seed: u64,
}

/// What was sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloodStats {
    pub sent: u64,
    /// `sendmmsg` calls that failed with ENOBUFS/EAGAIN (retried).
    pub stalls: u64,
    pub elapsed: Duration,
}

impl FloodStats {
    /// Achieved packets per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.sent as f64 / s } else { 0.0 }
    }
}

/// The packet `p` of the plan (deterministic: a packet can be rebuilt after a partial send).
pub fn packet(plan: &FloodPlan, p: u64) -> Packet {
    let src = plan.sources.addr_of_packet(p);
    let r = mix64(p ^ plan.seed.rotate_left(31));
    Packet {
        src,
        dst: if src.is_ipv6() {
            plan.dst_v6
        } else {
            plan.dst_v4
        },
        src_port: 1024 + (r as u16 % (65535 - 1024)),
        dst_port: plan.dst_port,
        seq: (r >> 16) as u32,
        ident: (r >> 48) as u32,
    }
}

/// Sends the flood; returns when the duration or count is reached or `stop` is set. `progress`
/// is updated with the number of packets sent after each batch.
pub fn run(
    sock: &PacketSocket,
    plan: &FloodPlan,
    stop: &AtomicBool,
    progress: &AtomicU64,
) -> io::Result<FloodStats> {
    let batch = plan.batch.clamp(1, 1024);
    let mut bufs = vec![[0u8; MAX_FRAME]; batch];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: 0,
        })
        .collect();
    // SAFETY: mmsghdr is plain data; zero is a valid "no name, no control" header.
    let mut msgs: Vec<libc::mmsghdr> = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut stalls: u64 = 0;
    loop {
        let now = Instant::now();
        let elapsed = now - start;
        if stop.load(Ordering::Relaxed) || interrupted() || elapsed >= plan.duration {
            break;
        }
        let mut n = batch as u64;
        if let Some(c) = plan.count {
            if sent >= c {
                break;
            }
            n = n.min(c - sent);
        }
        if let Some(rate) = plan.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
            if due > elapsed {
                let wait = due - elapsed;
                if wait > Duration::from_micros(200) {
                    std::thread::sleep(wait);
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
        }
        let n = n as usize;
        for (j, iov) in iovs.iter_mut().take(n).enumerate() {
            let p = packet(plan, sent + j as u64);
            // SAFETY: iov points into bufs[j] (MAX_FRAME bytes), which outlives the loop.
            let buf =
                unsafe { std::slice::from_raw_parts_mut(iov.iov_base.cast::<u8>(), MAX_FRAME) };
            let len = frame::build(buf, plan.dst_mac, plan.src_mac, plan.transport, &p)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            iov.iov_len = len;
        }
        // SAFETY: msgs[..n] point to valid iovecs and buffers; the socket is open.
        let r = unsafe { libc::sendmmsg(sock.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    stalls += 1;
                    std::thread::yield_now();
                    continue;
                }
                _ => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("sendmmsg on {} after {sent} packets: {e}", sock.ifname),
                    ));
                }
            }
        }
        sent += r as u64;
        progress.store(sent, Ordering::Relaxed);
    }
    Ok(FloodStats {
        sent,
        stalls,
        elapsed: start.elapsed(),
    })
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM stop the flood (and the run) instead of killing the process, so the
/// lab is torn down cleanly.
pub fn catch_interrupts() {
    let h = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, h as libc::sighandler_t);
        libc::signal(libc::SIGTERM, h as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived (after [`catch_interrupts`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Pins the calling thread to `cpu` (best effort; returns whether it worked).
pub fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) affects the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{Distinct, in_spoof_range};

    fn plan() -> FloodPlan {
        FloodPlan {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_v4: "198.18.1.1".parse().unwrap(),
            dst_v6: "2001:2:0:1::1".parse().unwrap(),
            dst_port: 7000,
            transport: Transport::TcpSyn,
            sources: Sources::new(Distinct::Cycle(100), 50, 9).unwrap(),
            rate: None,
            duration: Duration::from_secs(1),
            count: None,
            batch: 64,
            seed: 9,
        }
    }

    #[test]
    fn packets_are_deterministic_and_well_formed() {
        let pl = plan();
        for p in 0..1000 {
            let a = packet(&pl, p);
            assert_eq!(a, packet(&pl, p));
            assert!(in_spoof_range(a.src));
            assert_eq!(a.src.is_ipv6(), a.dst.is_ipv6());
            assert_eq!(a.dst_port, 7000);
            assert!(a.src_port >= 1024);
        }
        assert_ne!(packet(&pl, 0).src_port, packet(&pl, 1).src_port);
    }
}
