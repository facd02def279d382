//! knockd: the port-knock daemon, as a library; the binary in `main.rs` is a thin wrapper.
//!
//! A pipeline: capture → decode → match → act, plus configuration and logging. The pure parts
//! (config, matching, decoding) live in `knock_core`; this crate holds the I/O edges.
//!
//! - [`capture`]: live pcap captures (one or several interfaces, or `any`) and pcap files,
//!   with a kernel filter built from the watched ports, as one async stream of frames.
//! - [`ifaddrs`]: the local addresses of the watched interfaces, followed as they change.
//! - [`actions`]: start/stop commands.
//! - [`logging`]: knockd's log file, syslog and verbose output.
//! - [`lifecycle`]: daemon mode and pid file.
//! - [`daemon`]: the wiring, signals and reloads; [`doors`]: config to matcher rules.
//! - [`status`]: `knockd --status`; [`lookup`]: `-l` reverse names.
//! - [`grants`]: nftables grants the kernel expires by itself; [`spa`]: SPA doors' state.

pub mod actions;
pub mod capture;
pub mod cli;
pub mod daemon;
pub mod doors;
pub mod example;
pub mod grants;
pub mod ifaddrs;
pub mod lifecycle;
pub mod listening;
pub mod logging;
pub mod lookup;
pub mod spa;
pub mod status;
