//! The knockd daemon as a library: the binary in `main.rs` is a thin wrapper.
//!
//! - [`capture`]: live pcap captures (one or several interfaces, or `any`) and pcap files,
//!   with a kernel filter built from the watched ports, as one async stream of frames.
//! - [`ifaddrs`]: the local addresses of the watched interfaces, followed as they change.

pub mod capture;
pub mod ifaddrs;
