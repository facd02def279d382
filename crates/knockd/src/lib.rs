//! knockd: the port-knock daemon.
//!
//! A pipeline: capture → decode → match → act, plus configuration and logging. The pure parts
//! (config, matching, decoding) live in `knock_core`; this crate holds the I/O edges.

pub mod actions;
pub mod cli;
pub mod grants;
pub mod lifecycle;
pub mod logging;
