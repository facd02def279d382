//! `knockd --pcap-file`: the daemon reads knocks from a capture file (offline diagnosis), with
//! the capture file's own timestamps for timeouts. No root needed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The daemon binary next to this test's executable (target/<profile>/knockd).
fn knockd() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    dir.join("knockd")
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 + TCP SYN frame from `src` to 198.18.0.1:`port`.
fn syn(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let mut ip = vec![
        0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, src[0], src[1], src[2], src[3], 198, 18, 0, 1,
    ];
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&port.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
    f.extend(ip);
    f.extend(tcp);
    f
}

/// A classic pcap file (microsecond timestamps, Ethernet) of `(seconds, frame)` records.
fn pcap(records: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xa1b2_c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend(0i32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (sec, frame) in records {
        out.extend(sec.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend(frame);
    }
    out
}

#[test]
fn knocks_from_a_capture_file_open_the_door_with_file_time() {
    let dir = std::env::temp_dir().join(format!("knockd-pcap-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("opened");
    let log = dir.join("knockd.log");
    let conf = dir.join("knockd.conf");
    std::fs::write(
        &conf,
        format!(
            "[options]\n LogFile = {}\n Status_Socket = {}\n[door]\n sequence = 7000,9000,8000\n seq_timeout = 5\n tcpflags = syn\n command = echo %IP% >> {}\n",
            log.display(),
            dir.join("sock").display(),
            marker.display()
        ),
    )
    .unwrap();
    let a = [198, 18, 0, 2];
    let b = [198, 18, 0, 3];
    // a knocks in order within 2 s of file time; b takes 10 s (over seq_timeout), then a
    // packet to an unwatched port is ignored.
    let file = dir.join("knocks.pcap");
    std::fs::write(
        &file,
        pcap(&[
            (1000, syn(a, 7000)),
            (1000, syn(b, 7000)),
            (1001, syn(a, 9000)),
            (1001, syn(b, 9000)),
            (1002, syn(a, 8000)),
            (1011, syn(b, 8000)),
            (1012, syn(b, 22)),
        ]),
    )
    .unwrap();
    let out = Command::new(knockd())
        .arg("-c")
        .arg(&conf)
        .arg("--pcap-file")
        .arg(&file)
        .output()
        .expect("run knockd");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("198.18.0.2: door: OPEN SESAME"), "{text}");
    assert!(!text.contains("198.18.0.3: door: OPEN SESAME"), "{text}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "198.18.0.2\n");
    assert!(text.contains("shutting down"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_capture_file_is_an_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("knockd-pcap-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("knockd.conf");
    std::fs::write(
        &conf,
        format!(
            "[options]\n Status_Socket = {}\n[door]\n sequence = 7000,9000,8000\n",
            dir.join("sock").display()
        ),
    )
    .unwrap();
    let out = Command::new(knockd())
        .arg("-c")
        .arg(&conf)
        .arg("--pcap-file")
        .arg(dir.join("nope.pcap"))
        .output()
        .expect("run knockd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.pcap"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
