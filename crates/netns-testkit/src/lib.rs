//! Dev-only kit for end-to-end tests in throw-away Linux network namespaces.
//!
//! Every end-to-end test of the knock suite runs real daemons as root inside a [`Lab`]: a server
//! namespace and N client namespaces, each client joined to the server by its own veth pair whose
//! two ends are created directly inside the namespaces. Nothing is ever configured in the host
//! namespace, and everything is torn down on drop (processes killed, namespaces deleted).
//!
//! | | server namespace | client `k` namespace |
//! |---|---|---|
//! | interface | `cli<k>` | `eth0` |
//! | IPv4 | `198.18.k.1/24` | `198.18.k.2/24` (default route via the server) |
//! | IPv6 | `2001:2:0:k::1/64` | `2001:2:0:k::2/64` (default route via the server) |
//!
//! ```no_run
//! use std::time::Duration;
//! use netns_testkit::{Lab, bin, require_root};
//!
//! if !require_root() {
//!     return; // not root and KNOCK_SKIP_ROOT_TESTS=1
//! }
//! let lab = Lab::new(1).unwrap();
//! let log = lab.path("knockd.log");
//! let conf = lab
//!     .write_file(
//!         "knockd.conf",
//!         "[options]\n LogFile = LOG\n[ssh]\n Sequence = 7000,8000\n".replace("LOG", log.to_str().unwrap()).as_str(),
//!     )
//!     .unwrap();
//! let knockd = bin("knockd").unwrap();
//! let mut daemon = lab
//!     .server()
//!     .spawn(&[knockd.to_str().unwrap(), "-i", &lab.server_if(1), "-c", conf.to_str().unwrap(), "-v"])
//!     .unwrap();
//! daemon.wait_for_line("listening on", Duration::from_secs(5)).unwrap();
//! let server = lab.server_v4(1).to_string();
//! lab.client(1).run(&[bin("knock").unwrap().to_str().unwrap(), &server, "7000", "8000"]).unwrap();
//! netns_testkit::wait_for_file_line(&log, "OPEN SESAME", Duration::from_secs(5)).unwrap();
//! let ssh = lab.server().tcp_service(22).unwrap();
//! assert!(lab.client(1).tcp_connect_ok(lab.server_v4(1).into(), 22, Duration::from_secs(1)));
//! assert_eq!(ssh.accepted(), 1);
//! // Dropping `daemon` kills knockd; dropping `lab` deletes the namespaces.
//! ```
//!
//! Root-only tests start with [`require_root`]; binaries of the workspace are found with
//! [`bin`].

mod child;
mod env;
mod error;
mod lab;
mod net;
mod ns;
mod wait;

pub use child::ChildGuard;
pub use env::{SKIP_ENV, bin, bin_dir, is_root, require_root};
pub use error::{Error, Result};
pub use lab::{CLIENT_IF, Lab, MAX_CLIENTS, client_v4, client_v6, server_if, server_v4, server_v6};
pub use net::{TcpService, tcp_connect, tcp_connect_ok, udp_send};
pub use ns::{NETNS_DIR, NS_PREFIX, Ns, cleanup_stale};
pub use wait::{count_lines, find_line, wait_for_file_line, wait_until};
