//! Knock-to-grant latency: from the grant request to the element committed in the kernel.
//!
//! Runs as root in a throw-away network namespace (never on the host's ruleset) and prints
//! median / p99 / max for:
//! - netlink grants through the backend (fresh elements, refreshes, async API),
//! - one `nft add element` process per grant (the `nftables`-crate way: JSON or text piped to
//!   a new `nft`),
//! - a long-lived `nft -i` fed one command per grant (element polled until present).
//!
//! `cargo bench -p knockd --bench grant_latency` (or `-- N` for N samples per series).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use knock_core::proto::{ProtoPort, Protocol};
use knockd::grants::{GrantRuleset, NftBackend, NftConfig};
use netns_testkit::{Lab, is_root};

const PORT: u16 = 22;

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8))
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name:<44} n={:<5} median {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs",
        v.len(),
        pct(0.5).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        v[v.len() - 1].as_secs_f64() * 1e6
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number sets the sample count.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000)
        .clamp(10, 60_000);
    if !is_root() {
        eprintln!("grant_latency: needs root (network namespace + nftables); skipped");
        return;
    }
    let lab = Lab::new(0).expect("lab");
    let ns = lab.server();
    let pp = ProtoPort {
        proto: Protocol::Tcp,
        port: PORT,
    };
    let b = ns
        .run_in(|| NftBackend::open(NftConfig::table("knockd")))
        .expect("thread in namespace")
        .expect("backend");
    let rs = GrantRuleset {
        protected: [pp].into_iter().collect(),
        ..GrantRuleset::default()
    };
    let t = Instant::now();
    b.apply(&rs).expect("apply");
    println!("apply (one nft -f run): {:?}", t.elapsed());
    let timeout = Duration::from_secs(600);
    for i in 0..100 {
        b.grant(addr(50_000 + i), pp, timeout).expect("warm-up");
    }

    // The nft series first, while the set is small (the nft -i series polls a dump).
    let k = (n / 10).clamp(10, 300);
    // One nft process per grant.
    let spawn: Vec<Duration> = ns
        .run_in(|| {
            (0..k)
                .map(|i| {
                    let a = addr(40_000 + i);
                    let t = Instant::now();
                    let st = Command::new("nft")
                        .args([
                            "add",
                            "element",
                            "inet",
                            "knockd",
                            "grants4",
                            &format!("{{ {a} . tcp . {PORT} timeout 600s }}"),
                        ])
                        .status()
                        .expect("nft");
                    assert!(st.success());
                    t.elapsed()
                })
                .collect()
        })
        .expect("thread in namespace");
    report("nft process per grant", spawn);

    // A long-lived `nft -i`, one line per grant, polled until the element shows up.
    let mut child = ns
        .run_in(|| {
            Command::new("nft")
                .arg("-i")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
        })
        .expect("thread in namespace")
        .expect("nft -i");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut inter = Vec::with_capacity(k);
    for i in 0..k {
        let a = addr(45_000 + i);
        let t = Instant::now();
        writeln!(
            stdin,
            "add element inet knockd grants4 {{ {a} . tcp . {PORT} timeout 600s }}"
        )
        .expect("write");
        stdin.flush().expect("flush");
        loop {
            if b.list().expect("list").iter().any(|g| g.addr == a) {
                break;
            }
            if t.elapsed() > Duration::from_secs(5) {
                panic!("nft -i: {a} never appeared");
            }
        }
        inter.push(t.elapsed());
    }
    drop(stdin);
    let _ = child.wait();
    report("long-lived nft -i (polled until present)", inter);

    // Fresh grants, synchronous API: worker-measured latency and caller-observed time.
    let mut kernel = Vec::with_capacity(n);
    let mut caller = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let d = b.grant(addr(i), pp, timeout).expect("grant");
        caller.push(t.elapsed());
        assert!(!d.refreshed);
        kernel.push(d.latency);
    }
    report("netlink grant, new element (ack'd)", kernel);
    report("netlink grant, new element (caller sees)", caller);
    let listed = b.list().expect("list");
    assert!(
        listed.len() >= n,
        "{} elements listed, {n} granted",
        listed.len()
    );

    // Refreshes of the same elements (EEXIST, then DEL+NEW in one batch).
    let mut refresh = Vec::with_capacity(n);
    for i in 0..n {
        let d = b.grant(addr(i), pp, timeout).expect("refresh");
        assert!(d.refreshed);
        refresh.push(d.latency);
    }
    report("netlink grant, refresh (ack'd)", refresh);

    // Async API from a tokio runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut asy = Vec::with_capacity(n);
    rt.block_on(async {
        for i in 0..n {
            let t = Instant::now();
            b.grant_async(addr(20_000 + i), pp, timeout)
                .expect("queue")
                .await
                .expect("grant");
            asy.push(t.elapsed());
        }
    });
    report("netlink grant_async, awaited", asy);

    // A burst: queue everything, then wait (throughput of the worker).
    let m = n.min(knockd::grants::MAX_PENDING - 96);
    let t = Instant::now();
    let pending: Vec<_> = (0..m)
        .map(|i| b.grant_async(addr(30_000 + i), pp, timeout).expect("queue"))
        .collect();
    let queued = t.elapsed();
    for p in pending {
        p.wait().expect("grant");
    }
    println!(
        "burst of {m} grant_async: queued in {:?} ({:.2} µs each), all committed after {:?}",
        queued,
        queued.as_secs_f64() * 1e6 / m as f64,
        t.elapsed()
    );

    b.remove().expect("remove");
}
