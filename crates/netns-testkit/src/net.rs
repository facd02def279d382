//! In-process TCP/UDP endpoints inside a namespace (sockets created on a thread that entered the
//! namespace, see [`Ns::run_in`]).

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ns::Ns;

/// A TCP service listening on `[::]:port` (IPv4 and IPv6) inside a namespace. It accepts every
/// connection, records the peer and closes it at once. Stops on drop.
#[derive(Debug)]
pub struct TcpService {
    port: u16,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpService {
    /// Listens on port `port` (0: any free port, see [`TcpService::port`]) in `ns`.
    pub fn start(ns: &Ns, port: u16) -> Result<TcpService> {
        let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        let listener = ns
            .run_in(|| TcpListener::bind(addr))?
            .map_err(|e| Error::io(format!("netns {}: bind tcp {addr}", ns.name()), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("local_addr", e))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("set_nonblocking", e))?;
        let peers = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, a, s) = (peers.clone(), accepted.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("tcp-service-{port}"))
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, peer)) => {
                            drop(stream);
                            let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                            p.lock().unwrap_or_else(|e| e.into_inner()).push(peer);
                            a.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("netns-testkit: tcp service on port {port}: accept: {e}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })
            .map_err(|e| Error::io("cannot spawn tcp service thread", e))?;
        Ok(TcpService {
            port,
            peers,
            accepted,
            stop,
            thread: Some(thread),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The peers of the accepted connections (IPv4-mapped addresses shown as IPv4).
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for TcpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether a TCP connection from namespace `ns` to `addr:port` completes within `timeout`
/// (in-process `connect`, nothing is sent). A firewall DROP shows as a timeout, a REJECT or a
/// closed port as an immediate `false`.
pub fn tcp_connect_ok(ns: &Ns, addr: IpAddr, port: u16, timeout: Duration) -> bool {
    tcp_connect(ns, addr, port, timeout).is_ok()
}

/// Like [`tcp_connect_ok`] but returns why it failed.
pub fn tcp_connect(ns: &Ns, addr: IpAddr, port: u16, timeout: Duration) -> Result<()> {
    let sa = SocketAddr::new(addr, port);
    ns.run_in(|| TcpStream::connect_timeout(&sa, timeout))?
        .map(drop)
        .map_err(|e| Error::io(format!("netns {}: tcp connect to {sa}", ns.name()), e))
}

/// Sends one UDP datagram with `payload` from namespace `ns` to `addr:port`.
pub fn udp_send(ns: &Ns, addr: IpAddr, port: u16, payload: &[u8]) -> Result<()> {
    let sa = SocketAddr::new(addr, port);
    let bind: SocketAddr = match addr {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    ns.run_in(|| -> std::io::Result<()> {
        let s = UdpSocket::bind(bind)?;
        s.send_to(payload, sa)?;
        Ok(())
    })?
    .map_err(|e| Error::io(format!("netns {}: udp send to {sa}", ns.name()), e))
}

impl Ns {
    /// Starts a [`TcpService`] on `port` in this namespace.
    pub fn tcp_service(&self, port: u16) -> Result<TcpService> {
        TcpService::start(self, port)
    }

    /// See [`tcp_connect_ok`].
    pub fn tcp_connect_ok(&self, addr: IpAddr, port: u16, timeout: Duration) -> bool {
        tcp_connect_ok(self, addr, port, timeout)
    }

    /// See [`udp_send`].
    pub fn udp_send(&self, addr: IpAddr, port: u16, payload: &[u8]) -> Result<()> {
        udp_send(self, addr, port, payload)
    }
}
