//! Putting knocks on the wire, with socket2 (portable: Linux, macOS, BSD, Windows).
//!
//! - TCP hit: a non-blocking `connect()`, which sends exactly one SYN, then the socket is closed
//!   at once without waiting for the handshake. Closing a socket in SYN-SENT sends nothing, so
//!   the server sees a single SYN and no data (the stack answers a SYN-ACK with a RST, as it does
//!   for the classic client). When an open port answers faster than the close (same host), the
//!   kernel has already ACKed the SYN-ACK; SO_LINGER 0 then turns the close into a RST, where the
//!   classic client sends a FIN.
//! - UDP hit: one datagram with a single zero byte, like the classic client.
//!
//! Only `--interface` is platform-specific (SO_BINDTODEVICE, Linux/Android); elsewhere
//! [`check_supported`] refuses it before anything is sent.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use knock_core::proto::Protocol;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::cli::BindOptions;

/// Sends single knocks. The real one is [`SocketHitter`]; tests use recording fakes.
pub trait Hitter {
    /// Sends one hit of `proto` to `target` (address and port).
    fn hit(&mut self, target: SocketAddr, proto: Protocol) -> Result<(), HitError>;
}

/// The step of a hit that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Socket,
    Bind(IpAddr),
    Interface(String),
    Connect,
    Send,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Socket => f.write_str("cannot create socket"),
            Step::Bind(a) => write!(f, "cannot bind to source address {a}"),
            Step::Interface(i) => write!(f, "cannot bind to interface {i}"),
            Step::Connect => f.write_str("connect"),
            Step::Send => f.write_str("send"),
        }
    }
}

/// A hit that could not be sent: which step failed and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct HitError {
    pub step: Step,
    pub source: io::Error,
}

impl HitError {
    fn at(step: Step) -> impl FnOnce(io::Error) -> HitError {
        move |source| HitError { step, source }
    }
}

/// An option this platform cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not supported on this platform (Linux only)")]
pub struct Unsupported(pub &'static str);

/// Fails when `bind` asks for something this platform cannot do.
pub fn check_supported(bind: &BindOptions) -> Result<(), Unsupported> {
    if bind.interface.is_some() && !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err(Unsupported("--interface"));
    }
    Ok(())
}

/// Sends hits through real sockets, one fresh socket per hit.
#[derive(Debug, Clone, Default)]
pub struct SocketHitter {
    bind: BindOptions,
}

impl SocketHitter {
    pub fn new(bind: BindOptions) -> Self {
        SocketHitter { bind }
    }

    /// Applies `--interface` and `--bind` to a fresh socket.
    fn prepare(&self, sock: &Socket, target: SocketAddr) -> Result<(), HitError> {
        if let Some(name) = &self.bind.interface {
            bind_interface(sock, name).map_err(HitError::at(Step::Interface(name.clone())))?;
        }
        let source: Option<IpAddr> = match target {
            SocketAddr::V4(_) => self.bind.v4.map(IpAddr::from),
            SocketAddr::V6(_) => self.bind.v6.map(IpAddr::from),
        };
        if let Some(src) = source {
            sock.bind(&SockAddr::from(SocketAddr::new(src, 0)))
                .map_err(HitError::at(Step::Bind(src)))?;
        }
        Ok(())
    }
}

impl Hitter for SocketHitter {
    fn hit(&mut self, target: SocketAddr, proto: Protocol) -> Result<(), HitError> {
        match proto {
            Protocol::Tcp => {
                let domain = Domain::for_address(target);
                let dest = SockAddr::from(target);
                let sock = Socket::new(domain, Type::STREAM, Some(socket2::Protocol::TCP))
                    .map_err(HitError::at(Step::Socket))?;
                self.prepare(&sock, target)?;
                sock.set_nonblocking(true)
                    .map_err(HitError::at(Step::Socket))?;
                // If an open port answers before we close (same host, veth), the kernel has
                // completed the handshake: linger 0 makes the close a RST instead of a FIN
                // exchange. In SYN-SENT (the usual case) the close sends nothing either way.
                sock.set_linger(Some(std::time::Duration::ZERO))
                    .map_err(HitError::at(Step::Socket))?;
                match sock.connect(&dest) {
                    Ok(()) => Ok(()),
                    Err(e) if syn_sent(&e) => Ok(()),
                    Err(e) => Err(HitError::at(Step::Connect)(e)),
                }
                // `sock` is dropped (closed) here, before any answer is awaited.
            }
            Protocol::Udp => self.send_datagram(target, &[0u8]),
        }
    }
}

/// Sends whole UDP datagrams (SPA packets). The real one is [`SocketHitter`].
pub trait DatagramSender {
    /// Sends `payload` as one UDP datagram to `target`.
    fn send_datagram(&mut self, target: SocketAddr, payload: &[u8]) -> Result<(), HitError>;
}

impl DatagramSender for SocketHitter {
    fn send_datagram(&mut self, target: SocketAddr, payload: &[u8]) -> Result<(), HitError> {
        let sock = Socket::new(
            Domain::for_address(target),
            Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(HitError::at(Step::Socket))?;
        self.prepare(&sock, target)?;
        let n = sock
            .send_to(payload, &SockAddr::from(target))
            .map_err(HitError::at(Step::Send))?;
        if n == payload.len() {
            Ok(())
        } else {
            Err(HitError::at(Step::Send)(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {n} bytes instead of {}", payload.len()),
            )))
        }
    }
}

/// True when a non-blocking connect error means "the SYN is on its way": EINPROGRESS on Unix,
/// WSAEWOULDBLOCK on Windows; a refusal (RST already back) also proves the SYN went out.
fn syn_sent(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_interface(sock: &Socket, name: &str) -> io::Result<()> {
    sock.bind_device(Some(name.as_bytes()))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_interface(_sock: &Socket, _name: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "--interface is not supported on this platform (Linux only)",
    ))
}

#[cfg(test)]
mod tests {
    //! Loopback only: the sockets below talk to 127.0.0.1 / ::1 listeners created here.
    use super::*;
    use std::net::{TcpListener, UdpSocket};
    use std::time::Duration;

    #[test]
    fn udp_hit_is_one_zero_byte() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let to = rx.local_addr().unwrap();
        SocketHitter::default().hit(to, Protocol::Udp).unwrap();
        let mut buf = [0xffu8; 16];
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0u8]);
    }

    #[test]
    fn datagram_is_sent_whole() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let payload: Vec<u8> = (0..300u16).map(|i| (i % 251) as u8).collect();
        SocketHitter::default()
            .send_datagram(rx.local_addr().unwrap(), &payload)
            .unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &payload[..]);
    }

    #[test]
    fn tcp_hit_reaches_a_listener() {
        // The SYN completes a handshake in the kernel backlog even though we close at once:
        // accept() may then see a connection that is already reset or closed; either way the
        // listener saw the SYN. We only check that the hit itself reports success.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        SocketHitter::default()
            .hit(l.local_addr().unwrap(), Protocol::Tcp)
            .unwrap();
    }

    #[test]
    fn tcp_hit_on_closed_port_is_not_an_error() {
        // Find a free port, then close it: a RST comes back, the SYN was still sent.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        SocketHitter::default()
            .hit(SocketAddr::from(([127, 0, 0, 1], port)), Protocol::Tcp)
            .unwrap();
    }

    #[test]
    fn bind_to_foreign_source_fails_naming_it() {
        // 198.18.255.254 is not assigned on this host: bind fails with EADDRNOTAVAIL.
        let h = BindOptions {
            v4: Some("198.18.255.254".parse().unwrap()),
            ..BindOptions::default()
        };
        let e = SocketHitter::new(h)
            .hit(SocketAddr::from(([127, 0, 0, 1], 9)), Protocol::Udp)
            .unwrap_err();
        assert_eq!(e.step, Step::Bind("198.18.255.254".parse().unwrap()));
        assert!(
            e.to_string()
                .starts_with("cannot bind to source address 198.18.255.254: "),
            "{e}"
        );
    }

    #[test]
    fn bind_to_loopback_source_works() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let h = BindOptions {
            v4: Some("127.0.0.1".parse().unwrap()),
            ..BindOptions::default()
        };
        SocketHitter::new(h)
            .hit(rx.local_addr().unwrap(), Protocol::Udp)
            .unwrap();
        let mut buf = [0u8; 4];
        let (_, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(from.ip(), IpAddr::from([127, 0, 0, 1]));
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn unknown_interface_is_named() {
        let h = BindOptions {
            interface: Some("nosuchif0".into()),
            ..BindOptions::default()
        };
        assert_eq!(check_supported(&h), Ok(()));
        let e = SocketHitter::new(h)
            .hit(SocketAddr::from(([127, 0, 0, 1], 9)), Protocol::Udp)
            .unwrap_err();
        assert_eq!(e.step, Step::Interface("nosuchif0".into()));
        assert!(
            e.to_string()
                .starts_with("cannot bind to interface nosuchif0: "),
            "{e}"
        );
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    #[test]
    fn interface_unsupported_elsewhere() {
        let h = BindOptions {
            interface: Some("en0".into()),
            ..BindOptions::default()
        };
        assert_eq!(
            check_supported(&h).unwrap_err().to_string(),
            "--interface is not supported on this platform (Linux only)"
        );
    }

    #[test]
    fn syn_sent_classification() {
        assert!(syn_sent(&io::Error::from(io::ErrorKind::WouldBlock)));
        assert!(syn_sent(&io::Error::from(io::ErrorKind::ConnectionRefused)));
        #[cfg(unix)]
        assert!(syn_sent(&io::Error::from_raw_os_error(libc::EINPROGRESS)));
        #[cfg(unix)]
        assert!(!syn_sent(&io::Error::from_raw_os_error(libc::ENETUNREACH)));
        assert!(!syn_sent(&io::Error::from(io::ErrorKind::PermissionDenied)));
    }
}
