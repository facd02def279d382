//! Checks the reference behaviour recorded in `docs/knockd-observed.md` against the real Debian
//! `knockd` 0.8 and `knock` 0.8 (package `knockd`), so that the document stays true. Needs root
//! and the package installed.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use netns_testkit::{ChildGuard, Lab, require_root, wait_for_file_line};

const KNOCKD: &str = "/usr/sbin/knockd";
const KNOCK: &str = "/usr/bin/knock";
const T: Duration = Duration::from_secs(5);

fn require_knockd() {
    for p in [KNOCKD, KNOCK] {
        assert!(
            Path::new(p).exists(),
            "{p} missing: these reference tests need the Debian package `knockd` (apt-get install knockd)"
        );
    }
}

/// knockd in the server namespace with stdout and stderr in two files of the lab.
struct Daemon {
    child: ChildGuard,
    out: PathBuf,
    err: PathBuf,
}

fn start_knockd(lab: &Lab, tag: &str, conf: &Path, extra: &[&str]) -> Daemon {
    let out = lab.path(&format!("{tag}.stdout"));
    let err = lab.path(&format!("{tag}.stderr"));
    let mut cmd = lab.server().cmd(KNOCKD);
    cmd.args(["-i", "cli1", "-c", conf.to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    let child = lab.server().spawn_cmd(cmd).unwrap();
    let d = Daemon { child, out, err };
    if extra.contains(&"-v") {
        wait_for_file_line(&d.out, "listening on cli1...", T).unwrap();
    } else {
        // Without -v there is no ready message; the log's startup line is written just before
        // the capture loop starts.
        std::thread::sleep(Duration::from_millis(500));
    }
    d
}

fn knock(lab: &Lab, args: &[&str]) -> String {
    let mut a = vec![KNOCK];
    a.extend_from_slice(args);
    lab.client(1).run_stdout(&a).unwrap()
}

/// Log lines with the `[YYYY-MM-DD HH:MM] ` prefix checked and removed; empty lines kept as "".
fn log_messages(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            if l.is_empty() {
                return String::new();
            }
            let b = l.as_bytes();
            let shape = "[dddd-dd-dd dd:dd] ";
            assert!(l.len() > shape.len(), "short log line {l:?}");
            for (i, c) in shape.bytes().enumerate() {
                let ok = if c == b'd' {
                    b[i].is_ascii_digit()
                } else {
                    b[i] == c
                };
                assert!(ok, "log line {l:?} does not start with {shape:?}");
            }
            l[shape.len()..].to_string()
        })
        .collect()
}

#[test]
fn logfile_verbose_and_stderr_formats() {
    if !require_root() {
        return;
    }
    require_knockd();
    let lab = Lab::new(1).unwrap();
    let log = lab.path("knockd.log");
    let cmdlog = lab.path("cmd.log");
    let conf = lab
        .write_file(
            "knockd.conf",
            &format!(
                "[options]\n\tLogFile = {log}\n\n[opendoor]\n\tsequence = 7000,8000:udp,9000\n\
                 \tseq_timeout = 2\n\ttcpflags = syn\n\
                 \tstart_command = echo start %IP% >> {cmd}; exit 3\n\tcmd_timeout = 1\n\
                 \tstop_command = echo stop %IP% >> {cmd}\n",
                log = log.display(),
                cmd = cmdlog.display()
            ),
        )
        .unwrap();
    let mut d = start_knockd(&lab, "knockd", &conf, &["-v"]);

    let out = knock(&lab, &["-v", "198.18.1.1", "7000", "8000:udp", "9000"]);
    assert_eq!(
        out,
        "hitting tcp 198.18.1.1:7000\nhitting udp 198.18.1.1:8000\nhitting tcp 198.18.1.1:9000\n"
    );
    wait_for_file_line(&log, "running command: echo stop", T).unwrap();
    // A sequence timeout: two of three ports, then (3.2 s > seq_timeout 2) a new first knock.
    knock(&lab, &["198.18.1.1", "7000", "8000:udp"]);
    std::thread::sleep(Duration::from_millis(3200));
    knock(&lab, &["198.18.1.1", "7000"]);
    wait_for_file_line(&log, "sequence timeout", T).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    d.child.signal(libc::SIGHUP).unwrap();
    wait_for_file_line(&d.out, "re-opening log file", T).unwrap();
    let st = d.child.stop(T).unwrap();
    assert_eq!(st.code(), Some(15), "knockd exits with the signal number");

    let c = cmdlog.display();
    let l = log.display();
    let cf = conf.display();
    let expected_log = vec![
        "starting up, listening on cli1".to_string(),
        "198.18.1.2: opendoor: Stage 1".into(),
        "198.18.1.2: opendoor: Stage 2".into(),
        "198.18.1.2: opendoor: Stage 3".into(),
        "198.18.1.2: opendoor: OPEN SESAME".into(),
        format!("opendoor: running command: echo start 198.18.1.2 >> {c}; exit 3"),
        "".into(),
        "opendoor: command returned non-zero status code (3)".into(),
        "198.18.1.2: opendoor: command timeout".into(),
        format!("opendoor: running command: echo stop 198.18.1.2 >> {c}"),
        "".into(),
        "198.18.1.2: opendoor: Stage 1".into(),
        "198.18.1.2: opendoor: Stage 2".into(),
        "198.18.1.2: opendoor: sequence timeout (stage 2)".into(),
        "".into(),
        "198.18.1.2: opendoor: Stage 1".into(),
        format!("re-reading config file: {cf}"),
        "".into(),
        "shutting down".into(),
    ];
    assert_eq!(log_messages(&log), expected_log);

    let expected_out = format!(
        "listening on cli1...\n\
         198.18.1.2: opendoor: Stage 1\n\
         198.18.1.2: opendoor: Stage 2\n\
         198.18.1.2: opendoor: Stage 3\n\
         198.18.1.2: opendoor: OPEN SESAME\n\
         opendoor: running command: echo start 198.18.1.2 >> {c}; exit 3\n\
         198.18.1.2: opendoor: command timeout\n\
         opendoor: running command: echo stop 198.18.1.2 >> {c}\n\
         198.18.1.2: opendoor: Stage 1\n\
         198.18.1.2: opendoor: Stage 2\n\
         198.18.1.2: opendoor: sequence timeout (stage 2)\n\
         198.18.1.2: opendoor: Stage 1\n\
         re-reading config file: {cf}\n\
         closing log file: {l}\n\
         re-opening log file: {l}\n\
         waiting for child processes...\n\
         closing...\n"
    );
    assert_eq!(std::fs::read_to_string(&d.out).unwrap(), expected_out);
    assert_eq!(
        std::fs::read_to_string(&d.err).unwrap(),
        "opendoor: command returned non-zero status code (3)\n"
    );
    assert_eq!(
        std::fs::read_to_string(&cmdlog).unwrap(),
        "start 198.18.1.2\nstop 198.18.1.2\n"
    );
}

#[test]
fn debug_packet_lines_and_zero_based_month() {
    if !require_root() {
        return;
    }
    require_knockd();
    let lab = Lab::new(1).unwrap();
    let conf = lab
        .write_file(
            "knockd.conf",
            "[a]\n sequence = 7000,8000:udp\n seq_timeout = 5\n",
        )
        .unwrap();
    let mut d = start_knockd(&lab, "knockd", &conf, &["-D", "-v"]);
    knock(&lab, &["198.18.1.1", "7000", "8000:udp"]);
    knock(&lab, &["-6", "2001:2:0:1::1", "7000"]);
    wait_for_file_line(&d.out, "2001:2:0:1::2: a: Stage 1", T).unwrap();
    d.child.stop(T).unwrap();
    let out = std::fs::read_to_string(&d.out).unwrap();
    let packets: Vec<&str> = out.lines().filter(|l| l.ends_with(" bytes")).collect();
    assert_eq!(packets.len(), 3, "{out}");
    // "YYYY-MM-DD HH:MM:SS: tcp: 198.18.1.2:PORT -> 198.18.1.1:7000 74 bytes"
    let shapes = [
        ("tcp: 198.18.1.2:", " -> 198.18.1.1:7000 74 bytes"),
        ("udp: 198.18.1.2:", " -> 198.18.1.1:8000 43 bytes"),
        ("tcp: 2001:2:0:1::2:", " -> 2001:2:0:1::1:7000 94 bytes"),
    ];
    for (line, (head, tail)) in packets.iter().zip(shapes) {
        let rest = &line[21..];
        assert_eq!(&line[19..21], ": ", "{line}");
        assert!(rest.starts_with(head) && rest.ends_with(tail), "{line}");
        let sport = &rest[head.len()..rest.len() - tail.len()];
        assert!(sport.parse::<u16>().is_ok(), "{line}");
    }
    // The month is printed 0-based (one less than the real local month).
    let now = lab.server().run_stdout(&["date", "+%Y %m %d"]).unwrap();
    let f: Vec<u32> = now.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let printed = &packets[0][..10];
    assert_eq!(
        printed,
        format!("{:04}-{:02}-{:02}", f[0], f[1] - 1, f[2]),
        "{out}"
    );
    assert!(
        out.contains("config: a: sequence: 7000:tcp,8000:udp\n"),
        "{out}"
    );
    assert!(
        out.contains("removing successful knock attempt (198.18.1.2)\n"),
        "{out}"
    );
}

#[test]
fn one_time_sequence_first_character_becomes_hash() {
    if !require_root() {
        return;
    }
    require_knockd();
    let lab = Lab::new(1).unwrap();
    let ots = lab
        .write_file("ots.txt", "# comment\n\t7001,7002\n 7003,7004\n")
        .unwrap();
    let log = lab.path("knockd.log");
    let conf = lab
        .write_file(
            "knockd.conf",
            &format!(
                "[options]\n LogFile = {}\n[ots]\n one_time_sequences = {}\n",
                log.display(),
                ots.display()
            ),
        )
        .unwrap();
    let mut d = start_knockd(&lab, "knockd", &conf, &["-v"]);
    knock(&lab, &["-d", "50", "198.18.1.1", "7001", "7002"]);
    wait_for_file_line(&log, "ots: OPEN SESAME", T).unwrap();
    assert!(netns_testkit::wait_until(T, || {
        std::fs::read_to_string(&ots).unwrap() == "# comment\n#7001,7002\n 7003,7004\n"
    }));
    knock(&lab, &["-d", "50", "198.18.1.1", "7003", "7004"]);
    assert!(netns_testkit::wait_until(T, || {
        std::fs::read_to_string(&ots).unwrap() == "# comment\n#7001,7002\n#7003,7004\n"
    }));
    wait_for_file_line(
        &log,
        "no more sequences left in the one time sequences file for door ots --> disabling the door",
        T,
    )
    .unwrap();
    // Debian's 0.8 aborts right after disabling the door (double free, SIGABRT).
    let st = d.child.wait_timeout(T).unwrap();
    let err = std::fs::read_to_string(&d.err).unwrap();
    assert!(
        matches!(st, Some(s) if s.signal() == Some(libc::SIGABRT)),
        "{st:?} {err}"
    );
    assert!(err.contains("double free"), "{err}");
}

#[test]
fn config_errors_and_usage() {
    if !require_root() {
        return;
    }
    require_knockd();
    let lab = Lab::new(0).unwrap();
    let usage = "usage: knockd [options]\n";
    let cases: &[(&str, &str)] = &[
        (
            "sequence = 7000\n[a]\n",
            "config: line 1: all directives must belong to a section\n",
        ),
        (
            "[a]\n sequence = 7000\n foo = bar\n",
            "config: line 3: syntax error\n",
        ),
        ("[]\n", "config: line 1: bad section name\n"),
        (
            "[a]\n command = true\n",
            "error: section 'a' has an empty knock sequence\n",
        ),
        (
            "[a]\n sequence = 65536\n",
            "config: section a: port 65536 is invalid\n",
        ),
        (
            "[a]\n sequence = 7000:xyz\n",
            "config: section a: unknown protocol in knock sequence\n",
        ),
        (
            "[a]\n sequence = 7000\n tcpflags = syn,bogus\n",
            "config: line 3: unrecognized flag \"BOGUS\"\n",
        ),
        (
            "[a]\n sequence = 7000\n command = a \\\n b\n",
            "config: line 4: syntax error\n",
        ),
    ];
    for (text, want) in cases {
        let conf = lab.write_file("bad.conf", text).unwrap();
        let out = lab
            .server()
            .output(&[KNOCKD, "-i", "lo", "-c", conf.to_str().unwrap()])
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{text:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), *want, "{text:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(usage),
            "{text:?}"
        );
    }
    let conf = lab
        .write_file("ok.conf", "[a]\n sequence = 7000\n")
        .unwrap();
    let out = lab
        .server()
        .output(&[KNOCKD, "-i", "nosuch0", "-c", conf.to_str().unwrap()])
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "could not open nosuch0: nosuch0: No such device exists (No such device exists)\n"
    );
    let out = lab.server().output(&[KNOCKD, "-h"]).unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(help.starts_with(usage) && help.ends_with("  -h, --help             this help\n\n"));
    let out = lab.server().output(&[KNOCK, "-h"]).unwrap();
    assert_eq!(out.status.code(), Some(1), "knock -h exits 1");
    let out = lab.server().output(&[KNOCKD, "-V"]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "knockd 0.8\nCopyright (C) 2004-2012 Judd Vinet <jvinet@zeroflux.org>\n"
    );
}

#[test]
fn knock_udp_hit_is_one_zero_byte() {
    if !require_root() {
        return;
    }
    require_knockd();
    let lab = Lab::new(1).unwrap();
    let sock = lab
        .server()
        .run_in(|| std::net::UdpSocket::bind("[::]:7000"))
        .unwrap()
        .unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    for v6 in [false, true] {
        let host = lab.server_ip(1, v6).to_string();
        let fam = if v6 { "-6" } else { "-4" };
        let out = knock(&lab, &["-v", fam, &host, "7000:udp"]);
        assert_eq!(out, format!("hitting udp {host}:7000\n"));
        let mut buf = [0xffu8; 64];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0u8], "one byte, value 0");
        assert_eq!(from.ip().to_canonical(), lab.client_ip(1, v6));
    }
    // The client's protocol suffix is case-sensitive: `:UDP` (like any unknown suffix) is TCP.
    let out = knock(&lab, &["-v", "198.18.1.1", "7000:UDP", "7001:xyz"]);
    assert_eq!(
        out,
        "hitting tcp 198.18.1.1:7000\nhitting tcp 198.18.1.1:7001\n"
    );
}
