//! Feeds arbitrary bytes to the packet decoder for every link type the daemon accepts.
//! The decoder must never panic and, when it returns a packet, its payload must lie inside
//! the frame (a sub-slice of it). Run: `cargo +nightly fuzz run packet_decode -- -max_total_time=60`.
#![no_main]

use knock_core::packet::{LinkType, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for link in LinkType::ALL {
        if let Ok(p) = decode(link, data) {
            assert!(p.payload.len() <= data.len());
            if p.payload.is_empty() {
                continue;
            }
            let start = p.payload.as_ptr() as usize;
            let base = data.as_ptr() as usize;
            assert!(start >= base && start + p.payload.len() <= base + data.len());
        }
    }
});
