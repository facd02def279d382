//! End to end: our `knockd` binary in the server namespace of a throw-away [`Lab`], knocked by
//! the Debian `knock` (the reference client), by `hping3` for chosen TCP flags and by our own
//! `knock`; real iptables and a real TCP service behind the door. Root only; every test builds
//! its own lab, so they run in parallel.
//!
//! Needs the workspace binaries (`cargo build --workspace`), and the Debian packages `knockd`
//! (for `/usr/bin/knock`), `iptables`, `hping3`, `iproute2`.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use netns_testkit::{Lab, bin, require_root, wait_until};

/// 198.18.k.2 / 2001:2:0:k::2 as `IpAddr`.
fn c4(lab: &Lab, k: usize) -> IpAddr {
    lab.client_ip(k, false)
}
fn c6(lab: &Lab, k: usize) -> IpAddr {
    lab.client_ip(k, true)
}
fn s4(lab: &Lab, k: usize) -> String {
    lab.server_v4(k).to_string()
}
fn s6(lab: &Lab, k: usize) -> String {
    lab.server_v6(k).to_string()
}
fn p(path: &std::path::Path) -> String {
    path.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// The article's doors.

/// The MySQL door of the article, verbatim but for the addresses and the log file:
///
/// - the article's `-s 192.168.2.201` (the client) becomes `-s %IP%`, so the rule follows
///   whoever knocked and the test can show that a second client stays out;
/// - its `-d 172.16.2.183` (the server) becomes the lab's server address on client 1's link;
/// - `logfile=/var/log/knockd.log` becomes the lab's log, and one line `Status_Socket` is added
///   so that tests running in parallel do not fight over `/run/knockd.sock`.
///
/// The command keeps the article's continuation lines (trailing backslash, odd indentation),
/// which knockd 0.8 itself rejects and we accept.
const ARTICLE_MYSQL: &str = "\
[options]
  logfile=@LOG@
  Status_Socket = @SOCK@
[DB2clientopen]
        sequence    = 7050,8050,9050
        seq_timeout = 10
        tcpflags    = syn
        command     = /sbin/iptables -I INPUT 1 -p tcp -s %IP% \\
       --sport 1024:65535 -d 198.18.1.1 --dport 3306 -m state \\
 --state NEW,ESTABLISHED -j ACCEPT
[DB2clientclose]
        sequence    = 9050,8050,7000
        seq_timeout = 10
        tcpflags    = syn
        command     = /sbin/iptables -D INPUT 1
";

fn article_conf(lab: &Lab, text: &str) -> std::path::PathBuf {
    let text = text
        .replace("@LOG@", &p(&lab.path("knockd.log")))
        .replace("@SOCK@", &p(&lab.path("knockd.sock")))
        .replace("@DIR@", &p(lab.dir()));
    lab.write_file("knockd.conf", &text).unwrap()
}

#[test]
fn article_mysql_door_opens_for_the_knocker_only_and_closes() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let srv = lab.server();
    srv.run(&[
        "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "3306", "-j", "REJECT",
    ])
    .unwrap();
    let mysql = srv.tcp_service(3306).unwrap();
    let conf = article_conf(&lab, ARTICLE_MYSQL);
    let mut d = Knockd::start_conf(&lab, "cli1,cli2", &conf, &[]);
    let door: IpAddr = lab.server_v4(1).into();
    let wait = Duration::from_secs(1);

    // Locked: the REJECT answers at once.
    assert!(!lab.client(1).tcp_connect_ok(door, 3306, wait));
    assert!(!lab.client(2).tcp_connect_ok(door, 3306, wait));
    assert_eq!(mysql.accepted(), 0);

    knock(&lab, 1, &[&s4(&lab, 1), "7050", "8050", "9050"]);
    d.wait_opened(c4(&lab, 1), "DB2clientopen", 1);
    assert!(
        wait_until(T, || lab.client(1).tcp_connect_ok(door, 3306, wait)),
        "client 1 cannot reach 3306 after knocking\n{}\niptables:\n{}",
        d.state(),
        srv.run_stdout(&["iptables", "-S", "INPUT"]).unwrap()
    );
    // The service really got the connection, from client 1.
    assert!(wait_until(T, || mysql.accepted() >= 1));
    assert_eq!(mysql.peers()[0].ip(), c4(&lab, 1));
    let rules = srv.run_stdout(&["iptables", "-S", "INPUT"]).unwrap();
    assert!(
        rules.contains(
            "-A INPUT -s 198.18.1.2/32 -d 198.18.1.1/32 -p tcp -m tcp --sport 1024:65535 --dport 3306 -m state --state NEW,ESTABLISHED -j ACCEPT"
        ),
        "{rules}"
    );
    // The log names the knocker, and the command ran with the continued line joined.
    let log = d.log_text();
    assert!(
        log.contains("] 198.18.1.2: DB2clientopen: Stage 1\n"),
        "{log}"
    );
    assert!(
        log.contains("] 198.18.1.2: DB2clientopen: OPEN SESAME\n"),
        "{log}"
    );
    assert!(
        log.contains(
            "DB2clientopen: running command: /sbin/iptables -I INPUT 1 -p tcp -s 198.18.1.2 --sport 1024:65535 -d 198.18.1.1 --dport 3306 -m state --state NEW,ESTABLISHED -j ACCEPT\n"
        ),
        "{log}"
    );

    // The second client is still locked out, whichever server address it tries.
    assert!(!lab.client(2).tcp_connect_ok(door, 3306, wait));
    assert!(
        !lab.client(2)
            .tcp_connect_ok(lab.server_v4(2).into(), 3306, wait)
    );
    assert!(mysql.peers().iter().all(|p| p.ip() == c4(&lab, 1)));

    // The close sequence (its first port is the open sequence's last one).
    knock(&lab, 1, &[&s4(&lab, 1), "9050", "8050", "7000"]);
    d.wait_opened(c4(&lab, 1), "DB2clientclose", 1);
    assert!(
        wait_until(T, || !lab.client(1).tcp_connect_ok(door, 3306, wait)),
        "client 1 still reaches 3306 after the close sequence\n{}",
        d.state()
    );
    let rules = srv.run_stdout(&["iptables", "-S", "INPUT"]).unwrap();
    assert!(!rules.contains("-j ACCEPT"), "{rules}");
    assert!(rules.contains("--dport 3306 -j REJECT"), "{rules}");
    assert_eq!(d.opened(c4(&lab, 1), "DB2clientopen"), 1);
    assert_eq!(d.opened(c4(&lab, 2), "DB2clientopen"), 0);
    d.assert_running();
}

/// The article's two command doors, with harmless stand-ins for `/usr/bin/reboot` and the tar
/// backup (each writes a marker file).
const ARTICLE_COMMANDS: &str = "\
[options]
  logfile=@LOG@
  Status_Socket = @SOCK@
[systemreboot]
        sequence    = 7050,8050,9050
        seq_timeout = 10
        tcpflags    = syn
        command     = echo reboot %IP% >> @DIR@/reboot
[systembackup]
        sequence    = 9050,8050,7000
        seq_timeout = 10
        tcpflags    = syn
        command     =  echo backup %IP% >> @DIR@/backup
";

#[test]
fn article_command_doors_run_their_own_command_only() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let conf = article_conf(&lab, ARTICLE_COMMANDS);
    let mut d = Knockd::start_conf(&lab, "cli1", &conf, &[]);
    let (reboot, backup) = (lab.path("reboot"), lab.path("backup"));

    knock(&lab, 1, &[&s4(&lab, 1), "9050", "8050", "7000"]);
    assert_eq!(wait_lines(&backup, 1), ["backup 198.18.1.2"]);
    // The reboot door could only have opened before the backup's last knock was processed.
    assert_eq!(d.opened(c4(&lab, 1), "systemreboot"), 0);
    assert!(!reboot.exists());

    knock(&lab, 1, &[&s4(&lab, 1), "7050", "8050", "9050"]);
    assert_eq!(wait_lines(&reboot, 1), ["reboot 198.18.1.2"]);
    // 9050 is the backup door's first port: it only reached stage 1.
    d.wait_log("198.18.1.2: systembackup: Stage 1");
    assert_eq!(d.opened(c4(&lab, 1), "systembackup"), 1);
    assert_eq!(lines(&backup), ["backup 198.18.1.2"]);
    d.assert_running();
}

// ---------------------------------------------------------------------------------------------
// Matching.

const ABC: &str = "[door]\n sequence = 7000,8000,9000\n seq_timeout = 5\n";

#[test]
fn wrong_order_does_not_open() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(&lab, "cli1", ABC);
    let (srv, me) = (s4(&lab, 1), c4(&lab, 1));
    for wrong in [
        ["7000", "9000", "8000"],
        ["8000", "7000", "9000"],
        ["9000", "8000", "7000"],
        ["8000", "9000", "7000"],
    ] {
        knock(&lab, 1, &[&srv, wrong[0], wrong[1], wrong[2]]);
        d.sync(&lab, 1, false);
        assert_eq!(d.opened(me, "door"), 0, "{wrong:?} opened the door");
    }
    // A knock port of another door in the middle spoils the attempt.
    knock(
        &lab,
        1,
        &[&srv, "7000", "8000", &format!("{SYNC_PORT}:udp"), "9000"],
    );
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "door"), 0);
    // The right order does open (the door works); a port no door watches never reaches the
    // daemon (kernel filter), so it spoils nothing.
    knock(&lab, 1, &[&srv, "7000", "8000", "7001", "9000"]);
    d.wait_opened(me, "door", 1);
}

#[test]
fn sequence_timeout_keeps_the_door_shut() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        "[door]\n sequence = 7000,8000,9000\n seq_timeout = 1\n",
    );
    let (srv, me) = (s4(&lab, 1), c4(&lab, 1));
    let t0 = Instant::now();
    knock(&lab, 1, &[&srv, "7000", "8000"]);
    // Logged by the daemon's own timer, without waiting for another packet (knockd 0.8 logs it
    // only when the next packet comes).
    d.wait_log("198.18.1.2: door: sequence timeout (stage 2)");
    let after = t0.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "timed out after {after:?} with seq_timeout = 1"
    );
    knock(&lab, 1, &[&srv, "9000"]);
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "door"), 0, "{}", d.log_text());

    // A last knock 1.3 s after the first one (seq_timeout = 1) is too late.
    knock(&lab, 1, &[&srv, "7000", "8000"]);
    std::thread::sleep(Duration::from_millis(1300));
    knock(&lab, 1, &[&srv, "9000"]);
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "door"), 0, "{}", d.log_text());
    assert_eq!(d.count("198.18.1.2: door: sequence timeout (stage 2)"), 2);

    // In time, it opens.
    knock(&lab, 1, &[&srv, "7000", "8000", "9000"]);
    d.wait_opened(me, "door", 1);
}

#[test]
fn interleaved_sources_each_complete() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let marker = lab.path("opened");
    let mut d = Knockd::start(
        &lab,
        "cli1,cli2",
        &format!("{ABC} command = echo %IP% >> {}\n", p(&marker)),
    );
    let (a, b) = (s4(&lab, 1), s4(&lab, 2));
    // knockd 0.8's case: the second source never progresses once the first one finishes.
    knock(&lab, 1, &[&a, "7000"]);
    knock(&lab, 2, &[&b, "7000"]);
    knock(&lab, 1, &[&a, "8000", "9000"]);
    d.wait_opened(c4(&lab, 1), "door", 1);
    knock(&lab, 2, &[&b, "8000", "9000"]);
    d.wait_opened(c4(&lab, 2), "door", 1);
    let mut got = wait_lines(&marker, 2);
    got.sort();
    assert_eq!(got, ["198.18.1.2", "198.18.2.2"]);

    // Both at the same time, packets interleaved on the wire (50 ms between hits).
    std::thread::scope(|sc| {
        let h1 = sc.spawn(|| knock(&lab, 1, &["-d", "50", &a, "7000", "8000", "9000"]));
        let h2 = sc.spawn(|| knock(&lab, 2, &["-d", "50", &b, "7000", "8000", "9000"]));
        h1.join().unwrap();
        h2.join().unwrap();
    });
    d.wait_opened(c4(&lab, 1), "door", 2);
    d.wait_opened(c4(&lab, 2), "door", 2);
}

#[test]
fn mixed_udp_tcp_sequence() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        "[mixed]\n sequence = 7000:udp,8000:tcp,9000:udp\n seq_timeout = 5\n",
    );
    let (srv, me) = (s4(&lab, 1), c4(&lab, 1));
    // The right ports with the wrong protocols.
    knock(&lab, 1, &[&srv, "7000", "8000", "9000"]);
    knock(&lab, 1, &[&srv, "7000:udp", "8000:udp", "9000:udp"]);
    knock(&lab, 1, &[&srv, "-u", "7000", "8000", "9000"]);
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "mixed"), 0, "{}", d.log_text());
    knock(&lab, 1, &[&srv, "7000:udp", "8000", "9000:udp"]);
    d.wait_opened(me, "mixed", 1);
    // Over IPv6 too.
    knock(&lab, 1, &[&s6(&lab, 1), "7000:udp", "8000", "9000:udp"]);
    d.wait_opened(c6(&lab, 1), "mixed", 1);
}

#[test]
fn tcpflags_syn_not_ack_ignores_syn_ack_knocks() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        "[synonly]\n sequence = 7000,8000,9000\n seq_timeout = 5\n tcpflags = syn,!ack\n",
    );
    let (dst, me): (IpAddr, IpAddr) = (lab.server_v4(1).into(), c4(&lab, 1));
    for port in [7000, 8000, 9000] {
        hping(&lab, 1, &["-S", "-A"], dst, port);
    }
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "synonly"), 0, "{}", d.log_text());
    assert_eq!(d.count("synonly: Stage"), 0, "{}", d.log_text());
    // Bare SYNs (hping3, then the knock client) do open it.
    for port in [7000, 8000, 9000] {
        hping(&lab, 1, &["-S"], dst, port);
    }
    d.wait_opened(me, "synonly", 1);
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000", "9000"]);
    d.wait_opened(me, "synonly", 2);
}

#[test]
fn tcpflags_fin_door_opens_with_fins_not_syns() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        "[fin]\n sequence = 7000,8000,9000\n seq_timeout = 5\n tcpflags = fin\n",
    );
    let (dst, me): (IpAddr, IpAddr) = (lab.server_v4(1).into(), c4(&lab, 1));
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000", "9000"]);
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "fin"), 0, "{}", d.log_text());
    assert_eq!(d.count("fin: Stage"), 0, "{}", d.log_text());
    for port in [7000, 8000, 9000] {
        hping(&lab, 1, &["-F"], dst, port);
    }
    d.wait_opened(me, "fin", 1);
}

#[test]
fn retry_right_after_a_failed_attempt_opens() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(&lab, "cli1", ABC);
    let (srv, me) = (s4(&lab, 1), c4(&lab, 1));
    // docs/knockd-observed.md case 3b: two of three ports, then at once the whole sequence.
    // knockd 0.8 takes the retry's 7000 as the wrong knock and opens nothing.
    knock(&lab, 1, &[&srv, "7000", "8000"]);
    knock(&lab, 1, &[&srv, "7000", "8000", "9000"]);
    d.wait_opened(me, "door", 1);
    // Case 3c: 7000 8000 7000, then a fresh 7000 8000 9000 (the fresh 7000 repeats the
    // restarted attempt's first knock).
    knock(&lab, 1, &[&srv, "7000", "8000", "7000"]);
    knock(&lab, 1, &[&srv, "7000", "8000", "9000"]);
    d.wait_opened(me, "door", 2);
    // Case 3: a wrong port that is not part of the retry.
    knock(&lab, 1, &[&srv, "7000", "9000"]);
    knock(&lab, 1, &[&srv, "7000", "8000", "9000"]);
    d.wait_opened(me, "door", 3);
}

#[test]
fn repeated_port_does_not_reset_progress() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        &format!("{ABC}[twice]\n sequence = 5000,5000,5001\n seq_timeout = 5\n"),
    );
    let (srv, me) = (s4(&lab, 1), c4(&lab, 1));
    // knockd 0.8 case 5: the second 7000 fails the attempt there.
    knock(&lab, 1, &[&srv, "7000", "7000", "8000", "9000"]);
    d.wait_opened(me, "door", 1);
    knock(&lab, 1, &[&srv, "7000", "8000", "8000", "8000", "9000"]);
    d.wait_opened(me, "door", 2);
    // A port repeated inside the sequence (knockd case 6), and repeated once more.
    knock(&lab, 1, &[&srv, "5000", "5000", "5001"]);
    d.wait_opened(me, "twice", 1);
    knock(&lab, 1, &[&srv, "5000", "5000", "5000", "5001"]);
    d.wait_opened(me, "twice", 2);
    assert_eq!(d.opened(me, "door"), 2);
}

// ---------------------------------------------------------------------------------------------
// One-time sequences.

#[test]
fn one_time_sequences_consumed_like_knockd_over_ipv4_and_ipv6() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let ots = lab
        .write_file(
            "ots.txt",
            "# comment\n7001,7002\n 7003,7004\n\n\t7005:udp,7006\n",
        )
        .unwrap();
    let marker = lab.path("ran");
    let mut d = Knockd::start(
        &lab,
        "cli1",
        &format!(
            "[ots]\n one_time_sequences = {}\n seq_timeout = 5\n command = echo ots %IP% >> {}\n",
            p(&ots),
            p(&marker)
        ),
    );
    let (v4, v6) = (c4(&lab, 1), c6(&lab, 1));
    let file = || std::fs::read_to_string(&ots).unwrap();
    // The file is rewritten just after `OPEN SESAME` is logged.
    let wait_file = |want: &str| {
        assert!(
            wait_until(T, || file() == want),
            "{:?}, expected {want:?}",
            file()
        );
    };

    knock(&lab, 1, &[&s4(&lab, 1), "7001", "7002"]);
    d.wait_opened(v4, "ots", 1);
    // knockd overwrites the first character of the used line, whatever it is.
    wait_file("# comment\n#001,7002\n 7003,7004\n\n\t7005:udp,7006\n");
    // Used up: the same sequence no longer opens.
    knock(&lab, 1, &[&s4(&lab, 1), "7001", "7002"]);
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(v4, "ots"), 1);

    // The next sequence works over IPv6 (knockd 0.8's IPv6 filter keeps the old ports).
    knock(&lab, 1, &[&s6(&lab, 1), "7003", "7004"]);
    d.wait_opened(v6, "ots", 1);
    wait_file("# comment\n#001,7002\n#7003,7004\n\n\t7005:udp,7006\n");
    // The kernel filter is switched to the next sequence's ports right after the completing
    // packet; a sync round trip makes sure that has happened.
    d.sync(&lab, 1, true);
    // The last one, over IPv6 too: the door runs out.
    knock(&lab, 1, &[&s6(&lab, 1), "7005:udp", "7006"]);
    d.wait_opened(v6, "ots", 2);
    wait_file("# comment\n#001,7002\n#7003,7004\n\n#7005:udp,7006\n");
    d.wait_log(
        "no more sequences left in the one time sequences file for door ots --> disabling the door",
    );
    // Disabled: nothing opens it any more, and the daemon lives on (knockd 0.8 aborts here).
    knock(&lab, 1, &[&s6(&lab, 1), "7005:udp", "7006"]);
    knock(&lab, 1, &[&s4(&lab, 1), "7005:udp", "7006"]);
    knock(&lab, 1, &[&s4(&lab, 1), "7001", "7002"]);
    d.sync(&lab, 1, false);
    d.sync(&lab, 1, true);
    assert_eq!(d.opened(v4, "ots"), 1);
    assert_eq!(d.opened(v6, "ots"), 2);
    // Each success ran the command (the last two from one source in quick succession).
    let mut ran = wait_lines(&marker, 3);
    ran.sort();
    assert_eq!(
        ran,
        ["ots 198.18.1.2", "ots 2001:2:0:1::2", "ots 2001:2:0:1::2"],
        "{}",
        d.log_text()
    );
    d.assert_running();
}

#[test]
fn one_time_sequence_runs_out_over_ipv4() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let ots = lab.write_file("ots.txt", " 7001,7002:udp\n").unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        &format!("[last]\n one_time_sequences = {}\n", p(&ots)),
    );
    let me = c4(&lab, 1);
    knock(&lab, 1, &[&s4(&lab, 1), "7001", "7002:udp"]);
    d.wait_opened(me, "last", 1);
    d.wait_log(
        "no more sequences left in the one time sequences file for door last --> disabling the door",
    );
    assert_eq!(std::fs::read_to_string(&ots).unwrap(), "#7001,7002:udp\n");
    knock(&lab, 1, &[&s4(&lab, 1), "7001", "7002:udp"]);
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "last"), 1);
    d.assert_running();
}

/// Each one-time sequence is a different sequence: using two in a row (same source, well
/// within the fork-bomb guard's cooldown) must run the command for each, as knockd does.
#[test]
fn one_time_sequences_each_run_their_command() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let ots = lab
        .write_file("ots.txt", " 7001,7002\n 7003,7004\n")
        .unwrap();
    let marker = lab.path("ran");
    let mut d = Knockd::start(
        &lab,
        "cli1",
        &format!(
            "[ots]\n one_time_sequences = {}\n command = echo ots %IP% >> {}\n",
            p(&ots),
            p(&marker)
        ),
    );
    let me = c4(&lab, 1);
    knock(&lab, 1, &[&s4(&lab, 1), "7001", "7002"]);
    d.wait_opened(me, "ots", 1);
    d.sync(&lab, 1, false);
    knock(&lab, 1, &[&s4(&lab, 1), "7003", "7004"]);
    d.wait_opened(me, "ots", 2);
    d.wait_count("ots: running command: echo ots 198.18.1.2", 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lines(&marker),
        ["ots 198.18.1.2", "ots 198.18.1.2"],
        "{}",
        d.log_text()
    );
}

// ---------------------------------------------------------------------------------------------
// Commands.

#[test]
fn ipv6_knockers_get_the_6_commands_or_the_fallback() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let (six, fb, none) = (lab.path("six"), lab.path("fallback"), lab.path("none6"));
    let mut d = Knockd::start(
        &lab,
        "cli1",
        &format!(
            "[six]\n sequence = 7000,8000:udp,9000\n\
             start_command = echo v4 %IP% >> {six}\n start_command_6 = echo v6 %IP% %IP% >> {six}\n\
             cmd_timeout = 1\n\
             stop_command = echo stop4 %IP% >> {six}\n stop_command_6 = echo stop6 %IP% >> {six}\n\
             [fallback]\n sequence = 7100,7200\n\
             command = echo fb %IP% >> {fb}\n cmd_timeout = 1\n stop_command = echo fbstop %IP% >> {fb}\n\
             [no6]\n sequence = 7300\n command = echo no6 %IP% >> {none}\n command_6 =\n",
            six = p(&six),
            fb = p(&fb),
            none = p(&none)
        ),
    );
    let v6 = c6(&lab, 1);
    knock(&lab, 1, &[&s6(&lab, 1), "7000", "8000:udp", "9000"]);
    knock(&lab, 1, &[&s6(&lab, 1), "7100", "7200"]);
    knock(&lab, 1, &[&s6(&lab, 1), "7300"]);
    d.wait_opened(v6, "six", 1);
    d.wait_opened(v6, "fallback", 1);
    d.wait_opened(v6, "no6", 1);
    assert_eq!(
        wait_lines(&six, 2),
        ["v6 2001:2:0:1::2 2001:2:0:1::2", "stop6 2001:2:0:1::2"]
    );
    assert_eq!(
        wait_lines(&fb, 2),
        ["fb 2001:2:0:1::2", "fbstop 2001:2:0:1::2"]
    );
    // IPv6 addresses are written plain (no brackets) in the log, as knockd does.
    let log = d.log_text();
    assert!(log.contains("] 2001:2:0:1::2: six: Stage 1\n"), "{log}");
    assert!(
        log.contains("] 2001:2:0:1::2: six: command timeout\n"),
        "{log}"
    );

    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000:udp", "9000"]);
    knock(&lab, 1, &[&s4(&lab, 1), "7300"]);
    assert_eq!(
        wait_lines(&six, 4)[2..],
        ["v4 198.18.1.2", "stop4 198.18.1.2"]
    );
    assert_eq!(wait_lines(&none, 1), ["no6 198.18.1.2"]);

    // The address in %IP% is the canonical text form (RFC 5952) whatever way it was written:
    // give the client an address spelt the long way and knock from it (our knock can bind).
    lab.client(1)
        .run(&[
            "ip",
            "addr",
            "add",
            "2001:0002:0000:0001:0000:0000:00AB:00CD/64",
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
    our_knock(
        &lab,
        1,
        &["-b", "2001:2:0:1::ab:cd", &s6(&lab, 1), "7100", "7200"],
    );
    assert_eq!(
        wait_lines(&fb, 3)[2],
        "fb 2001:2:0:1::ab:cd",
        "{}",
        d.log_text()
    );
    // An empty command_6 runs nothing for IPv6 knockers: still only the IPv4 line.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&none), ["no6 198.18.1.2"]);
}

#[test]
fn stop_command_runs_cmd_timeout_after_the_start_command_returned() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let (knocked, started, stopped) = (
        lab.path("knocked"),
        lab.path("started"),
        lab.path("stopped"),
    );
    let mut d = Knockd::start(
        &lab,
        "cli1",
        &format!(
            "[timed]\n sequence = 7000,8000\n\
             start_command = date +%s%N > {k}; sleep 1; date +%s%N > {s}\n\
             cmd_timeout = 2\n\
             stop_command = date +%s%N > {t}\n",
            k = p(&knocked),
            s = p(&started),
            t = p(&stopped)
        ),
    );
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000"]);
    d.wait_opened(c4(&lab, 1), "timed", 1);
    if !wait_until(Duration::from_secs(8), || {
        std::fs::metadata(&stopped).is_ok_and(|m| m.len() > 0)
    }) {
        panic!("no stop command within 8 s\n{}", d.state());
    }
    let (k, s, t) = (read_ns(&knocked), read_ns(&started), read_ns(&stopped));
    let gap = Duration::from_nanos((t - s) as u64);
    assert!(
        gap >= Duration::from_millis(1950) && gap < Duration::from_millis(3000),
        "stop ran {gap:?} after the start command returned (cmd_timeout = 2)"
    );
    assert!(Duration::from_nanos((t - k) as u64) >= Duration::from_millis(2900));
    let log = d.log_text();
    let timeout = log
        .find("] 198.18.1.2: timed: command timeout\n")
        .unwrap_or_else(|| panic!("{log}"));
    let stop = log
        .find(&format!(
            "timed: running command: date +%s%N > {}\n",
            p(&stopped)
        ))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(timeout < stop, "{log}");
}

#[test]
fn nonzero_command_status_is_logged() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        "[fails]\n sequence = 7000\n start_command = exit 3\n cmd_timeout = 0\n stop_command = exit 42\n",
    );
    knock(&lab, 1, &[&s4(&lab, 1), "7000"]);
    d.wait_log("fails: command returned non-zero status code (3)");
    d.wait_log("fails: command returned non-zero status code (42)");
    d.assert_running();
}

#[test]
fn fork_bomb_guard_runs_a_single_port_door_once_per_cooldown() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let marker = lab.path("ran");
    let mut d = Knockd::start(
        &lab,
        "cli1",
        &format!(
            "[one]\n sequence = 7000\n command = echo %IP% >> {}\n",
            p(&marker)
        ),
    );
    let me = c4(&lab, 1);
    let t0 = Instant::now();
    let ports = vec!["7000"; 30];
    let mut args = vec![s4(&lab, 1)];
    args.extend(ports.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    knock(&lab, 1, &args);
    d.wait_opened(me, "one", 30);
    let burst = t0.elapsed();
    assert!(
        burst < knockd::actions::COOLDOWN,
        "the burst took {burst:?}, too slow to test the cooldown"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&marker), ["198.18.1.2"], "{}", d.log_text());
    assert_eq!(
        d.count("198.18.1.2: one: completed again within 2 s, command not rerun"),
        29
    );
    // After the cooldown (counted from the first completion, a little after t0) the command
    // runs again.
    std::thread::sleep(
        knockd::actions::COOLDOWN.saturating_sub(t0.elapsed()) + Duration::from_millis(700),
    );
    knock(&lab, 1, &[&s4(&lab, 1), "7000"]);
    assert_eq!(wait_lines(&marker, 2), ["198.18.1.2", "198.18.1.2"]);
}

// ---------------------------------------------------------------------------------------------
// Signals.

#[test]
fn sighup_with_a_good_config_switches_sequences() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(&lab, "cli1", "[old]\n sequence = 7000,8000,9000\n");
    let me = c4(&lab, 1);
    assert_eq!(d.status_json()["doors"], 2);
    lab.write_file(
        "knockd.conf",
        &config(
            &lab,
            "",
            "[new]\n sequence = 7100,7200:udp,7300\n[other]\n sequence = 6000,6001\n",
        ),
    )
    .unwrap();
    d.child.signal(libc::SIGHUP).unwrap();
    d.wait_log(&format!("re-reading config file: {}", p(&d.conf)));
    // The status socket is served by the same loop as reloads: three doors means the new
    // configuration (and its capture filter) is in place.
    assert!(
        wait_until(T, || d.status_json()["doors"] == 3),
        "{}",
        d.state()
    );
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000", "9000"]);
    d.sync(&lab, 1, false);
    assert_eq!(d.opened(me, "old"), 0);
    knock(&lab, 1, &[&s4(&lab, 1), "7100", "7200:udp", "7300"]);
    d.wait_opened(me, "new", 1);
    d.assert_running();
}

#[test]
fn sighup_reopens_the_log_file_after_rotation() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(&lab, "cli1", "[door]\n sequence = 7000,9000,8000\n");
    let me = c4(&lab, 1);
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "9000", "8000"]);
    d.wait_opened(me, "door", 1);
    // logrotate: move the file away, then SIGHUP.
    let rotated = lab.path("knockd.log.1");
    std::fs::rename(&d.log, &rotated).unwrap();
    d.child.signal(libc::SIGHUP).unwrap();
    assert!(
        wait_until(T, || d.log.exists()),
        "no new log file after SIGHUP\n{}",
        d.state()
    );
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "9000", "8000"]);
    d.wait_opened(me, "door", 1);
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.matches("OPEN SESAME").count(), 1, "{old}");
    // The reload line is written before the file is reopened, as knockd does.
    assert!(old.contains("re-reading config file:"), "{old}");
    let new = d.log_text();
    assert_eq!(
        new.matches("198.18.1.2: door: OPEN SESAME").count(),
        1,
        "{new}"
    );
    d.assert_running();
}

#[test]
fn sighup_with_a_bad_config_keeps_the_running_one() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(&lab, "cli1", "[old]\n sequence = 7000,8000,9000\n");
    let me = c4(&lab, 1);
    let bad = config(&lab, "", "[new]\n sequence = 7100,notaport\n");
    let line = bad.lines().position(|l| l.contains("notaport")).unwrap() + 1;
    lab.write_file("knockd.conf", &bad).unwrap();
    d.child.signal(libc::SIGHUP).unwrap();
    d.wait_log(&format!("re-reading config file: {}", p(&d.conf)));
    let err = d.wait_log("keeping the running configuration");
    assert!(
        err.contains(&format!("{}:{line}:", p(&d.conf))) && err.contains("notaport"),
        "the error does not say where: {err}"
    );
    d.assert_running();
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000", "9000"]);
    d.wait_opened(me, "old", 1);
    knock(&lab, 1, &[&s4(&lab, 1), "7100"]);
    d.sync(&lab, 1, false);
    assert_eq!(d.count("new:"), 0);
    d.assert_running();
}

#[test]
fn sigterm_runs_every_pending_stop_command_at_once() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let marker = lab.path("cmds");
    let mut d = Knockd::start(
        &lab,
        "cli1,cli2",
        &format!(
            "[door]\n sequence = 7000,8000\n start_command = echo start %IP% >> {m}\n\
             cmd_timeout = 60\n stop_command = echo stop %IP% >> {m}\n",
            m = p(&marker)
        ),
    );
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000"]);
    knock(&lab, 2, &[&s4(&lab, 2), "7000", "8000"]);
    wait_lines(&marker, 2);
    let t0 = Instant::now();
    d.child.signal(libc::SIGTERM).unwrap();
    let st = d.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "knockd took {took:?} to exit (cmd_timeout = 60)"
    );
    assert!(st.success(), "{st}\n{}", d.state());
    let mut got = lines(&marker);
    got.sort();
    assert_eq!(
        got,
        [
            "start 198.18.1.2",
            "start 198.18.2.2",
            "stop 198.18.1.2",
            "stop 198.18.2.2"
        ]
    );
    let log = d.log_text();
    assert!(log.contains("] shutting down\n"), "{log}");
    assert!(!log.contains("command timeout"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// Startup, daemon mode, runtime failures, status.

#[test]
fn bad_config_at_startup_exits_with_a_located_error() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let knockd = bin("knockd").unwrap();
    for (doors, token) in [
        ("[a]\n sequence = 7000,70x00\n", "70x00"),
        ("[a]\n sequence = 7000\n tcpflags = syn,bogus\n", "bogus"),
        ("[a]\n sequence = 7000\n colour = blue\n", "colour"),
    ] {
        let text = config(&lab, "", doors);
        let line = text.lines().position(|l| l.contains(token)).unwrap() + 1;
        let conf = lab.write_file("bad.conf", &text).unwrap();
        let out = lab
            .server()
            .output(&[knockd.to_str().unwrap(), "-i", "cli1", "-c", &p(&conf)])
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{out:?}");
        assert!(
            err.contains(&format!("{}:{line}: ", p(&conf))) && err.to_lowercase().contains(token),
            "stderr does not locate {token:?} at line {line}: {err}"
        );
        assert!(
            !lab.path("knockd.log").exists()
                || !std::fs::read_to_string(lab.path("knockd.log"))
                    .unwrap()
                    .contains("starting up"),
            "started anyway"
        );
    }
}

fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for init to reap it has exited.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn daemon_mode_writes_the_pid_file_and_removes_it_at_exit() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let conf = lab
        .write_file(
            "knockd.conf",
            &config(&lab, "", "[door]\n sequence = 7000,8000\n"),
        )
        .unwrap();
    let pidfile = lab.path("knockd.pid");
    let knockd = bin("knockd").unwrap();
    let t0 = Instant::now();
    let out = lab
        .server()
        .output(&[
            knockd.to_str().unwrap(),
            "-d",
            "-i",
            "cli1",
            "-c",
            &p(&conf),
            "-p",
            &p(&pidfile),
        ])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(t0.elapsed() < T);
    let text = std::fs::read_to_string(&pidfile).expect("no pid file after knockd -d returned");
    assert!(text.ends_with('\n'), "{text:?}");
    let pid: u32 = text.trim().parse().unwrap();
    assert!(lab.server().pids().unwrap().contains(&pid));
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.contains("knockd"), "{cmdline:?}");
    // It is up (the parent returned only once it was listening) and works.
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000"]);
    netns_testkit::wait_for_file_line(&lab.path("knockd.log"), "198.18.1.2: door: OPEN SESAME", T)
        .unwrap();
    // SAFETY: kill(2) on the daemon's pid, read from its pid file a moment ago.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    assert!(
        wait_until(T, || process_gone(pid)),
        "knockd -d (pid {pid}) still running after SIGTERM"
    );
    assert!(!pidfile.exists(), "pid file left behind");
    assert!(
        !lab.path("knockd.sock").exists(),
        "status socket left behind"
    );
}

#[test]
fn daemon_mode_with_a_missing_interface_fails_listing_the_interfaces() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let conf = lab
        .write_file(
            "knockd.conf",
            &config(&lab, "", "[door]\n sequence = 7000,8000\n"),
        )
        .unwrap();
    let pidfile = lab.path("knockd.pid");
    let knockd = bin("knockd").unwrap();
    let out = lab
        .server()
        .output(&[
            knockd.to_str().unwrap(),
            "-d",
            "-i",
            "nosuch0",
            "-c",
            &p(&conf),
            "-p",
            &p(&pidfile),
        ])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    let listed: Vec<&str> = err
        .split_once("available: ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list.split(", ").collect())
        .unwrap_or_default();
    assert!(
        err.contains("\"nosuch0\"") && listed.contains(&"cli1") && listed.contains(&"lo"),
        "the message does not name nosuch0 and list the interfaces: {err}"
    );
    assert!(!pidfile.exists());
    assert!(lab.server().pids().unwrap().is_empty(), "a daemon was left");
}

#[test]
fn capture_failure_at_runtime_exits_nonzero() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(&lab, "cli1", "[door]\n sequence = 7000,8000\n");
    lab.server().run(&["ip", "link", "del", "cli1"]).unwrap();
    let st = d.wait_exit(T);
    assert!(!st.success(), "{st}\n{}", d.state());
    let out = d.child.log();
    assert!(
        out.contains("cli1") && out.contains("capture"),
        "stderr does not say that the capture on cli1 failed: {out}"
    );
    d.wait_log("cli1: capture");
}

#[test]
fn status_answers_with_counters() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        "[door]\n sequence = 7000,8000,9000\n seq_timeout = 1\n",
    );
    let me = c4(&lab, 1);
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000", "9000"]);
    d.wait_opened(me, "door", 1);
    knock(&lab, 1, &[&s4(&lab, 1), "7000"]);
    d.wait_log("door: sequence timeout (stage 1)");
    d.sync(&lab, 1, false);

    let out = d.status_cli(&lab);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for want in [
        "listening on: cli1",
        "doors: 2",
        "completions: 2 ",
        "1 timed out",
        "commands: 0 in flight",
    ] {
        assert!(
            text.contains(want),
            "no {want:?} in --status output:\n{text}"
        );
    }
    let v = d.status_json();
    assert_eq!(v["completions"], 2, "{v}");
    assert_eq!(v["timeouts"], 1, "{v}");
    assert_eq!(v["attempts_tracked"], 0, "{v}");
    // 5 knocks: 3 + 1 + the sync knock; the RSTs the server sends back are not knocks.
    assert_eq!(v["packets_matched"], 5, "{v}");
    assert!(v["packets_seen"].as_u64().unwrap() >= 5, "{v}");
    assert!(v["capture_received"].as_u64().unwrap() >= 5, "{v}");
    assert_eq!(v["config"], p(&d.conf).as_str(), "{v}");
}

// ---------------------------------------------------------------------------------------------
// The log file.

fn local_minute() -> String {
    let out = std::process::Command::new("date")
        .arg("+%Y-%m-%d %H:%M")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn logfile_lines_are_stamped_and_never_empty() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let ots = lab.write_file("ots.txt", " 7500,7600\n").unwrap();
    let before = local_minute();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        &format!(
            "[door]\n sequence = 7000,8000,9000\n seq_timeout = 1\n command = echo hi\n\
             [ots]\n one_time_sequences = {}\n",
            p(&ots)
        ),
    );
    let srv = s4(&lab, 1);
    knock(&lab, 1, &[&srv, "7000", "8000", "9000"]);
    d.wait_log("door: running command: echo hi");
    knock(&lab, 1, &[&srv, "7000"]);
    d.wait_log("sequence timeout (stage 1)");
    knock(&lab, 1, &[&srv, "7500", "7600"]);
    d.wait_log("no more sequences left");
    d.child.signal(libc::SIGHUP).unwrap();
    d.wait_log("re-reading config file");
    d.status_json();
    d.child.signal(libc::SIGTERM).unwrap();
    d.wait_exit(T);
    let after = local_minute();

    let text = d.log_text();
    assert!(
        !text.contains("\n\n") && !text.starts_with('\n'),
        "empty line in:\n{text}"
    );
    let lines = stamped(&text);
    for (stamp, _) in &lines {
        assert!(
            before.as_str() <= stamp.as_str() && stamp.as_str() <= after.as_str(),
            "stamp {stamp} outside [{before}, {after}] (local time):\n{text}"
        );
    }
    let msgs: Vec<&str> = lines.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        msgs.first(),
        Some(&"starting up, listening on cli1"),
        "{text}"
    );
    assert_eq!(msgs.last(), Some(&"shutting down"), "{text}");
    for want in [
        "198.18.1.2: door: Stage 1",
        "198.18.1.2: door: OPEN SESAME",
        "door: running command: echo hi",
        "198.18.1.2: door: sequence timeout (stage 1)",
        "no more sequences left in the one time sequences file for door ots --> disabling the door",
        &format!("re-reading config file: {}", p(&d.conf)),
    ] {
        assert!(msgs.contains(&want), "no line {want:?} in:\n{text}");
    }
}

/// Syslog, captured safely: knockd runs in a private mount namespace whose `/dev` is a fresh
/// tmpfs holding only `/dev/null` (bound to the real one) and `/dev/log` (bound to a datagram
/// socket this test listens on). Nothing of the host's `/dev` or syslog is touched.
#[test]
fn syslog_gets_the_same_messages() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let sock = lab.path("syslog.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let conf = lab
        .write_file(
            "knockd.conf",
            &config(&lab, "", "[door]\n sequence = 7000,8000\n")
                .replace("[options]\n", "[options]\n UseSyslog\n"),
        )
        .unwrap();
    let knockd = bin("knockd").unwrap();
    let script = format!(
        "set -e; touch {dir}/devnull; mount --bind /dev/null {dir}/devnull; \
         mount -t tmpfs -o size=64k,mode=755 e2e-dev /dev; touch /dev/null /dev/log; \
         mount --bind {dir}/devnull /dev/null; mount --bind {sock} /dev/log; \
         exec {knockd} -i cli1 -c {conf}",
        dir = p(lab.dir()),
        sock = p(&sock),
        knockd = p(&knockd),
        conf = p(&conf)
    );
    let child = lab
        .server()
        .spawn(&[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .unwrap();
    let mut d = Knockd {
        child,
        log: lab.path("knockd.log"),
        conf,
        socket: lab.path("knockd.sock"),
    };
    d.wait_log("starting up, listening on cli1");
    knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000"]);
    d.wait_opened(c4(&lab, 1), "door", 1);
    d.child.signal(libc::SIGTERM).unwrap();
    d.wait_exit(T);

    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = listener.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = got.join("\n");
    // `<29>` = facility daemon, priority notice; ident `knockd`, no pid.
    for want in [
        "starting up, listening on cli1",
        "198.18.1.2: door: Stage 1",
        "198.18.1.2: door: OPEN SESAME",
        "shutting down",
    ] {
        let line = got
            .iter()
            .find(|m| m.ends_with(want))
            .unwrap_or_else(|| panic!("no syslog message {want:?} in:\n{all}\n{}", d.state()));
        assert!(line.starts_with("<29>"), "{line:?}");
        assert!(line.contains(" knockd: "), "{line:?}");
    }
    assert!(!all.contains("knockd["), "{all}");
}

// ---------------------------------------------------------------------------------------------
// Our client.

#[test]
fn our_knock_client_opens_our_daemon() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let mut d = Knockd::start(
        &lab,
        "cli1",
        "[mixed]\n sequence = 7000,8000:udp,9000\n[udp]\n sequence = 7100:udp,7200:udp\n",
    );
    our_knock(&lab, 1, &[&s4(&lab, 1), "7000", "8000:udp", "9000"]);
    d.wait_opened(c4(&lab, 1), "mixed", 1);
    our_knock(&lab, 1, &["-u", &s4(&lab, 1), "7100", "7200"]);
    d.wait_opened(c4(&lab, 1), "udp", 1);
    our_knock(&lab, 1, &[&s6(&lab, 1), "7000", "8000:udp", "9000"]);
    d.wait_opened(c6(&lab, 1), "mixed", 1);
    our_knock(&lab, 1, &["-u", "-6", &s6(&lab, 1), "7100", "7200"]);
    d.wait_opened(c6(&lab, 1), "udp", 1);
}

/// Removes `/etc/netns/<ns>` (the per-namespace /etc overlay `ip netns exec` mounts) on drop.
struct NetnsEtc(std::path::PathBuf);

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn verbose_debug_lookup_and_ipv4_only() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    // Names for -l come from a hosts file seen only inside the server namespace
    // (`ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts).
    let etc = NetnsEtc(std::path::PathBuf::from("/etc/netns").join(lab.server().name()));
    std::fs::create_dir_all(&etc.0).unwrap();
    std::fs::write(
        etc.0.join("hosts"),
        "127.0.0.1 localhost\n198.18.1.2 client1.lab\n2001:2:0:1::2 client1v6.lab\n",
    )
    .unwrap();
    let conf = lab
        .write_file(
            "knockd.conf",
            &config(
                &lab,
                "",
                "[door]\n sequence = 7000,9000,8000\n tcpflags = syn\n",
            ),
        )
        .unwrap();
    let mut d = Knockd::start_conf(&lab, "cli1", &conf, &["-v", "-D", "-l", "-4"]);
    let today = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .unwrap();
    let today = String::from_utf8_lossy(&today.stdout).trim().to_string();
    // IPv6 knocks are ignored with -4 (not even seen); IPv4 ones are logged with the name.
    knock(&lab, 1, &["-6", &s6(&lab, 1), "7000", "9000", "8000"]);
    knock(
        &lab,
        1,
        &["-d", "300", &s4(&lab, 1), "7000", "9000", "8000"],
    );
    d.wait_count("198.18.1.2 (client1.lab): door: OPEN SESAME", 1);
    // Everything sent before the [sync] knock has been processed once it is logged.
    knock(&lab, 1, &[&s4(&lab, 1), &format!("{SYNC_PORT}:udp")]);
    d.wait_count("198.18.1.2 (client1.lab): sync: OPEN SESAME", 1);
    let log = d.log_text();
    assert!(!log.contains("2001:2:0:1::2"), "-4 ignores IPv6\n{log}");
    let out = d.child.log();
    assert!(out.contains("listening on cli1...\n"), "{out}");
    // -v prints the log lines without a stamp.
    assert!(
        out.contains("\n198.18.1.2 (client1.lab): door: OPEN SESAME\n"),
        "{out}"
    );
    // -D prints every packet with today's date (knockd 0.8 prints the month 0-based).
    let packet = out
        .lines()
        .find(|l| l.contains(": tcp: 198.18.1.2:") && l.contains(" -> 198.18.1.1:7000 "))
        .unwrap_or_else(|| panic!("no -D line for the first knock\n{out}"));
    assert!(packet.starts_with(&today), "{packet} (today is {today})");
    assert!(packet.ends_with(" 74 bytes"), "{packet}");
    assert!(!out.contains(": tcp: 2001:2:0:1::2:"), "{out}");
}
