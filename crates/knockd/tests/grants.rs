//! Root tests of the nftables grants backend, each in its own network-namespace lab (server +
//! 2 clients). The backend is opened on a thread inside the server namespace (its netlink
//! socket, worker thread and `nft` runs stay there); every `nft` command of these tests runs
//! inside the lab too. Nothing touches the host's ruleset.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use knock_core::config::NftChainRef;
use knock_core::proto::{ProtoPort, Protocol};
use knockd::grants::{
    GrantRuleset, NftBackend, NftConfig, NftError, ScheduleClock, kernel_minuteswest,
};
use netns_testkit::{Lab, Ns, require_root, wait_until};

const PORT: u16 = 2222;
const NO: Duration = Duration::from_millis(700);
const YES: Duration = Duration::from_secs(3);

fn tcp(port: u16) -> ProtoPort {
    ProtoPort {
        proto: Protocol::Tcp,
        port,
    }
}

fn protecting(ports: &[u16]) -> GrantRuleset {
    GrantRuleset {
        protected: ports.iter().map(|p| tcp(*p)).collect(),
        ..GrantRuleset::default()
    }
}

/// Opens the backend inside `ns`.
fn open_in(ns: &Ns, cfg: NftConfig) -> Result<NftBackend, NftError> {
    ns.run_in(move || NftBackend::open(cfg))
        .expect("thread in the lab namespace")
}

fn nft(ns: &Ns, args: &str) -> String {
    let mut v = vec!["nft"];
    v.extend(args.split_whitespace());
    ns.run_stdout(&v).expect("nft inside the lab")
}

fn nft_script(ns: &Ns, script: &str) {
    let path = std::env::temp_dir().join(format!(
        "knockd-grants-test-{}-{}.nft",
        std::process::id(),
        ns.name()
    ));
    std::fs::write(&path, script).unwrap();
    let r = ns.run(&["nft", "-f", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    r.expect("user ruleset");
}

fn can(lab: &Lab, k: usize, v6: bool, port: u16) -> bool {
    lab.client(k)
        .tcp_connect_ok(lab.server_ip(k, v6), port, YES)
}

fn cannot(lab: &Lab, k: usize, v6: bool, port: u16) -> bool {
    !lab.client(k).tcp_connect_ok(lab.server_ip(k, v6), port, NO)
}

/// A TCP echo service on `[::]:port` in a namespace; connections stay open.
struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start(ns: &Ns, port: u16) -> Echo {
        let l = ns
            .run_in(move || TcpListener::bind(("::", port)))
            .unwrap()
            .unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let s2 = s.clone();
                        std::thread::spawn(move || {
                            c.set_nonblocking(false).unwrap();
                            c.set_read_timeout(Some(Duration::from_millis(100)))
                                .unwrap();
                            let mut buf = [0u8; 256];
                            while !s2.load(Ordering::Relaxed) {
                                match c.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        if c.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                    Err(_) => continue,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Echo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn echo_roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got)?;
    assert_eq!(got, msg);
    Ok(())
}

#[test]
fn grant_opens_for_the_knocker_only_and_closes_by_itself() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let b = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    assert_eq!(b.adopted(), None, "fresh namespace: nothing to adopt");
    b.apply(&protecting(&[PORT])).unwrap();

    assert!(cannot(&lab, 1, false, PORT), "client 1 before any grant");
    assert!(cannot(&lab, 2, false, PORT), "client 2 before any grant");

    let c1 = IpAddr::from(lab.client_v4(1));
    let done = b.grant(c1, tcp(PORT), Duration::from_secs(3)).unwrap();
    let t0 = Instant::now();
    assert!(!done.refreshed);
    assert_eq!(done.timeout, Duration::from_secs(3));
    eprintln!("grant latency {:?}", done.latency);

    assert!(can(&lab, 1, false, PORT), "client 1 during its grant");
    assert!(
        cannot(&lab, 2, false, PORT),
        "client 2 during client 1's grant"
    );
    // A connection established during the grant...
    let server = SocketAddr::new(lab.server_ip(1, false), PORT);
    let mut session = lab
        .client(1)
        .run_in(move || TcpStream::connect_timeout(&server, YES))
        .unwrap()
        .unwrap();
    echo_roundtrip(&mut session, b"during").unwrap();

    let listed = b.list().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].addr, c1);
    assert_eq!(listed[0].proto_port, tcp(PORT));
    assert_eq!(listed[0].timeout, Duration::from_secs(3));
    assert!(listed[0].remaining <= Duration::from_secs(3));
    assert!(listed[0].remaining > Duration::from_secs(1), "{listed:?}");

    // ... the grant expires on time without anyone removing it.
    assert!(
        wait_until(Duration::from_secs(5), || b.list().unwrap().is_empty()),
        "grant still listed after 5 s"
    );
    let gone = t0.elapsed();
    assert!(
        gone >= Duration::from_millis(2800) && gone < Duration::from_millis(4000),
        "grant of 3 s disappeared after {gone:?}"
    );
    assert!(
        cannot(&lab, 1, false, PORT),
        "client 1 after the grant expired"
    );
    // The established session survives the end of the grant, and a reload.
    echo_roundtrip(&mut session, b"after the grant").unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    echo_roundtrip(&mut session, b"after a reload").unwrap();
    b.teardown().unwrap();
}

#[test]
fn regrant_refreshes_without_duplicates() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let _svc = lab.server().tcp_service(PORT).unwrap();
    let b = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    let c1 = IpAddr::from(lab.client_v4(1));

    let first = b.grant(c1, tcp(PORT), Duration::from_secs(3)).unwrap();
    assert!(!first.refreshed);
    std::thread::sleep(Duration::from_millis(1500));
    // Async variant, from a tokio runtime, as the daemon's packet path uses it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let again = rt
        .block_on(
            b.grant_async(c1, tcp(PORT), Duration::from_secs(10))
                .unwrap(),
        )
        .unwrap();
    assert!(
        again.refreshed,
        "second grant must be reported as a refresh"
    );
    let listed = b.list().unwrap();
    assert_eq!(listed.len(), 1, "no duplicate element: {listed:?}");
    assert_eq!(listed[0].timeout, Duration::from_secs(10));
    assert!(
        listed[0].remaining > Duration::from_secs(9),
        "timeout restarted: {listed:?}"
    );
    // The kernel's own view: one element.
    let text = nft(lab.server(), "list set inet knockd grants4");
    assert_eq!(text.matches("198.18.1.2 . tcp . 2222").count(), 1, "{text}");
    // Past the first grant's end, still open.
    std::thread::sleep(Duration::from_millis(2000));
    assert!(can(&lab, 1, false, PORT), "refreshed grant still open");
    // Another port for the same address is a separate element.
    b.grant(c1, tcp(PORT + 1), Duration::from_secs(5)).unwrap();
    assert_eq!(b.list().unwrap().len(), 2);
    // Refused requests.
    let e = b.grant(c1, tcp(PORT), Duration::ZERO).unwrap_err();
    assert!(matches!(e, NftError::BadTimeout { .. }), "{e}");
    b.teardown().unwrap();
}

#[test]
fn ipv6_grants() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _svc = lab.server().tcp_service(PORT).unwrap();
    let b = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    assert!(cannot(&lab, 1, true, PORT));
    let c1 = IpAddr::from(lab.client_v6(1));
    b.grant(c1, tcp(PORT), Duration::from_secs(30)).unwrap();
    assert!(
        can(&lab, 1, true, PORT),
        "client 1 over IPv6 with a v6 grant"
    );
    assert!(
        cannot(&lab, 1, false, PORT),
        "the v6 grant does not open v4"
    );
    assert!(cannot(&lab, 2, true, PORT), "client 2 over IPv6");
    let listed = b.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].addr, c1);
    let text = nft(lab.server(), "list set inet knockd grants6");
    assert!(text.contains("2001:2:0:1::2 . tcp . 2222"), "{text}");
    // An IPv4-mapped address is granted as the IPv4 address.
    let mapped: IpAddr = lab.client_v4(2).to_ipv6_mapped().into();
    let d = b.grant(mapped, tcp(PORT), Duration::from_secs(30)).unwrap();
    assert_eq!(d.addr, IpAddr::from(lab.client_v4(2)));
    assert!(can(&lab, 2, false, PORT));
    b.teardown().unwrap();
}

#[test]
fn reopen_adopts_the_table_and_keeps_grants() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let _svc = lab.server().tcp_service(PORT).unwrap();
    let c1 = IpAddr::from(lab.client_v4(1));
    let b = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    b.grant(c1, tcp(PORT), Duration::from_secs(5)).unwrap();
    let t0 = Instant::now();
    let chain_before = nft(lab.server(), "list chain inet knockd input");
    drop(b); // no teardown: the kernel state stays, as after a crash

    let b = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    assert_eq!(b.adopted(), Some(1), "the previous run's grant is adopted");
    // Start-up re-applies (and so does SIGHUP): grants are untouched.
    b.apply(&protecting(&[PORT])).unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    assert_eq!(
        nft(lab.server(), "list chain inet knockd input"),
        chain_before
    );
    let listed = b.list().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let left = listed[0].remaining;
    assert!(
        left < Duration::from_secs(5) && left + t0.elapsed() > Duration::from_millis(4500),
        "remaining {left:?} after {:?}",
        t0.elapsed()
    );
    assert!(can(&lab, 1, false, PORT));
    // It still expires at the time set by the first run.
    assert!(wait_until(Duration::from_secs(7), || b
        .list()
        .unwrap()
        .is_empty()));
    assert!(
        t0.elapsed() < Duration::from_millis(6000),
        "{:?}",
        t0.elapsed()
    );
    assert!(cannot(&lab, 1, false, PORT));
    // A ruleset change on reload keeps the grant set and updates the protected ports.
    b.grant(c1, tcp(PORT), Duration::from_secs(30)).unwrap();
    b.apply(&protecting(&[PORT, 2223])).unwrap();
    assert_eq!(b.list().unwrap().len(), 1);
    let p = nft(lab.server(), "list set inet knockd protected");
    assert!(p.contains("tcp . 2222") && p.contains("tcp . 2223"), "{p}");
    b.teardown().unwrap();
    // Nft_Cleanup was off: the table stays.
    assert!(nft(lab.server(), "list tables").contains("table inet knockd"));
}

#[test]
fn a_flushed_ruleset_is_noticed_and_restored() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let _svc = lab.server().tcp_service(PORT).unwrap();
    let b = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    assert!(b.verify().unwrap());
    // A firewall reload that starts with `flush ruleset`.
    nft(lab.server(), "flush ruleset");
    assert!(!b.verify().unwrap(), "verify notices the missing table");
    // The next grant loads the last ruleset again by itself.
    let c1 = IpAddr::from(lab.client_v4(1));
    b.grant(c1, tcp(PORT), Duration::from_secs(30)).unwrap();
    assert!(b.verify().unwrap());
    assert!(can(&lab, 1, false, PORT));
    b.remove().unwrap();
}

/// `KNOCKD_GRANTS_CRASH_HELPER=1`: run as a separate process inside a lab by
/// `kill_9_right_after_a_grant`: open, apply, grant, say so, wait to be killed.
#[test]
#[ignore = "helper process of kill_9_right_after_a_grant"]
fn crash_helper() {
    if std::env::var("KNOCKD_GRANTS_CRASH_HELPER").is_err() {
        return;
    }
    let addr: IpAddr = std::env::var("KNOCKD_GRANTS_ADDR")
        .unwrap()
        .parse()
        .unwrap();
    let b = NftBackend::open(NftConfig::table("knockd")).unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    let d = b.grant(addr, tcp(PORT), Duration::from_secs(4)).unwrap();
    println!("GRANTED in {:?}", d.latency);
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn kill_9_right_after_a_grant() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let _svc = lab.server().tcp_service(PORT).unwrap();
    let exe = std::env::current_exe().unwrap();
    let addr = lab.client_v4(1).to_string();
    let mut child = lab
        .server()
        .spawn(&[
            "env",
            "KNOCKD_GRANTS_CRASH_HELPER=1",
            &format!("KNOCKD_GRANTS_ADDR={addr}"),
            exe.to_str().unwrap(),
            "crash_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .unwrap();
    child
        .wait_for_line("GRANTED", Duration::from_secs(10))
        .unwrap();
    let t0 = Instant::now();
    child.signal(libc::SIGKILL).unwrap();
    child.wait_timeout(Duration::from_secs(5)).unwrap();
    assert!(can(&lab, 1, false, PORT), "grant alive after kill -9");
    let b = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    assert_eq!(b.adopted(), Some(1));
    b.apply(&protecting(&[PORT])).unwrap();
    assert!(wait_until(Duration::from_secs(6), || b
        .list()
        .unwrap()
        .is_empty()));
    let gone = t0.elapsed();
    assert!(gone < Duration::from_millis(4500), "expired after {gone:?}");
    assert!(cannot(&lab, 1, false, PORT), "closed once expired");
    b.remove().unwrap();
    assert!(!nft(lab.server(), "list tables").contains("knockd"));
}

const USER_RULESET: &str = "\
add table inet filter
add chain inet filter input { type filter hook input priority filter; policy drop; }
add rule inet filter input ct state established,related accept
add rule inet filter input iif lo accept
add rule inet filter input meta l4proto ipv6-icmp accept
";

#[test]
fn nft_chain_mode_inserts_into_a_user_chain() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _svc = lab.server().tcp_service(PORT).unwrap();
    nft_script(lab.server(), USER_RULESET);
    let c1 = IpAddr::from(lab.client_v4(1));
    assert!(cannot(&lab, 1, false, PORT), "the user's policy drop");

    // An own table cannot open what another table's chain drops: why Nft_Chain exists.
    let own = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    own.apply(&protecting(&[PORT])).unwrap();
    own.grant(c1, tcp(PORT), Duration::from_secs(30)).unwrap();
    assert!(
        cannot(&lab, 1, false, PORT),
        "granted in own table, dropped by the user's"
    );
    own.remove().unwrap();

    let chain = NftChainRef {
        family: "inet".into(),
        table: "filter".into(),
        chain: "input".into(),
    };
    let missing = NftChainRef {
        chain: "nosuch".into(),
        ..chain.clone()
    };
    let e = open_in(lab.server(), NftConfig::user_chain(missing)).unwrap_err();
    assert!(matches!(e, NftError::UserChainMissing { .. }), "{e:?}");
    assert!(e.to_string().contains("inet filter nosuch"), "{e}");

    let b = open_in(lab.server(), NftConfig::user_chain(chain)).unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    let listing = nft(lab.server(), "-a list chain inet filter input");
    assert_eq!(
        listing.matches("jump knockd_input").count(),
        1,
        "one jump after two applies:\n{listing}"
    );
    let first_rule = listing
        .lines()
        .find(|l| l.contains("# handle") && !l.contains("chain input"))
        .unwrap_or("");
    assert!(
        first_rule.contains("jump knockd_input"),
        "jump first:\n{listing}"
    );
    assert!(cannot(&lab, 1, false, PORT));
    let d = b.grant(c1, tcp(PORT), Duration::from_secs(30)).unwrap();
    assert!(!d.refreshed);
    assert!(
        can(&lab, 1, false, PORT),
        "granted through the user's chain"
    );
    assert!(cannot(&lab, 2, false, PORT), "client 2 still dropped");
    assert_eq!(b.list().unwrap().len(), 1);
    let sets = nft(lab.server(), "list sets inet");
    assert!(
        sets.contains("knockd_grants4") && sets.contains("knockd_grants6"),
        "{sets}"
    );

    b.remove().unwrap();
    let after = nft(lab.server(), "list table inet filter");
    assert!(
        !after.contains("knockd"),
        "knockd objects removed:\n{after}"
    );
    assert_eq!(
        after.matches("accept").count(),
        3,
        "user rules intact:\n{after}"
    );
}

/// `DAY HH:MM` of a zoned time, for a schedule line.
fn day_hhmm(z: &jiff::Zoned) -> (String, String) {
    const D: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    (
        D[z.weekday().to_monday_zero_offset() as usize].to_string(),
        format!("{:02}:{:02}", z.hour(), z.minute()),
    )
}

#[test]
fn scheduled_doors_open_inside_their_window_only() {
    if !require_root() {
        return;
    }
    // Local time in a +05:30 zone: a wrong (or no) conversion to the kernel's UTC frames would
    // put the windows 5.5 hours off, and the "open now" door would be closed.
    let offset = 5 * 3600 + 1800;
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::from_seconds(offset).unwrap());
    let now = jiff::Timestamp::now().to_zoned(tz);
    let hour = jiff::SignedDuration::from_hours(1);
    let (d1, a1) = day_hhmm(&now.checked_sub(hour).unwrap());
    let (_, b1) = day_hhmm(&now.checked_add(hour).unwrap());
    let (d2, a2) = day_hhmm(&now.checked_add(hour * 2).unwrap());
    let (_, b2) = day_hhmm(&now.checked_add(hour * 3).unwrap());
    let conf = format!(
        "[open-now]\n schedule = {d1} {a1}-{b1}\n from = 198.18.1.2, 2001:2:0:1::2\n open = tcp/8081\n\
         [later]\n schedule = {d2} {a2}-{b2}\n open = tcp/8082\n\
         [ssh]\n sequence = 7000,8000\n open = tcp/{PORT}\n"
    );
    let cfg = knock_core::config::parse(&conf, "test.conf").unwrap();
    let clock = ScheduleClock {
        utc_offset_secs: offset,
        kernel_minuteswest: kernel_minuteswest(),
        valid_until: None,
    };
    let rs = GrantRuleset::from_config(&cfg, &clock);

    let lab = Lab::new(2).unwrap();
    let _s1 = lab.server().tcp_service(8081).unwrap();
    let _s2 = lab.server().tcp_service(8082).unwrap();
    let _s3 = lab.server().tcp_service(PORT).unwrap();
    let b = open_in(lab.server(), NftConfig::from_config(&cfg)).unwrap();
    b.apply(&rs).unwrap();
    let table = nft(lab.server(), "list table inet knockd");
    eprintln!("{conf}\n{table}");

    assert!(
        can(&lab, 1, false, 8081),
        "inside the window, from an allowed source"
    );
    assert!(
        can(&lab, 1, true, 8081),
        "inside the window, allowed IPv6 source"
    );
    assert!(
        cannot(&lab, 2, false, 8081),
        "inside the window, source not in from"
    );
    assert!(cannot(&lab, 1, false, 8082), "outside the window");
    assert!(cannot(&lab, 2, false, 8082), "outside the window");
    assert!(cannot(&lab, 1, false, PORT), "knock door without a grant");
    b.teardown().unwrap();
}

/// Drops CAP_NET_ADMIN from the calling thread's effective set (capset acts per thread).
fn drop_net_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const V3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut h = Header {
        version: V3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with valid v3 header and two data structs.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()),
            0
        );
        d[0].effective &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()),
            0
        );
    }
}

#[test]
fn clear_errors_when_nftables_cannot_be_used() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(0).unwrap();
    // Without CAP_NET_ADMIN.
    let e = lab
        .server()
        .run_in(|| {
            drop_net_admin();
            NftBackend::open(NftConfig::table("knockd"))
        })
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, NftError::PermissionDenied { .. }), "{e:?}");
    assert!(e.is_fatal());
    let msg = e.to_string();
    assert!(msg.contains("CAP_NET_ADMIN"), "{msg}");
    eprintln!("without CAP_NET_ADMIN: {msg}");
    // As `nobody` through setpriv: nft itself says the same.
    let out = lab
        .server()
        .output(&[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "nft",
            "list",
            "ruleset",
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
    // `nft` missing.
    let cfg = NftConfig {
        nft_path: "/nonexistent/sbin/nft".into(),
        ..NftConfig::table("knockd")
    };
    let e = open_in(lab.server(), cfg).unwrap_err();
    assert!(matches!(e, NftError::NftMissing { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/sbin/nft"), "{e}");
    eprintln!("nft missing: {e}");
    // Grants before the ruleset exists.
    let b = open_in(lab.server(), NftConfig::table("knockd")).unwrap();
    let e = b
        .grant(
            "198.18.1.2".parse().unwrap(),
            tcp(PORT),
            Duration::from_secs(3),
        )
        .unwrap_err();
    assert!(matches!(e, NftError::NotApplied { .. }), "{e:?}");
    eprintln!("before apply: {e}");
    // `Nft_Chain` in an `ip` table cannot take IPv6 grants.
    nft_script(
        lab.server(),
        "add table ip filter\nadd chain ip filter input { type filter hook input priority 0; }\n",
    );
    let b = open_in(
        lab.server(),
        NftConfig::user_chain(NftChainRef {
            family: "ip".into(),
            table: "filter".into(),
            chain: "input".into(),
        }),
    )
    .unwrap();
    b.apply(&protecting(&[PORT])).unwrap();
    let e = b
        .grant(
            "2001:2::2".parse().unwrap(),
            tcp(PORT),
            Duration::from_secs(3),
        )
        .unwrap_err();
    assert!(matches!(e, NftError::FamilyNotHandled { .. }), "{e:?}");
    b.grant(
        "198.18.1.2".parse().unwrap(),
        tcp(PORT),
        Duration::from_secs(3),
    )
    .unwrap();
}
