//! End to end: rotating doors (`secret_file`, sequences derived from a shared secret and the
//! clock, see `knock_core::rotate`) of our `knockd` in the server namespace of a throw-away
//! [`Lab`], knocked by our `knock --secret-file`, by `nc`/`hping3` with the ports of
//! `knock --print`, swept by `nmap`/`hping3`; plus the startup warnings about weak static
//! doors. Root only; every test builds its own lab, so they run in parallel.
//!
//! Needs the workspace binaries (`cargo build --workspace`) and the Debian packages
//! `netcat-openbsd`, `hping3`, `nmap`, `nftables`, `iproute2`.

mod common;
mod support_rotating;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use netns_testkit::{Lab, require_root, wait_until};
use support_rotating::*;

fn c4(lab: &Lab, k: usize) -> IpAddr {
    lab.client_ip(k, false)
}
fn c6(lab: &Lab, k: usize) -> IpAddr {
    lab.client_ip(k, true)
}
fn s4(lab: &Lab, k: usize) -> IpAddr {
    lab.server_ip(k, false)
}
fn s6(lab: &Lab, k: usize) -> IpAddr {
    lab.server_ip(k, true)
}

/// `start_command = echo <tag> %IP% >> <marker>` and a 10 s sequence timeout.
fn marker_lines(lab: &Lab, marker: &str, tag: &str) -> String {
    format!(
        " seq_timeout = 10\n start_command = echo {tag} %IP% >> {}\n",
        lab.path(marker).display()
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Our client.

/// `knock --secret-file F HOST` opens rotating doors:
///
/// - a door with nothing but `secret_file` opens to a client with nothing but `--secret-file`
///   (the daemon's and the client's defaults agree: 4 knocks in 10000-60000, step 30);
/// - a TCP door whose `open = tcp/22` really lets the knocker, and only the knocker, reach a
///   service behind nftables, over IPv4 then IPv6;
/// - a UDP door, over IPv4 then IPv6.
///
/// The sequence `knock -v` reports is the one the test derives with `knock_core::rotate` for
/// the current step. A door opens once per step's sequence, so the IPv6 knocks (another
/// source) wait for the next step (doors with `step = 5` keep that short).
#[test]
fn our_client_opens_tcp_and_udp_doors_over_ipv4_and_ipv6() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let plain = new_secret(&lab, "plain.secret");
    let ssh = Rot::new("ssh", new_secret(&lab, "ssh.secret"), 4, (10000, 60000), 5);
    let udp = Rot::new(
        "udpdoor",
        new_secret(&lab, "udp.secret"),
        5,
        (30000, 40000),
        5,
    )
    .udp();
    let marker = lab.path("ran");
    let doors = format!(
        "[plain]\n secret_file = {}\n{}{}{}",
        s(&plain.path),
        marker_lines(&lab, "ran", "plain"),
        ssh.conf(&format!(
            "{} open = tcp/22\n open_timeout = 30\n",
            marker_lines(&lab, "ran", "ssh")
        )),
        udp.conf(&marker_lines(&lab, "ran", "udp"))
    );
    let service = lab.server().tcp_service(22).unwrap();
    let mut d = Knockd::start(&lab, IFACES, &doors);
    d.wait_log("nftables: created table inet knockd");
    let short = Duration::from_millis(700);

    // Defaults on both sides.
    let plain_rot = Rot::new("plain", plain.clone(), 4, (10000, 60000), 30);
    let t0 = plain_rot.now();
    let out = our_knock(
        &lab,
        2,
        &[
            "-v",
            "--secret-file",
            s(&plain.path),
            &s4(&lab, 2).to_string(),
        ],
    );
    let t1 = plain_rot.now();
    let sent = verbose_ports(&out);
    assert!(
        sent == plain_rot.seq(t0) || sent == plain_rot.seq(t1),
        "knock -v sent {sent:?}; steps {t0}..{t1} give {:?} / {:?}",
        plain_rot.seq(t0),
        plain_rot.seq(t1)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for p in &sent {
        assert!(
            stdout.contains(&format!("hitting tcp 198.18.2.1:{p}\n")),
            "{stdout}"
        );
    }
    d.wait_opened(c4(&lab, 2), "plain", 1);

    // Shut: nftables drops new connections to 22.
    assert!(!lab.client(1).tcp_connect_ok(s4(&lab, 1), 22, short));
    assert!(!lab.client(1).tcp_connect_ok(s6(&lab, 1), 22, short));
    assert_eq!(service.accepted(), 0);

    // IPv4: TCP door from client 1, UDP door from client 2.
    let mut ssh_args = ssh.client_args();
    ssh_args.push(s4(&lab, 1).to_string());
    let mut udp_args = udp.client_args();
    udp_args.push(s4(&lab, 2).to_string());
    our_knock_s(&lab, 1, &ssh_args);
    our_knock_s(&lab, 2, &udp_args);
    let used = ssh.now();
    d.wait_opened(c4(&lab, 1), "ssh", 1);
    d.wait_opened(c4(&lab, 2), "udpdoor", 1);
    d.wait_log("198.18.1.2: ssh: granted tcp/22 for 30 s");
    assert!(
        lab.client(1).tcp_connect_ok(s4(&lab, 1), 22, T),
        "client 1 cannot reach tcp/22 after knocking\n{}",
        d.state()
    );
    assert!(wait_until(T, || service.accepted() == 1));
    assert_eq!(service.peers()[0].ip(), c4(&lab, 1));
    // The grant is the knocker's only: client 2 (which did not knock this door) is still out,
    // and so is client 1's IPv6 address.
    assert!(!lab.client(2).tcp_connect_ok(s4(&lab, 2), 22, short));
    assert!(!lab.client(1).tcp_connect_ok(s6(&lab, 1), 22, short));

    // IPv6, in a later step.
    wait_past(ssh.step, used);
    ssh_args.pop();
    ssh_args.push(s6(&lab, 1).to_string());
    udp_args.pop();
    udp_args.push(s6(&lab, 2).to_string());
    our_knock_s(&lab, 1, &ssh_args);
    our_knock_s(&lab, 2, &udp_args);
    d.wait_opened(c6(&lab, 1), "ssh", 1);
    d.wait_opened(c6(&lab, 2), "udpdoor", 1);
    d.wait_log("2001:2:0:1::2: ssh: granted tcp/22 for 30 s");
    assert!(lab.client(1).tcp_connect_ok(s6(&lab, 1), 22, T));

    let mut ran = wait_lines(&marker, 5);
    ran.sort();
    assert_eq!(
        ran,
        [
            "plain 198.18.2.2",
            "ssh 198.18.1.2",
            "ssh 2001:2:0:1::2",
            "udp 198.18.2.2",
            "udp 2001:2:0:2::2"
        ]
    );
    assert_eq!(d.opened_any("ssh"), 2, "{}", d.log_text());
    assert_eq!(d.opened_any("udpdoor"), 2, "{}", d.log_text());
    assert_eq!(d.counter("replays"), 0, "{}", d.log_text());
    d.assert_running();
}

// ---------------------------------------------------------------------------------------------
// 2. Plain tools with `knock --print`.

/// What a user without our client does: `knock --print` on a machine that has the secret, then
/// `nc -z`, `hping3 -S` or `echo | nc -u` with the printed ports, in one shell line. TCP over
/// IPv4 and IPv6 and with hping3, UDP over IPv4 and IPv6. Each opener of a door knocks in a
/// step of its own (see [`wait_past`]).
#[test]
fn plain_tools_with_printed_ports_open_the_door() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let tcp = Rot::new(
        "tcpdoor",
        new_secret(&lab, "tcp.secret"),
        4,
        (10000, 60000),
        5,
    );
    let udp = Rot::new(
        "udpdoor",
        new_secret(&lab, "udp.secret"),
        4,
        (10000, 60000),
        5,
    )
    .udp();
    let marker = lab.path("ran");
    let doors = format!(
        "{}{}",
        tcp.conf(&marker_lines(&lab, "ran", "tcp")),
        udp.conf(&marker_lines(&lab, "ran", "udp"))
    );
    let mut d = Knockd::start(&lab, IFACES, &doors);
    let knock = netns_testkit::bin("knock").unwrap();
    let knock = s(&knock);

    // --print: the ports on stdout, the validity on stderr.
    let t0 = tcp.now();
    let out = our_knock(
        &lab,
        1,
        &[
            "--print",
            "--step",
            "5",
            "--secret-file",
            s(&tcp.secret.path),
        ],
    );
    let t1 = tcp.now();
    let printed: Vec<u16> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        printed == tcp.seq(t0) || printed == tcp.seq(t1),
        "{printed:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("valid for ") && err.contains(" of 5 s)"),
        "{err}"
    );

    let print_tcp = format!(
        "{knock} --print --step 5 --secret-file {}",
        s(&tcp.secret.path)
    );
    // The printed ports do not depend on the protocol; -u is given for the reader.
    let print_udp = format!(
        "{knock} --print -u --step 5 --secret-file {}",
        s(&udp.secret.path)
    );
    let nc = |k: usize, dst: IpAddr| {
        lab.client(k)
            .sh(&format!(
                "for p in $({print_tcp}); do nc -z -w1 {dst} $p; done; true"
            ))
            .unwrap();
    };
    let nc_u = |k: usize, dst: IpAddr| {
        lab.client(k)
            .sh(&format!(
                "for p in $({print_udp}); do echo | nc -u -w1 {dst} $p; done; true"
            ))
            .unwrap();
    };

    // Step A: nc -z over IPv4 (client 1), nc -u over IPv4 (client 2).
    nc(1, s4(&lab, 1));
    nc_u(2, s4(&lab, 2));
    let a = tcp.now();
    d.wait_opened(c4(&lab, 1), "tcpdoor", 1);
    d.wait_opened(c4(&lab, 2), "udpdoor", 1);

    // Step B: the same over IPv6.
    let b = wait_past(tcp.step, a);
    nc(1, s6(&lab, 1));
    nc_u(2, s6(&lab, 2));
    d.wait_opened(c6(&lab, 1), "tcpdoor", 1);
    d.wait_opened(c6(&lab, 2), "udpdoor", 1);
    let b = b.max(tcp.now());

    // Step C: hping3 -S (IPv4 only) from client 2.
    wait_past(tcp.step, b);
    let out = lab
        .client(2)
        .sh(&format!(
            "for p in $({print_tcp}); do hping3 -q -S -c 1 -p $p {}; done 2>&1; true",
            s4(&lab, 2)
        ))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("1 packets transmitted").count(),
        4,
        "hping3 did not send 4 SYNs: {text}"
    );
    d.wait_opened(c4(&lab, 2), "tcpdoor", 1);

    let mut ran = wait_lines(&marker, 5);
    ran.sort();
    assert_eq!(
        ran,
        [
            "tcp 198.18.1.2",
            "tcp 198.18.2.2",
            "tcp 2001:2:0:1::2",
            "udp 198.18.2.2",
            "udp 2001:2:0:2::2"
        ]
    );
    assert_eq!(d.opened_any("tcpdoor"), 3);
    assert_eq!(d.opened_any("udpdoor"), 2);
    assert_eq!(d.counter("replays"), 0, "{}", d.log_text());
}

// ---------------------------------------------------------------------------------------------
// 3. The kernel filter passes the whole range; strays reset.

/// Every in-range port reaches the daemon (the kernel filter is `tcp dst portrange LO-HI`, not
/// the current sequence's ports), ports just outside the range and UDP datagrams to the range's
/// port numbers do not; an in-range packet that is not the next expected knock resets the
/// attempt and is evaluated as a first knock.
#[test]
fn the_whole_range_reaches_the_daemon_and_strays_reset() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let rot = Rot::new("r", new_secret(&lab, "r.secret"), 4, (20000, 20999), 30);
    let marker = lab.path("ran");
    let mut d = Knockd::start(&lab, IFACES, &rot.conf(&marker_lines(&lab, "ran", "r")));
    let dst = s4(&lab, 1);
    let me = c4(&lab, 1);

    // Counting: the edges and 16 ports across the range, none of them a knock of the steps
    // around now (so no Stage line can come from them).
    let t = fresh_step(rot.step, Duration::from_secs(8));
    let used = rot.window_ports(t);
    let mut strays: Vec<u16> = [20000, 20001, 20998, 20999]
        .into_iter()
        .chain((0..16).map(|i| 20030 + i * 61))
        .collect();
    strays.retain(|p| !used.contains(p));
    let (seen0, matched0) = (d.counter("packets_seen"), d.counter("packets_matched"));
    let mut hits: Vec<Hit> = [19999, 21000, 15000, 25000]
        .into_iter()
        .map(Hit::Nc)
        .collect();
    hits.extend([20000, 20500, 20999].map(Hit::NcU));
    hits.extend(strays.iter().map(|&p| Hit::Nc(p)));
    send(&lab, 1, dst, &hits);
    d.sync(&lab, 1, false);
    let seen = d.counter("packets_seen") - seen0;
    let matched = d.counter("packets_matched") - matched0;
    // + 1: the sync datagram.
    assert_eq!(
        matched,
        strays.len() as u64 + 1,
        "packets_matched grew by {matched} for {} in-range SYNs\n{}",
        strays.len(),
        d.state()
    );
    assert_eq!(
        seen, matched,
        "the capture delivered {seen} packets, {matched} of them knocks: out-of-range packets got through the kernel filter"
    );
    assert_eq!(d.count("198.18.1.2: r: Stage"), 0, "{}", d.log_text());
    assert_eq!(d.opened(me, "r"), 0);
    assert!(!marker.exists());

    // A stray in the middle of the sequence resets it: the rest does not open.
    let t = fresh_step(rot.step, Duration::from_secs(8));
    let q = rot.seq(t);
    let stray = rot.stray(t, 0);
    send(
        &lab,
        1,
        dst,
        &[
            Hit::Nc(q[0]),
            Hit::Nc(q[1]),
            Hit::Nc(stray),
            Hit::Nc(q[2]),
            Hit::Nc(q[3]),
        ],
    );
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "r"), 0, "{}", d.log_text());
    // (q[2] or q[3] could, very rarely, be the first port of the previous or next step's
    // sequence and log a Stage 1 of its own: only stages 2 and 3 are counted exactly.)
    assert!(d.count("198.18.1.2: r: Stage 1") >= 1, "{}", d.log_text());
    assert_eq!(d.count("198.18.1.2: r: Stage 2"), 1, "{}", d.log_text());
    assert_eq!(d.count("198.18.1.2: r: Stage 3"), 0, "{}", d.log_text());
    let stage1 = d.count("198.18.1.2: r: Stage 1");

    // A wrong knock that is the sequence's first port resets and starts over at stage 1: the
    // immediate retry opens.
    send(
        &lab,
        1,
        dst,
        &[
            Hit::Nc(q[0]),
            Hit::Nc(q[1]),
            Hit::Nc(q[0]),
            Hit::Nc(q[1]),
            Hit::Nc(q[2]),
            Hit::Nc(q[3]),
        ],
    );
    d.wait_opened(me, "r", 1);
    // Stage 1 twice: the first q[0], and the second q[0] after the reset.
    assert!(
        d.count("198.18.1.2: r: Stage 1") >= stage1 + 2,
        "{}",
        d.log_text()
    );

    // A UDP datagram to a port number of the range is not a knock of a TCP door: no reset.
    send(
        &lab,
        1,
        dst,
        &[
            Hit::Nc(q[0]),
            Hit::Nc(q[1]),
            Hit::NcU(stray),
            Hit::Nc(q[2]),
            Hit::Nc(q[3]),
        ],
    );
    d.wait_opened(me, "r", 2);
    assert_eq!(wait_lines(&marker, 1)[0], "r 198.18.1.2");
    d.assert_running();
}

// ---------------------------------------------------------------------------------------------
// 4. Sweeps.

/// Full-range SYN sweeps from client namespaces: `nmap -sS -r` (ascending), `hping3 -p ++LO`
/// (ascending, one SYN per port) and `nmap -sS` (random order) over a range holding the
/// rotating door's range (1000 ports: its current sequence is necessarily in it) and an
/// ascending static door next to it. The sweeps reach the rotating door's first knock (Stage
/// 1 lines) but never open it, while the ascending static door falls to the sequential ones,
/// which shows the sweeps are real. Then four ascending passes over the door's range within
/// its `seq_timeout` (which would open a matcher that did not reset on wrong in-range knocks).
/// Bounded: `--max-rate`, `--max-retries 1`, `-c`, `timeout`.
#[test]
fn sequential_and_random_sweeps_never_open_a_rotating_door() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let rot = Rot::new("rot", new_secret(&lab, "rot.secret"), 4, (20000, 20999), 30);
    let marker = lab.path("ran");
    let doors = format!(
        "{}[weak]\n sequence = 21100,21500,21900\n tcpflags = syn\n seq_timeout = 20\n",
        rot.conf(&format!(
            " seq_timeout = 30\n start_command = echo rot %IP% >> {}\n",
            marker.display()
        ))
    );
    let mut d = Knockd::start(&lab, IFACES, &doors);
    let sweep = "20000-21999";
    // Knock ports in the swept range: the rotating door's 1000 and the static door's 3. Each
    // sweep sends one SYN per port (nmap: at most one retransmission).
    let watched = 1003u64;

    let run_sweep = |d: &mut Knockd, k: usize, what: &str, args: &[&str]| {
        let t = rot.now();
        // The current sequence (and its neighbours) lie inside the swept range.
        for p in rot.window_ports(t) {
            assert!((20000..=21999).contains(&p));
        }
        let stage1 = d.count(&format!("{}: rot: Stage 1", c4(&lab, k)));
        let matched0 = d.counter("packets_matched");
        let started = Instant::now();
        let mut a = vec!["timeout", "60"];
        a.extend_from_slice(args);
        let out = lab.client(k).output(&a).unwrap();
        let took = started.elapsed();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{what}: {out:?}\n{text}");
        d.sync(&lab, k, false);
        let matched = d.counter("packets_matched") - matched0;
        eprintln!("{what}: {matched} packets matched in {took:?}");
        // + 1: the sync datagram.
        assert!(
            (watched + 1..=2 * watched + 1).contains(&matched),
            "{what}: {matched} knock packets reached the daemon, expected {} to {}\n{text}",
            watched + 1,
            2 * watched + 1
        );
        assert!(
            d.count(&format!("{}: rot: Stage 1", c4(&lab, k))) > stage1,
            "{what} never hit the rotating door's first knock\n{}",
            d.log_text()
        );
        assert_eq!(d.opened_any("rot"), 0, "{what} opened it\n{}", d.log_text());
        text
    };

    let dst1 = s4(&lab, 1).to_string();
    let text = run_sweep(
        &mut d,
        1,
        "nmap -sS -r",
        &[
            "nmap",
            "-n",
            "-Pn",
            "-sS",
            "-r",
            "--max-retries",
            "1",
            "--max-rate",
            "4000",
            "-p",
            sweep,
            &dst1,
        ],
    );
    assert!(text.contains("2000 closed"), "{text}");
    assert!(
        d.opened(c4(&lab, 1), "weak") >= 1,
        "the ascending sweep did not open the ascending static door: is it a sweep?\n{}",
        d.log_text()
    );
    let weak = d.opened(c4(&lab, 1), "weak");

    let text = run_sweep(
        &mut d,
        1,
        "hping3 -S -p ++20000",
        &[
            "hping3", "-q", "-S", "-p", "++20000", "-c", "2000", "-i", "u400", &dst1,
        ],
    );
    assert!(text.contains("2000 packets transmitted"), "{text}");
    assert!(d.opened(c4(&lab, 1), "weak") > weak, "{}", d.log_text());

    let dst2 = s4(&lab, 2).to_string();
    let text = run_sweep(
        &mut d,
        2,
        "nmap -sS (random order)",
        &[
            "nmap",
            "-n",
            "-Pn",
            "-sS",
            "--max-retries",
            "1",
            "--max-rate",
            "4000",
            "-p",
            sweep,
            &dst2,
        ],
    );
    assert!(text.contains("2000 closed"), "{text}");

    // Four ascending passes over the door's range within its seq_timeout: a matcher that
    // ignored wrong in-range knocks instead of resetting would advance one stage per pass.
    let mut four = vec!["timeout", "60", "sh", "-c"];
    let script = format!(
        "for i in 1 2 3 4; do nmap -n -Pn -sS -r --max-retries 1 --max-rate 4000 -p 20000-20999 {dst1} || exit 1; done"
    );
    four.push(&script);
    let stage1 = d.count("198.18.1.2: rot: Stage 1");
    let matched0 = d.counter("packets_matched");
    let started = Instant::now();
    let out = lab.client(1).output(&four).unwrap();
    assert!(out.status.success(), "{out:?}");
    d.sync(&lab, 1, false);
    let matched = d.counter("packets_matched") - matched0;
    eprintln!(
        "4 x nmap -sS -r: {matched} packets matched in {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "slower than the door's seq_timeout: this run shows nothing"
    );
    assert!((4001..=8001).contains(&matched), "{matched}");
    assert_eq!(
        d.opened_any("rot"),
        0,
        "four sequential passes opened it\n{}",
        d.log_text()
    );
    // Each pass started over at stage 1.
    assert!(
        d.count("198.18.1.2: rot: Stage 1") >= stage1 + 4,
        "{}",
        d.log_text()
    );

    assert!(!marker.exists(), "the rotating door's command ran");
    assert_eq!(d.counter("replays"), 0);

    // The door still works for its owner.
    let mut args = rot.client_args();
    args.push(dst1.clone());
    our_knock_s(&lab, 1, &args);
    d.wait_opened(c4(&lab, 1), "rot", 1);
    assert_eq!(wait_lines(&marker, 1), ["rot 198.18.1.2"]);
}

// ---------------------------------------------------------------------------------------------
// 4b. The server's own outbound traffic.

/// The default range 10000-60000 holds Linux's ephemeral ports (32768-60999): every segment a
/// peer sends to one of the server's outbound connections is a packet to an in-range port.
/// Without `tcpflags`, each resets that peer's knock attempt, so a client the server is
/// downloading from cannot knock (here with 100 ms between knocks, which makes it certain);
/// with `tcpflags = syn,!ack` those segments are ignored and the same knock opens. This is
/// why docs/rotating.md recommends `tcpflags = syn,!ack` (or a range below 32768).
#[test]
fn outbound_traffic_in_the_range_resets_unless_tcpflags_syn() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let plain = Rot::new("plain", new_secret(&lab, "p.secret"), 4, (10000, 60000), 30);
    let syn = Rot::new("syn", new_secret(&lab, "s.secret"), 4, (10000, 60000), 30);
    let doors = format!(
        "{}{}",
        plain.conf(" seq_timeout = 10\n"),
        syn.conf(" seq_timeout = 10\n tcpflags = syn,!ack\n")
    );
    let mut d = Knockd::start(&lab, IFACES, &doors);

    // Client 1 streams to the server for at most 20 s (about 5 MB/s); the server reads it on
    // an outbound connection, from an ephemeral port.
    let _sender = lab
        .client(1)
        .spawn(&[
            "sh",
            "-c",
            "while :; do head -c 50000 /dev/zero; sleep 0.01; done | timeout 20 nc -N -l 2222",
        ])
        .unwrap();
    assert!(
        wait_until(T, || {
            lab.client(1)
                .run_stdout(&["ss", "-Hltn", "sport = :2222"])
                .is_ok_and(|o| !o.trim().is_empty())
        }),
        "nc did not listen"
    );
    let _reader = lab
        .server()
        .spawn(&["sh", "-c", "timeout 20 nc -d 198.18.1.2 2222 > /dev/null"])
        .unwrap();
    let m0 = d.counter("packets_matched");
    assert!(
        wait_until(T, || d.counter("packets_matched") > m0 + 50),
        "the stream's segments do not reach the matcher\n{}",
        d.state()
    );

    let knock = |rot: &Rot| {
        let mut a = vec!["-d".to_string(), "100".to_string()];
        a.extend(rot.client_args());
        a.push(s4(&lab, 1).to_string());
        our_knock_s(&lab, 1, &a);
    };
    knock(&plain);
    d.sync(&lab, 1, false);
    assert_eq!(
        d.opened(c4(&lab, 1), "plain"),
        0,
        "the stream's segments did not reset the attempt: this test shows nothing\n{}",
        d.log_text()
    );
    knock(&syn);
    d.wait_opened(c4(&lab, 1), "syn", 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Replay from another source.

/// Once a step's sequence opened the door for client 1, the same packets from client 2 (or
/// from client 1's IPv6 address) are refused with a log line; client 1 may knock again, and
/// client 2 gets in with the next step's sequence.
#[test]
fn a_used_sequence_is_refused_from_another_source() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let rot = Rot::new("r", new_secret(&lab, "r.secret"), 4, (10000, 60000), 10);
    let marker = lab.path("ran");
    let mut d = Knockd::start(&lab, IFACES, &rot.conf(&marker_lines(&lab, "ran", "r")));

    let t = fresh_step(rot.step, Duration::from_secs(6));
    let mut args = vec!["-v".to_string()];
    args.extend(rot.client_args());
    args.push(s4(&lab, 1).to_string());
    let ports = verbose_ports(&our_knock_s(&lab, 1, &args));
    assert_eq!(ports, rot.seq(t));
    d.wait_opened(c4(&lab, 1), "r", 1);

    // Client 2 replays the packets it saw (to its own link's address of the server).
    nc_tcp(&lab, 2, s4(&lab, 2), &ports);
    d.sync(&lab, 2, false);
    assert_eq!(d.opened(c4(&lab, 2), "r"), 0, "{}", d.log_text());
    d.wait_log(
        "] 198.18.2.2: r: sequence already used by another source in this time step, refused",
    );
    // Client 1's IPv6 address is another source too.
    nc_tcp(&lab, 1, s6(&lab, 1), &ports);
    d.sync(&lab, 1, true);
    assert_eq!(d.opened(c6(&lab, 1), "r"), 0, "{}", d.log_text());
    d.wait_log(
        "] 2001:2:0:1::2: r: sequence already used by another source in this time step, refused",
    );
    assert_eq!(d.counter("replays"), 2);

    // The opener may knock the same sequence again.
    nc_tcp(&lab, 1, s4(&lab, 1), &ports);
    d.wait_opened(c4(&lab, 1), "r", 2);
    let done = step_now(rot.step);
    assert!(
        done <= t + 1,
        "the replays were tried more than one step after the opening ({t} -> {done}): the machine is too slow for this test"
    );

    // Client 2 is not locked out: the next step's sequence (accepted for clock skew) is free.
    nc_tcp(&lab, 2, s4(&lab, 2), &rot.seq(step_now(rot.step) + 1));
    d.wait_opened(c4(&lab, 2), "r", 1);

    let ran = wait_lines(&marker, 2);
    assert!(ran.contains(&"r 198.18.2.2".to_string()), "{ran:?}");
    assert!(
        ran.iter()
            .all(|l| l == "r 198.18.1.2" || l == "r 198.18.2.2"),
        "{ran:?}"
    );
    assert_eq!(d.counter("replays"), 2);
}

// ---------------------------------------------------------------------------------------------
// 6. Wrong parameters, expired steps, clock skew.

/// Runs `f` (which sends from client 1 and returns once sent) inside one step with at least
/// `need` of it left, syncs, and returns how many times `door` opened for client 1 meanwhile.
/// If the step changed before the daemon had processed everything (a very slow machine),
/// tries again, at most 3 times.
fn in_one_step(
    lab: &Lab,
    d: &mut Knockd,
    rot: &Rot,
    need: Duration,
    mut f: impl FnMut(u64),
) -> usize {
    for _ in 0..3 {
        let t = fresh_step(rot.step, need);
        let before = d.opened(c4(lab, 1), &rot.name);
        f(t);
        d.sync(lab, 1, false);
        if step_now(rot.step) == t {
            return d.opened(c4(lab, 1), &rot.name) - before;
        }
        eprintln!("step {t} ended before the daemon processed the knocks; again");
    }
    panic!("three attempts crossed a step boundary");
}

/// A wrong secret, range, step, protocol or order never opens; neither do the sequences of two
/// steps ago or two steps ahead; the previous and next steps' sequences open (clock skew).
#[test]
fn wrong_parameters_and_expired_steps_never_open_skew_does() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let rot = Rot::new("r", new_secret(&lab, "r.secret"), 4, (20000, 29999), 10);
    let other = new_secret(&lab, "other.secret");
    let marker = lab.path("ran");
    let mut d = Knockd::start(&lab, IFACES, &rot.conf(&marker_lines(&lab, "ran", "r")));
    let dst = s4(&lab, 1);
    let need = Duration::from_secs(4);

    let with = |f: &dyn Fn(&mut Vec<String>)| {
        let mut a = rot.client_args();
        f(&mut a);
        a.push(dst.to_string());
        a
    };
    let set = |a: &mut Vec<String>, flag: &str, value: &str| {
        let i = a.iter().position(|x| x == flag).unwrap();
        a[i + 1] = value.to_string();
    };
    let wrong: Vec<(&str, Vec<String>)> = vec![
        (
            "wrong secret",
            with(&|a| set(a, "--secret-file", s(&other.path))),
        ),
        (
            "wrong range (inside the door's)",
            with(&|a| set(a, "--range", "20000-20999")),
        ),
        ("wrong step", with(&|a| set(a, "--step", "30"))),
        ("wrong protocol", with(&|a| a.push("-u".to_string()))),
    ];
    for (what, args) in &wrong {
        let n = in_one_step(&lab, &mut d, &rot, need, |_| {
            our_knock_s(&lab, 1, args);
        });
        assert_eq!(n, 0, "{what} opened the door\n{}", d.log_text());
    }
    // The right options (same helper) do open: the negatives above are not vacuous.
    let right = with(&|_| {});
    let n = in_one_step(&lab, &mut d, &rot, need, |_| {
        our_knock_s(&lab, 1, &right);
    });
    assert_eq!(n, 1, "{}", d.log_text());

    // Right ports, wrong order.
    let n = in_one_step(&lab, &mut d, &rot, need, |t| {
        let mut q = rot.seq(t);
        q.reverse();
        nc_tcp(&lab, 1, dst, &q);
    });
    assert_eq!(n, 0, "reversed order opened the door\n{}", d.log_text());

    // Two steps ago (expired) and two steps ahead: refused; not even a first knock.
    for delta in [-2i64, 2] {
        let mut first_of_window = false;
        let stage1 = d.count("198.18.1.2: r: Stage 1");
        let n = in_one_step(&lab, &mut d, &rot, need, |t| {
            let s = t.checked_add_signed(delta).unwrap();
            let q = rot.seq(s);
            let firsts: Vec<u16> = (t - 1..=t + 1).map(|w| rot.seq(w)[0]).collect();
            first_of_window = q.iter().any(|p| firsts.contains(p));
            nc_tcp(&lab, 1, dst, &q);
        });
        assert_eq!(
            n,
            0,
            "the sequence of step T{delta:+} opened the door\n{}",
            d.log_text()
        );
        if !first_of_window {
            assert_eq!(
                d.count("198.18.1.2: r: Stage 1"),
                stage1,
                "step T{delta:+}'s first port counted as a first knock\n{}",
                d.log_text()
            );
        }
    }

    // The previous and the next step: clock skew of up to one step either way.
    for delta in [-1i64, 1] {
        let n = in_one_step(&lab, &mut d, &rot, need, |t| {
            nc_tcp(&lab, 1, dst, &rot.seq(t.checked_add_signed(delta).unwrap()));
        });
        assert_eq!(
            n,
            1,
            "the sequence of step T{delta:+} did not open the door\n{}",
            d.log_text()
        );
    }
    assert_eq!(wait_lines(&marker, 1)[0], "r 198.18.1.2");
    assert_eq!(d.opened_any("r"), 3);
    assert_eq!(d.counter("replays"), 0);
}

// ---------------------------------------------------------------------------------------------
// 7. Startup warnings about weak static doors.

/// Each weakness of a static door is logged at startup (and on stderr); a good static door and
/// a rotating door get no warning.
#[test]
fn weak_static_doors_are_warned_about_at_startup() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    // A service listening on a knock port, started before the daemon.
    let _service = lab.server().tcp_service(7022).unwrap();
    let rot = Rot::new("rot", new_secret(&lab, "rot.secret"), 4, (10000, 60000), 30);
    let rotgood = Rot::new(
        "rotgood",
        new_secret(&lab, "rotgood.secret"),
        4,
        (10000, 60000),
        30,
    );
    let text = format!(
        "{}{}\
[asc]\n sequence = 7000,8000,9000\n tcpflags = syn\n\
[short]\n sequence = 8100,7100\n tcpflags = syn\n\
[busy]\n sequence = 7022,7300,7200\n tcpflags = syn\n\
[noflags]\n sequence = 3000,7000,1000\n\
[udp1]\n sequence = 5000:udp\n\
[good]\n sequence = 7000,9000,8000\n tcpflags = syn\n\
[goodudp]\n sequence = 5001:udp,5003:udp,5002:udp\n\
{}",
        options(&lab, ""),
        rotgood.conf(" tcpflags = syn,!ack\n"),
        rot.conf("")
    );
    let mut d = Knockd::start_text(&lab, IFACES, &text);
    // The warnings are written before the first packet is served: once a knock of [udp1] is
    // logged, they all are.
    lab.client(1).udp_send(s4(&lab, 1), 5000, b"x").unwrap();
    d.wait_opened(c4(&lab, 1), "udp1", 1);
    let log = d.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("] warning: ").map(|(_, w)| w))
        .collect();
    let of = |door: &str| -> Vec<&str> {
        warnings
            .iter()
            .copied()
            .filter(|w| w.starts_with(&format!("door [{door}]: ")))
            .collect()
    };
    let expect = |door: &str, needles: &[&str]| {
        let got = of(door);
        assert_eq!(got.len(), needles.len(), "door [{door}]: {got:?}\n{log}");
        for n in needles {
            assert!(
                got.iter().any(|w| w.contains(n)),
                "door [{door}]: no warning containing {n:?} in {got:?}"
            );
        }
    };
    expect(
        "asc",
        &["its ports ascend (7000,8000,9000): a sequential port scan (nmap -sS -r) opens it"],
    );
    expect(
        "short",
        &["its ports descend (8100,7100)", "only 2 knock(s)"],
    );
    expect(
        "busy",
        &["a service listens on tcp/7022: its ordinary clients knock on this door"],
    );
    expect(
        "noflags",
        &["TCP knocks without \"tcpflags = syn\": any TCP segment (RST, ACK) counts as a knock"],
    );
    expect(
        "udp1",
        &[
            "only 1 knock(s)",
            "a single UDP port (5000): any datagram to it, from anyone, opens the door",
        ],
    );
    expect("good", &[]);
    expect("goodudp", &[]);
    // A rotating TCP door whose range overlaps the ephemeral ports counts replies to the
    // host's own connections unless it asks for syn,!ack.
    expect(
        "rot",
        &["its port range 10000-60000 overlaps this host's ephemeral ports"],
    );
    expect("rotgood", &[]);
    // Every warning belongs to one of those doors.
    assert_eq!(warnings.len(), 1 + 2 + 1 + 1 + 2 + 1, "{log}");
    // Not -v: the warnings are on stderr too.
    let out = d.child.log();
    for w in &warnings {
        assert!(out.contains(&format!("knockd: warning: {w}\n")), "{out}");
    }
    d.assert_running();
}

// ---------------------------------------------------------------------------------------------
// 5b. Replay memory across a reload.

/// SIGHUP (sent by log rotation every day) re-reads the configuration; the replay memory of an
/// unchanged rotating door must survive it, as SPA's replay cache does: the sequence client 1
/// used is still refused to client 2 after the reload.
#[test]
fn a_used_sequence_is_still_refused_after_sighup() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let rot = Rot::new("r", new_secret(&lab, "r.secret"), 4, (10000, 60000), 10);
    let mut d = Knockd::start(&lab, IFACES, &rot.conf(&marker_lines(&lab, "ran", "r")));

    let t = fresh_step(rot.step, Duration::from_secs(6));
    let ports = rot.seq(t);
    nc_tcp(&lab, 1, s4(&lab, 1), &ports);
    d.wait_opened(c4(&lab, 1), "r", 1);

    d.child.signal(libc::SIGHUP).unwrap();
    d.wait_log("re-reading config file");
    // The reload is done once a packet is served after it.
    d.sync(&lab, 1, false);

    nc_tcp(&lab, 2, s4(&lab, 2), &ports);
    d.sync(&lab, 2, false);
    assert!(
        step_now(rot.step) <= t + 1,
        "too slow: the replay came more than one step after the opening"
    );
    assert_eq!(
        d.opened(c4(&lab, 2), "r"),
        0,
        "client 2 replayed client 1's sequence after a SIGHUP and got in\n{}",
        d.log_text()
    );
    d.wait_log(
        "] 198.18.2.2: r: sequence already used by another source in this time step, refused",
    );
}
