//! Our `knock` against the real Debian `knockd` 0.8 (package `knockd`).
//!
//! Each test builds a lab (netns-testkit): `/usr/sbin/knockd -i cli1 -c CONF` runs in the server
//! namespace with its LogFile in the lab directory; every door's command appends `<door> %IP%`
//! to a marker file, so a test sees which door opened for which address. `knock` runs in client
//! namespace 1 (198.18.1.2, 2001:2:0:1::2).
//!
//! Needs root, `ip` and `/usr/sbin/knockd`. Not root: the tests fail, unless
//! KNOCK_SKIP_ROOT_TESTS=1.
#![cfg(target_os = "linux")]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use netns_testkit::{ChildGuard, Lab, require_root, wait_for_file_line, wait_until};

const KNOCKD: &str = "/usr/sbin/knockd";
const T: Duration = Duration::from_secs(10);

/// How long to wait before concluding that a door did *not* open.
const QUIET: Duration = Duration::from_millis(1500);

const OTS: &str = "\
# one-time sequences, used from the top
7501,7502
 7503:udp,7504
7505,7506
";

fn config(dir: &Path) -> String {
    let marker = dir.join("marker").display().to_string();
    let cmd = |door: &str| format!("echo {door} %IP% >> {marker}");
    format!(
        "[options]\n\
         \tLogFile = {log}\n\
         \n\
         [tcpdoor]\n\
         \tsequence = 7101,7102,7103\n\
         \tseq_timeout = 5\n\
         \ttcpflags = syn\n\
         \tcommand = {tcp}\n\
         \n\
         [udpdoor]\n\
         \tsequence = 7201:udp,7202:udp,7203:udp\n\
         \tseq_timeout = 5\n\
         \tcommand = {udp}\n\
         \n\
         [mixed]\n\
         \tsequence = 7301,7302:udp,7303\n\
         \tseq_timeout = 5\n\
         \ttcpflags = syn\n\
         \tcommand = {mixed}\n\
         \n\
         [alludp]\n\
         \tsequence = 7401:udp,7402:udp,7403:udp\n\
         \tseq_timeout = 5\n\
         \tcommand = {alludp}\n\
         \n\
         [ots]\n\
         \tone_time_sequences = {ots}\n\
         \tseq_timeout = 5\n\
         \tcommand = {otscmd}\n",
        log = dir.join("knockd.log").display(),
        tcp = cmd("tcpdoor"),
        udp = cmd("udpdoor"),
        mixed = cmd("mixed"),
        alludp = cmd("alludp"),
        ots = dir.join("ots.txt").display(),
        otscmd = cmd("ots"),
    )
}

/// A lab with knockd running.
struct Door {
    lab: Lab,
    knockd: ChildGuard,
    marker: PathBuf,
    log: PathBuf,
}

fn start() -> Door {
    assert!(
        Path::new(KNOCKD).exists(),
        "{KNOCKD} missing: install the Debian package knockd"
    );
    let lab = Lab::new(1).unwrap();
    let dir = lab.dir().to_path_buf();
    fs::write(dir.join("ots.txt"), OTS).unwrap();
    let conf = lab.write_file("knockd.conf", &config(&dir)).unwrap();
    let log = dir.join("knockd.log");
    let mut cmd = lab.server().cmd(KNOCKD);
    cmd.args(["-i", "cli1", "-c", conf.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("knockd.stdout")).unwrap())
        .stderr(File::create(dir.join("knockd.stderr")).unwrap());
    let knockd = lab.server().spawn_cmd(cmd).unwrap();
    wait_for_file_line(&log, "starting up, listening on cli1", T).unwrap();
    // The startup line is written just before the capture loop starts.
    std::thread::sleep(Duration::from_millis(300));
    Door {
        lab,
        knockd,
        marker: dir.join("marker"),
        log,
    }
}

impl Door {
    fn v4(&self) -> String {
        self.lab.server_v4(1).to_string()
    }

    fn v6(&self) -> String {
        self.lab.server_v6(1).to_string()
    }

    /// Runs our knock in the client namespace; returns its stderr.
    fn knock(&self, args: &[&str]) -> String {
        let bin = netns_testkit::bin("knock").unwrap();
        let mut argv = vec![bin.to_str().unwrap()];
        argv.extend_from_slice(args);
        let out = self.lab.client(1).output(&argv).unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "knock {args:?}: {err}");
        err
    }

    fn marker(&self) -> Vec<String> {
        fs::read_to_string(&self.marker)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the marker holds `want` (in order), and checks nothing else opened.
    fn expect_marker(&self, want: &[&str]) {
        let done = wait_until(T, || self.marker().len() >= want.len());
        // Give a wrongly opened door the time to show up too.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            done && self.marker() == want,
            "marker {:?}, want {want:?}; knockd log:\n{}",
            self.marker(),
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Checks that nothing more opens for a while.
    fn expect_no_more(&self, want: &[&str]) {
        std::thread::sleep(QUIET);
        assert_eq!(self.marker(), want);
    }

    fn knockd_alive(&mut self) -> bool {
        self.knockd.try_wait().unwrap().is_none()
    }
}

#[test]
fn tcp_door() {
    if !require_root() {
        return;
    }
    let d = start();
    let s = d.v4();
    d.knock(&["-d", "50", &s, "7101", "7102", "7103"]);
    d.expect_marker(&["tcpdoor 198.18.1.2"]);
    // The same ports over UDP: nothing.
    d.knock(&[&s, "7101:udp", "7102:udp", "7103:udp"]);
    d.expect_no_more(&["tcpdoor 198.18.1.2"]);
    // Part of the sequence: nothing. (Last: knockd would count a restart in the middle of
    // this attempt as a wrong knock, see docs/knockd-observed.md.)
    d.knock(&[&s, "7101", "7102"]);
    d.expect_no_more(&["tcpdoor 198.18.1.2"]);
    let log = fs::read_to_string(&d.log).unwrap();
    assert!(log.contains("198.18.1.2: tcpdoor: OPEN SESAME"), "{log}");
}

#[test]
fn udp_door() {
    if !require_root() {
        return;
    }
    let d = start();
    let s = d.v4();
    // TCP hits on the UDP door's ports do nothing.
    d.knock(&[&s, "7201", "7202", "7203"]);
    d.expect_no_more(&[]);
    d.knock(&[&s, "7201:udp", "7202:udp", "7203:udp"]);
    d.expect_marker(&["udpdoor 198.18.1.2"]);
    // -u turns plain ports into UDP hits.
    d.knock(&["-u", &s, "7201", "7202", "7203"]);
    d.expect_marker(&["udpdoor 198.18.1.2", "udpdoor 198.18.1.2"]);
}

#[test]
fn mixed_door_and_udp_override() {
    if !require_root() {
        return;
    }
    let d = start();
    let s = d.v4();
    d.knock(&[&s, "7301", "7302:udp", "7303:tcp"]);
    d.expect_marker(&["mixed 198.18.1.2"]);
    // -u makes every hit UDP, even an explicit :tcp (the classic client's behaviour), with a
    // warning: the all-UDP door opens, the mixed one does not.
    let err = d.knock(&["-u", &s, "7401", "7402:tcp", "7403"]);
    assert_eq!(
        err,
        "knock: warning: -u/--udp sends every hit over UDP, as the classic knock does: \
         7402:tcp is sent over UDP\n"
    );
    d.expect_marker(&["mixed 198.18.1.2", "alludp 198.18.1.2"]);
    d.knock(&["-u", &s, "7301:tcp", "7302", "7303:tcp"]);
    d.expect_no_more(&["mixed 198.18.1.2", "alludp 198.18.1.2"]);
}

#[test]
fn ipv6_knocks() {
    if !require_root() {
        return;
    }
    let d = start();
    let s6 = d.v6();
    d.knock(&[&s6, "7101", "7102", "7103"]);
    d.expect_marker(&["tcpdoor 2001:2:0:1::2"]);
    d.knock(&["-6", &format!("[{s6}]"), "7301", "7302:udp", "7303"]);
    d.expect_marker(&["tcpdoor 2001:2:0:1::2", "mixed 2001:2:0:1::2"]);
    d.knock(&[&s6, "7201:udp", "7202:udp", "7203:udp"]);
    d.expect_marker(&[
        "tcpdoor 2001:2:0:1::2",
        "mixed 2001:2:0:1::2",
        "udpdoor 2001:2:0:1::2",
    ]);
}

#[test]
fn one_time_sequences() {
    if !require_root() {
        return;
    }
    let mut d = start();
    let s = d.v4();
    // The second sequence is not current yet.
    d.knock(&[&s, "7503:udp", "7504"]);
    d.expect_no_more(&[]);
    d.knock(&[&s, "7501", "7502"]);
    d.expect_marker(&["ots 198.18.1.2"]);
    let ots = d.lab.dir().join("ots.txt");
    let text = fs::read_to_string(&ots).unwrap();
    assert_eq!(
        text,
        "# one-time sequences, used from the top\n#501,7502\n 7503:udp,7504\n7505,7506\n"
    );
    // Used up: the first sequence no longer opens.
    d.knock(&[&s, "7501", "7502"]);
    d.expect_no_more(&["ots 198.18.1.2"]);
    // The next one does. (Only two of three are used: knockd 0.8 aborts after the last one.)
    d.knock(&[&s, "7503:udp", "7504"]);
    d.expect_marker(&["ots 198.18.1.2", "ots 198.18.1.2"]);
    assert!(
        fs::read_to_string(&ots)
            .unwrap()
            .contains("\n#7503:udp,7504\n")
    );
    assert!(d.knockd_alive());
}
