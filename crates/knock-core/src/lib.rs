//! Pure core of the knock suite.
//!
//! Everything here is deterministic and free of I/O: no sockets, no processes and no clocks
//! except the time values callers pass in. The daemon (`knockd`) and the client (`knock`) are
//! thin layers around this crate.
//!
//! - [`config`]: the knockd.conf model and parser.
//! - [`packet`]: decoding captured frames (any link type, IPv4/IPv6) into TCP/UDP packets.
//! - [`matcher`]: per-source knock sequence matching in a bounded table.
//! - [`rotate`]: rotating (HMAC-derived) knock sequences.
//! - [`lint`]: warnings about weak static doors.
//! - [`onetime`]: finding the current line of a one-time sequences file.
//! - [`schedule`]: time-of-day windows of scheduled doors.
//! - [`proto`]: protocols, ports and knock tokens (`7000:udp`), the one place they are parsed.
//! - [`tcpflags`]: TCP flag bits and knockd's `tcpflags` rules.
//! - [`addr`]: IP networks for `from =` lists.
//! - [`spa`]: fwknop-compatible Single Packet Authorization (codec and replay cache).

pub mod addr;
pub mod config;
pub mod lint;
pub mod matcher;
pub mod onetime;
pub mod packet;
pub mod proto;
pub mod rotate;
pub mod schedule;
pub mod spa;
pub mod tcpflags;
