//! Pure core of the knock suite.
//!
//! Everything here is deterministic and free of I/O: no sockets, no processes and no clocks
//! except the time values callers pass in. The daemon (`knockd`) and the client (`knock`) are
//! thin layers around this crate.
//!
//! - [`addr`]: IP networks for `from =` lists.
//! - [`proto`]: protocols, ports and knock tokens (`7000:udp`), the one place they are parsed.
//! - [`tcpflags`]: TCP flag bits and knockd's `tcpflags` rules.
//! - [`spa`]: fwknop-compatible Single Packet Authorization (codec and replay cache).

pub mod addr;
pub mod proto;
pub mod spa;
pub mod tcpflags;
