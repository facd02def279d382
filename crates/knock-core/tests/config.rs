//! knockd.conf parser: every accepted construct and every located error message.

use knock_core::config::{self, Config, Door, Trigger};
use knock_core::proto::{Knock, Protocol, Protocol::*};
use knock_core::tcpflags::bits::{ACK, SYN};

fn parse(text: &str) -> Config {
    match config::parse(text, "knockd.conf") {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// The full message of the error `text` produces.
fn error(text: &str) -> String {
    match config::parse(text, "knockd.conf") {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn door<'a>(c: &'a Config, name: &str) -> &'a Door {
    c.doors
        .iter()
        .find(|d| d.name == name)
        .expect("door exists")
}

fn seq(knocks: &[(u16, Protocol)]) -> Trigger {
    Trigger::Sequence(
        knocks
            .iter()
            .map(|&(p, proto)| Knock::new(p, proto))
            .collect(),
    )
}

#[test]
fn debian_default_config() {
    let text = include_str!("data/debian-default.conf");
    let c = parse(text);
    assert!(c.options.use_syslog);
    assert_eq!(c.doors.len(), 3);
    let open = door(&c, "openSSH");
    assert_eq!(open.trigger, seq(&[(7000, Tcp), (8000, Tcp), (9000, Tcp)]));
    assert_eq!(open.seq_timeout, 5);
    assert_eq!(
        open.start_command.as_deref(),
        Some("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert!(open.tcp_flags.matches(SYN));
    assert!(!open.tcp_flags.matches(ACK));
    assert_eq!(
        door(&c, "openHTTPS").trigger,
        seq(&[(12345, Tcp), (54321, Tcp), (24680, Tcp), (13579, Tcp)])
    );
    assert_eq!(
        door(&c, "closeSSH").cmd_timeout,
        config::DEFAULT_CMD_TIMEOUT
    );
}

#[test]
fn article_mysql_config_with_continued_command() {
    let c = parse(include_str!("data/article-mysql.conf"));
    assert_eq!(c.options.log_file.as_deref(), Some("/var/log/knockd.log"));
    let open = door(&c, "DB2clientopen");
    assert_eq!(open.trigger, seq(&[(7050, Tcp), (8050, Tcp), (9050, Tcp)]));
    assert_eq!(open.seq_timeout, 10);
    assert_eq!(
        open.start_command.as_deref(),
        Some(
            "/sbin/iptables -I INPUT 1 -p tcp -s 192.168.2.201 --sport 1024:65535 -d 172.16.2.183 \
             --dport 3306 -m state --state NEW,ESTABLISHED -j ACCEPT"
        )
    );
    let close = door(&c, "DB2clientclose");
    assert_eq!(close.trigger, seq(&[(9050, Tcp), (8050, Tcp), (7000, Tcp)]));
    assert_eq!(
        close.start_command.as_deref(),
        Some("/sbin/iptables -D INPUT 1")
    );
}

#[test]
fn article_command_doors() {
    let c = parse(include_str!("data/article-commands.conf"));
    assert_eq!(
        door(&c, "systemreboot").start_command.as_deref(),
        Some("/usr/bin/reboot")
    );
    // Values are trimmed but kept literally inside.
    assert_eq!(
        door(&c, "systembackup").start_command.as_deref(),
        Some("/usr/bin/tar -cf  /dev/rmt0 /home/root/")
    );
}

#[test]
fn every_key_alias_and_default() {
    let c = parse(
        "[options]\n\
         UseSyslog\n\
         LOGFILE = /tmp/k.log\n\
         pidfile=/run/k.pid\n\
         Interface = eth1\n\
         [a]\n\
         SEQUENCE = 1,2:UDP,3:Tcp\n\
         Timeout = 7\n\
         TCPFlags = syn , !ack\n\
         Command = open %IP%\n\
         Command_6 = open6 %IP%\n\
         CMD_TIMEOUT = 3\n\
         Stop_Command = close %IP%\n\
         Stop_Command_6 = close6 %IP%\n\
         Target = 198.18.0.1\n\
         [b]\n\
         sequence = 9\n\
         seq_timeout = 11\n\
         start_command = x = y\n\
         start_command_6 = \n",
    );
    assert!(c.options.use_syslog);
    assert_eq!(c.options.log_file.as_deref(), Some("/tmp/k.log"));
    assert_eq!(c.options.pid_file.as_deref(), Some("/run/k.pid"));
    assert_eq!(c.options.interface.as_deref(), Some("eth1"));
    let a = door(&c, "a");
    assert_eq!(a.trigger, seq(&[(1, Tcp), (2, Udp), (3, Tcp)]));
    assert_eq!(a.seq_timeout, 7);
    assert!(a.tcp_flags.matches(SYN) && !a.tcp_flags.matches(SYN | ACK));
    assert_eq!(a.start_command_for(false), Some("open %IP%"));
    assert_eq!(a.start_command_for(true), Some("open6 %IP%"));
    assert_eq!(a.cmd_timeout, 3);
    assert_eq!(a.stop_command_for(false), Some("close %IP%"));
    assert_eq!(a.stop_command_for(true), Some("close6 %IP%"));
    assert_eq!(a.target, Some("198.18.0.1".parse().unwrap()));
    let b = door(&c, "b");
    assert_eq!(b.trigger, seq(&[(9, Tcp)]));
    assert_eq!(b.seq_timeout, 11);
    assert_eq!(b.cmd_timeout, config::DEFAULT_CMD_TIMEOUT);
    assert!(b.tcp_flags.is_any());
    // `=` inside a value is kept; an empty _6 command means "run nothing" for IPv6.
    assert_eq!(b.start_command_for(false), Some("x = y"));
    assert_eq!(b.start_command_for(true), None);
    assert_eq!(b.stop_command_for(true), None);
}

#[test]
fn defaults_and_v6_fallback() {
    let c = parse("[d]\nsequence=1\ncommand=run %IP%\nstop_command=stop %IP%\n");
    let d = door(&c, "d");
    assert_eq!(d.seq_timeout, 25);
    assert_eq!(d.cmd_timeout, 10);
    assert_eq!(d.start_command_for(true), Some("run %IP%"));
    assert_eq!(d.stop_command_for(true), Some("stop %IP%"));
    assert!(!c.options.use_syslog);
    assert_eq!(c.options.pid_file, None);
}

#[test]
fn comments_blank_lines_and_odd_spacing() {
    let c = parse(
        "# comment\n\n   # indented comment\n\t[options]\t\n  UseSyslog  \n[ door with spaces ]\n\tsequence\t=\t7000 , 8000\n",
    );
    assert!(c.options.use_syslog);
    assert_eq!(c.doors[0].name, "door with spaces");
    assert_eq!(c.doors[0].trigger, seq(&[(7000, Tcp), (8000, Tcp)]));
}

#[test]
fn sequence_limits_repeats_and_single_port() {
    let ports: Vec<String> = (1..=32).map(|p| p.to_string()).collect();
    let c = parse(&format!("[max]\nsequence = {}\n", ports.join(",")));
    assert_eq!(c.doors[0].sequence().unwrap().len(), 32);
    let c =
        parse("[rep]\nsequence = 5,5,5:udp,5\n[one]\nsequence = 65535:udp\n[zero]\nsequence=0\n");
    assert_eq!(
        door(&c, "rep").trigger,
        seq(&[(5, Tcp), (5, Tcp), (5, Udp), (5, Tcp)])
    );
    assert_eq!(door(&c, "one").trigger, seq(&[(65535, Udp)]));
    assert_eq!(door(&c, "zero").trigger, seq(&[(0, Tcp)]));
    let too_many: Vec<String> = (1..=33).map(|p| p.to_string()).collect();
    assert_eq!(
        error(&format!("[x]\nsequence = {}\n", too_many.join(","))),
        "knockd.conf:2: sequence has 33 knocks, at most 32 are allowed"
    );
}

#[test]
fn duplicate_door_names_are_both_kept() {
    let c = parse("[d]\nsequence=1\n[d]\nsequence=2\n");
    assert_eq!(c.doors.len(), 2);
    assert_eq!(c.doors[1].line, 3);
}

#[test]
fn one_time_sequences() {
    let c = parse("[ot]\none_time_sequences = /etc/knockd/ot.txt\nsequence = 1,2\n");
    assert_eq!(
        c.doors[0].trigger,
        Trigger::OneTime {
            file: "/etc/knockd/ot.txt".into()
        }
    );
    let c = parse("[ot]\nOne_Time_Sequences = ot.txt\n");
    assert!(matches!(c.doors[0].trigger, Trigger::OneTime { .. }));
}

#[test]
fn continuation_lines() {
    let c = parse("[d]\nsequence = 1, \\\n   2,\\\n3\ncommand = a \\\n\\\n   b\n");
    assert_eq!(c.doors[0].trigger, seq(&[(1, Tcp), (2, Tcp), (3, Tcp)]));
    assert_eq!(c.doors[0].start_command.as_deref(), Some("a b"));
    // Errors in a continued line are reported at its first line.
    assert_eq!(
        error("[d]\nsequence = 1,\\\n  x\n"),
        "knockd.conf:2: bad port \"x\" in sequence"
    );
    // A comment ending in a backslash does not swallow the next line.
    let c = parse("# note \\\n[d]\nsequence = 4\n");
    assert_eq!(c.doors[0].trigger, seq(&[(4, Tcp)]));
}

#[test]
fn port_errors() {
    assert_eq!(
        error("[options]\n logfile = /x\n[d]\nsequence = 7000,notaport,9000\n"),
        "knockd.conf:4: bad port \"notaport\" in sequence"
    );
    assert_eq!(
        error("[d]\nsequence = -1\n"),
        "knockd.conf:2: bad port \"-1\" in sequence"
    );
    assert_eq!(
        error("[d]\nsequence = 65536\n"),
        "knockd.conf:2: bad port \"65536\" in sequence"
    );
    assert_eq!(
        error("[d]\nsequence = 12abc\n"),
        "knockd.conf:2: bad port \"12abc\" in sequence"
    );
    assert_eq!(
        error("[d]\nsequence = 1:icmp\n"),
        "knockd.conf:2: unknown protocol \"icmp\" in sequence (expected tcp or udp)"
    );
    assert_eq!(error("[d]\nsequence =\n"), "knockd.conf:2: empty sequence");
    assert_eq!(
        error("[d]\nsequence = 1,,2\n"),
        "knockd.conf:2: empty entry in sequence \"1,,2\""
    );
}

#[test]
fn structure_errors() {
    assert_eq!(
        error("sequence = 1\n[d]\n"),
        "knockd.conf:1: \"sequence\" appears before any [section]"
    );
    assert_eq!(
        error("UseSyslog\n"),
        "knockd.conf:1: \"UseSyslog\" appears before any [section]"
    );
    assert_eq!(error("[]\n"), "knockd.conf:1: empty section name \"[]\"");
    assert_eq!(error("[ ]\n"), "knockd.conf:1: empty section name \"[]\"");
    assert_eq!(
        error("[d]\nsequence = 1\nsequense = 2\n"),
        "knockd.conf:3: unknown key \"sequense\" in door [d]"
    );
    assert_eq!(
        error("[options]\nlogfile = x\nbogus = 1\n"),
        "knockd.conf:3: unknown key \"bogus\" in [options]"
    );
    assert_eq!(
        error("[options]\nsequence = 1\n"),
        "knockd.conf:2: unknown key \"sequence\" in [options]"
    );
    assert_eq!(
        error("[options]\nlogfile\n"),
        "knockd.conf:2: \"logfile\" needs a value (\"logfile = ...\")"
    );
    assert_eq!(
        error("[d]\nthis is not valid\n"),
        "knockd.conf:2: syntax error: \"this is not valid\" is neither a [section] nor a key = value line"
    );
    assert_eq!(
        error("[d]\nseq_timeout = 5\n[e]\nsequence=1\n"),
        "knockd.conf:1: door [d] has no sequence (give Sequence, One_Time_Sequences, secret_file, spa_key or schedule)"
    );
    // `[Options]` is a door, as in knockd, so option keys there are unknown door keys.
    assert_eq!(
        error("[Options]\nlogfile = x\n"),
        "knockd.conf:2: unknown key \"logfile\" in door [Options]"
    );
}

#[test]
fn value_errors() {
    assert_eq!(
        error("[d]\nsequence = 1\ntcpflags = syn,fin,bogus\n"),
        "knockd.conf:3: unknown TCP flag \"bogus\" (expected fin, syn, rst, psh, ack or urg, optionally prefixed by !) in tcpflags"
    );
    assert_eq!(
        error("[d]\nsequence = 1\ntcpflags = syn,!syn\n"),
        "knockd.conf:3: TCP flag \"syn\" is both required and forbidden in tcpflags"
    );
    assert_eq!(
        error("[d]\nsequence = 1\nseq_timeout = 5s\n"),
        "knockd.conf:3: bad value \"5s\" for seq_timeout (expected whole seconds)"
    );
    assert_eq!(
        error("[d]\nsequence = 1\ncmd_timeout = -3\n"),
        "knockd.conf:3: bad value \"-3\" for cmd_timeout (expected whole seconds)"
    );
    assert_eq!(
        error("[d]\nsequence = 1\nseq_timeout = 0\n"),
        "knockd.conf:3: bad value \"0\" for seq_timeout (expected 1 to 86400 seconds)"
    );
    assert_eq!(
        error("[d]\nsequence = 1\nseq_timeout = 86401\n"),
        "knockd.conf:3: bad value \"86401\" for seq_timeout (expected 1 to 86400 seconds)"
    );
    assert_eq!(
        error("[d]\nsequence = 1\ntarget = 198.18.0.300\n"),
        "knockd.conf:3: bad value \"198.18.0.300\" for target (expected an IPv4 or IPv6 address)"
    );
}

#[test]
fn grants_schedule_and_from() {
    let c = parse(
        "[ssh]\n sequence = 7000,8000:udp,9000\n seq_timeout = 10\n tcpflags = syn\n open = tcp/22, UDP/53\n open_timeout = 30\n from = 198.18.0.0/15, 2001:2::/48\n\
         [dba-hours]\n open = tcp/3306\n from = 198.51.100.0/24\n schedule = Mon-Fri 09:50-19:10\n",
    );
    let ssh = door(&c, "ssh");
    assert_eq!(
        ssh.open.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        ["tcp/22", "udp/53"]
    );
    assert_eq!(ssh.open_timeout, 30);
    assert_eq!(ssh.from.len(), 2);
    assert!(ssh.from[1].contains("2001:2::9".parse().unwrap()));
    let dba = door(&c, "dba-hours");
    assert_eq!(dba.trigger, Trigger::Schedule);
    assert!(dba.schedule.is_some());
    assert_eq!(dba.open_timeout, config::DEFAULT_OPEN_TIMEOUT);

    assert_eq!(
        error("[d]\nsequence=1\nopen = tcp/22\nopen_timeout = 0\n"),
        "knockd.conf:4: open_timeout = 0: a grant lasts 1 to 2592000 seconds (30 days)"
    );
    assert_eq!(
        error("[d]\nsequence=1\nopen = tcp/22\nopen_timeout = 2592001\n"),
        "knockd.conf:4: open_timeout = 2592001: a grant lasts 1 to 2592000 seconds (30 days)"
    );
    assert_eq!(
        error("[s]\nspa_key=k\nspa_hmac_key=h\nopen = tcp/22\nmax_open_timeout = 0\n"),
        "knockd.conf:5: max_open_timeout = 0: a grant lasts 1 to 2592000 seconds (30 days)"
    );
    assert_eq!(
        error("[d]\nsequence=1\nopen = tcp/99999\n"),
        "knockd.conf:3: bad port \"99999\" in open"
    );
    assert_eq!(
        error("[d]\nsequence=1\nopen = 22\n"),
        "knockd.conf:3: bad value \"22\" for open (expected proto/port, e.g. tcp/22)"
    );
    assert_eq!(
        error("[d]\nsequence=1\nfrom = 10.0.0.0/33\n"),
        "knockd.conf:3: bad address or network \"10.0.0.0/33\" (expected e.g. 198.51.100.7, 198.51.100.0/24 or 2001:db8::/32) in from"
    );
    assert_eq!(
        error("[d]\nschedule = Mon-Fri 09:50-19:10\n"),
        "knockd.conf:1: door [d]: schedule needs open (a scheduled door is enforced by nftables)"
    );
    assert_eq!(
        error("[d]\nopen=tcp/1\nschedule = Mon-Fry 09:50-19:10\n"),
        "knockd.conf:3: bad day \"Fry\" in schedule (expected Mon..Sun, a range like Mon-Fri, or *)"
    );
    assert_eq!(
        error("[d]\nsequence=1\nopen=tcp/1\nschedule = Mon 09:50-19:10\n"),
        "knockd.conf:1: door [d]: schedule and a knock sequence or spa_key cannot be used together"
    );
}

#[test]
fn rotating_doors() {
    let c = parse(
        "[ssh]\n secret_file = /etc/knockd/ssh.secret\n sequence_length = 5\n port_range = 20000-20100\n step = 60\n protocol = UDP\n open = tcp/22\n",
    );
    match &c.doors[0].trigger {
        Trigger::Rotating(r) => {
            assert_eq!(r.secret_file, "/etc/knockd/ssh.secret");
            assert_eq!(
                (r.length, r.port_lo, r.port_hi, r.step),
                (5, 20000, 20100, 60)
            );
            assert_eq!(r.protocol, Udp);
        }
        t => panic!("{t:?}"),
    }
    let c = parse("[r]\nsecret_file = s\n");
    match &c.doors[0].trigger {
        Trigger::Rotating(r) => {
            assert_eq!(
                (r.length, r.port_lo, r.port_hi, r.step),
                (4, 10000, 60000, 30)
            );
            assert_eq!(r.protocol, Tcp);
        }
        t => panic!("{t:?}"),
    }
    assert_eq!(
        error("[r]\nsecret_file = s\nport_range = 100-102\n"),
        "knockd.conf:3: bad value \"100-102\" for port_range (expected LOW-HIGH with room for sequence_length distinct ports)"
    );
    assert_eq!(
        error("[r]\nsecret_file = s\nport_range = 100-x\n"),
        "knockd.conf:3: bad port \"x\" in port_range"
    );
    assert_eq!(
        error("[r]\nsecret_file = s\nstep = 0\n"),
        "knockd.conf:3: bad value \"0\" for step (expected whole seconds, at least 1)"
    );
    assert_eq!(
        error("[r]\nsecret_file = s\nprotocol = icmp\n"),
        "knockd.conf:3: unknown protocol \"icmp\" in protocol (expected tcp or udp)"
    );
    assert_eq!(
        error("[r]\nsequence = 1\nstep = 30\n"),
        "knockd.conf:1: door [r]: step needs secret_file (it only applies to rotating doors)"
    );
    assert_eq!(
        error("[r]\nsequence = 1\nsecret_file = s\n"),
        "knockd.conf:1: door [r]: secret_file and sequence cannot be used together"
    );
}

#[test]
fn spa_doors() {
    let c = parse(
        "[ssh-spa]\n spa_key_base64 = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n spa_hmac_key = hmac secret\n spa_hmac_digest = SHA3_256\n spa_port = 62202\n spa_max_age = 60\n open = tcp/22,tcp/443\n open_timeout = 30\n max_open_timeout = 600\n require_user = alice\n require_source_address = yes\n spa_allow_command = /usr/bin/true\n spa_allow_command = /bin/echo hi\n",
    );
    let spa = match &c.doors[0].trigger {
        Trigger::Spa(s) => s,
        t => panic!("{t:?}"),
    };
    assert_eq!(spa.key.0, (0u8..32).collect::<Vec<_>>());
    assert_eq!(spa.hmac_key.as_ref().unwrap().0, b"hmac secret");
    assert_eq!(spa.hmac_digest, knock_core::spa::HmacDigest::Sha3_256);
    assert_eq!(
        (spa.port, spa.max_age, spa.max_open_timeout),
        (62202, 60, 600)
    );
    assert_eq!(spa.require_user.as_deref(), Some("alice"));
    assert!(spa.require_source_address);
    assert!(!spa.legacy);
    assert_eq!(spa.allowed_commands, ["/usr/bin/true", "/bin/echo hi"]);

    let c = parse("[s]\nspa_key = pass\nspa_require_hmac = no\nopen = tcp/22\n");
    match &c.doors[0].trigger {
        Trigger::Spa(s) => {
            assert_eq!((s.port, s.max_age, s.max_open_timeout), (62201, 120, 300));
            assert!(s.hmac_key.is_none());
            assert_eq!(s.hmac_digest, knock_core::spa::HmacDigest::Sha256);
        }
        t => panic!("{t:?}"),
    }
    assert_eq!(
        error("[s]\nspa_key = pass\nopen = tcp/22\n"),
        "knockd.conf:1: door [s]: spa_key needs spa_hmac_key or spa_hmac_key_base64 (or spa_require_hmac = no)"
    );
    assert_eq!(
        error("[s]\nspa_key_base64 = not*base64\nspa_hmac_key = h\nopen = tcp/22\n"),
        "knockd.conf:2: bad value \"not*base64\" for spa_key_base64 (expected standard base64)"
    );
    assert_eq!(
        error(
            "[s]\nspa_key = 0123456789012345678901234567890123\nspa_hmac_key = h\nopen = tcp/22\n"
        ),
        "knockd.conf:2: spa_key is 34 bytes long, at most 32 are allowed"
    );
    assert_eq!(
        error("[s]\nspa_key = k\nspa_hmac_key = h\nspa_hmac_digest = sha224\nopen = tcp/22\n"),
        "knockd.conf:4: bad value \"sha224\" for spa_hmac_digest (expected md5, sha1, sha256, sha384, sha512, sha3_256 or sha3_512)"
    );
    assert_eq!(
        error("[s]\nspa_key = k\nspa_hmac_key = h\n"),
        "knockd.conf:1: door [s]: spa_key needs open or start_command (what a valid request grants)"
    );
    assert_eq!(
        error("[s]\nsequence = 1\nspa_port = 1\n"),
        "knockd.conf:1: door [s]: spa_port needs spa_key or spa_key_base64 (it only applies to SPA doors)"
    );
    assert_eq!(
        error("[s]\nspa_key = k\nspa_key_base64 = aw==\nspa_hmac_key = h\nopen=tcp/1\n"),
        "knockd.conf:1: door [s]: spa_key and spa_key_base64 cannot be used together"
    );
    assert_eq!(
        error("[s]\nspa_key = k\nspa_hmac_key = h\nopen=tcp/1\nrequire_source_address = maybe\n"),
        "knockd.conf:5: bad value \"maybe\" for require_source_address (expected yes or no)"
    );
}

#[test]
fn extended_options() {
    let c = parse(
        "[options]\nstate_capacity = 500000\nnft_table = knock_d\nnft_cleanup = yes\nnft_chain = inet filter input\nstatus_socket = /run/k.sock\nspa_replay_file = /var/lib/k/replay\nusesyslog = no\n",
    );
    let o = &c.options;
    assert_eq!(o.state_capacity, Some(500_000));
    assert_eq!(o.nft_table.as_deref(), Some("knock_d"));
    assert!(o.nft_cleanup);
    let chain = o.nft_chain.as_ref().unwrap();
    assert_eq!(
        (
            chain.family.as_str(),
            chain.table.as_str(),
            chain.chain.as_str()
        ),
        ("inet", "filter", "input")
    );
    assert_eq!(o.status_socket.as_deref(), Some("/run/k.sock"));
    assert!(!o.use_syslog);
    assert_eq!(
        error("[options]\nstate_capacity = 0\n"),
        "knockd.conf:2: bad value \"0\" for state_capacity (expected a number of attempts, at least 1)"
    );
    assert_eq!(
        error("[options]\nnft_chain = filter input\n"),
        "knockd.conf:2: bad value \"filter input\" for nft_chain (expected \"FAMILY TABLE CHAIN\", e.g. inet filter input)"
    );
    assert_eq!(
        error("[options]\nnft_table = bad name\n"),
        "knockd.conf:2: bad value \"bad name\" for nft_table (expected a table name of letters, digits, _ and -)"
    );
}

#[test]
fn file_name_appears_as_given() {
    let e = config::parse("[d]\nsequence = x\n", "/etc/knockd.conf").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/knockd.conf:2: bad port \"x\" in sequence"
    );
    assert_eq!(e.line, 2);
}
