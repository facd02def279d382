//! Pure core of the knock suite.
//!
//! Everything here is deterministic and free of I/O: no sockets, no processes and no clocks
//! except the time values callers pass in. The daemon (`knockd`) and the client (`knock`) are
//! thin layers around this crate.
//!
//! - [`addr`]: IP networks for `from =` lists.
//! - [`matcher`]: per-source knock sequence matching in a bounded table.
//! - [`proto`]: protocols, ports and knock tokens (`7000:udp`), the one place they are parsed.
//! - [`rotate`]: rotating (HMAC-derived) knock sequences.
//! - [`tcpflags`]: TCP flag bits and knockd's `tcpflags` rules.

pub mod addr;
pub mod matcher;
pub mod proto;
pub mod rotate;
pub mod tcpflags;
