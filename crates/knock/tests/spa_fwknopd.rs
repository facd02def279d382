//! Our `knock` SPA client against the real fwknop server (Debian `fwknop-server` 2.6.10).
//!
//! Each test builds a lab (netns-testkit): `fwknopd -f` runs in the server namespace with its
//! own configuration files in the lab directory and sniffs `cli1`; it grants access by adding
//! iptables rules in the server namespace (a `FWKNOP_INPUT` chain jumped to from INPUT, before
//! a DROP rule for the protected port added here). A TCP service listens on the protected port
//! in the server namespace; the client namespace (198.18.1.2) runs `knock`.
//!
//! Needs root, `ip`, `iptables` and `/usr/sbin/fwknopd`. Not root: the tests fail, unless
//! KNOCK_SKIP_ROOT_TESTS=1.
#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netns_testkit::{ChildGuard, Lab, TcpService, require_root, wait_for_file_line, wait_until};

const FWKNOPD: &str = "/usr/sbin/fwknopd";
/// The protected service.
const PORT: u16 = 22;
const T: Duration = Duration::from_secs(10);

fn knock_bin() -> PathBuf {
    netns_testkit::bin("knock").unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A key pair made by `knock --spa-keygen`, read back from its fwknop form.
struct Keys {
    key: String,
    hmac: String,
}

fn keygen() -> Keys {
    let out = std::process::Command::new(knock_bin())
        .arg("--spa-keygen")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let keys = Keys {
        key: field("KEY_BASE64 "),
        hmac: field("HMAC_KEY_BASE64 "),
    };
    // The knockd.conf form holds the same keys.
    assert!(text.contains(&format!("spa_key_base64      = {}\n", keys.key)));
    assert!(text.contains(&format!("spa_hmac_key_base64 = {}\n", keys.hmac)));
    keys
}

/// A lab with fwknopd running, the protected port behind a DROP rule and a service on it.
struct Server {
    lab: Lab,
    keys: Keys,
    log: PathBuf,
    _fwknopd: ChildGuard,
    service: TcpService,
}

fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn start(extra_access: &str) -> Server {
    assert!(
        Path::new(FWKNOPD).exists(),
        "{FWKNOPD} missing: install the Debian package fwknop-server"
    );
    let lab = Lab::new(1).unwrap();
    let keys = keygen();
    let dir = lab.dir().to_path_buf();
    let run = dir.join("run");
    fs::create_dir_all(&run).unwrap();
    let conf = dir.join("fwknopd.conf");
    let access = dir.join("access.conf");
    write_private(
        &conf,
        &format!(
            "PCAP_INTF cli1;\nFIREWALL_EXE /usr/sbin/iptables;\nFWKNOP_RUN_DIR {};\n",
            run.display()
        ),
    );
    write_private(
        &access,
        &format!(
            "SOURCE ANY\nKEY_BASE64 {}\nHMAC_KEY_BASE64 {}\nOPEN_PORTS tcp/{PORT}\n\
             FW_ACCESS_TIMEOUT 30\n{extra_access}",
            keys.key, keys.hmac
        ),
    );
    let srv = lab.server();
    // The protected port is closed to everyone; fwknopd inserts its jump before this rule.
    srv.run(&[
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        &PORT.to_string(),
        "-j",
        "DROP",
    ])
    .unwrap();
    let service = srv.tcp_service(PORT).unwrap();
    // fwknopd writes its messages to stderr: stdout and stderr share the guard's log file.
    let (conf, access, cache, pid, run) = (
        conf.display().to_string(),
        access.display().to_string(),
        dir.join("digest.cache").display().to_string(),
        run.join("fwknopd.pid").display().to_string(),
        run.display().to_string(),
    );
    let fwknopd = srv
        .spawn(&[
            FWKNOPD, "-f", "-c", &conf, "-a", &access, "-d", &cache, "-p", &pid, "-r", &run,
        ])
        .unwrap();
    let log = fwknopd.log_path().unwrap().to_path_buf();
    wait_for_file_line(&log, "Starting fwknopd main event loop", T).unwrap();
    Server {
        lab,
        keys,
        log,
        _fwknopd: fwknopd,
        service,
    }
}

impl Server {
    fn server_ip(&self) -> String {
        self.lab.server_v4(1).to_string()
    }

    fn client_ip(&self) -> String {
        self.lab.client_v4(1).to_string()
    }

    fn reachable(&self) -> bool {
        self.lab.client(1).tcp_connect_ok(
            self.lab.server_v4(1).into(),
            PORT,
            Duration::from_millis(700),
        )
    }

    /// `iptables -S FWKNOP_INPUT` lines that are rules.
    fn rules(&self) -> Vec<String> {
        self.lab
            .server()
            .run_stdout(&["iptables", "-S", "FWKNOP_INPUT"])
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_string)
            .collect()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs our knock in the client namespace, with `HOME` set to `home` when given.
    fn knock(&self, args: &[&str], home: Option<&Path>) -> Output {
        let mut cmd = self.lab.client(1).cmd(knock_bin());
        cmd.args(args).stdin(Stdio::null());
        if let Some(h) = home {
            cmd.env("HOME", h);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "knock {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Waits for a grant and returns the rule and its expiry time.
    fn wait_grant(&self) -> (String, u64) {
        assert!(
            wait_until(T, || !self.rules().is_empty()),
            "no grant; fwknopd log:\n{}",
            self.log()
        );
        let rules = self.rules();
        assert_eq!(rules.len(), 1, "{rules:?}");
        let rule = rules[0].clone();
        let exp = rule
            .split("_exp_")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no expiry in {rule}"));
        (rule, exp)
    }
}

/// The rule fwknopd adds for `ip`, without its comment.
fn rule_for(ip: &str) -> String {
    format!("-A FWKNOP_INPUT -s {ip}/32 -p tcp -m tcp --dport {PORT} -m comment --comment _exp_")
}

#[test]
fn allow_ip_request_opens_the_port() {
    if !require_root() {
        return;
    }
    let s = start("");
    assert!(
        !s.reachable(),
        "the port must be closed before the SPA packet"
    );
    assert!(s.rules().is_empty());
    let t0 = now();
    let out = s.knock(
        &[
            "-v",
            "-A",
            &format!("tcp/{PORT}"),
            "-a",
            &s.client_ip(),
            "--key-base64",
            &s.keys.key,
            "--hmac-key-base64",
            &s.keys.hmac,
            &s.server_ip(),
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SPA access request: 198.18.1.2 tcp/22 (message type 1)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&s.keys.key) && !stdout.contains(&s.keys.hmac),
        "{stdout}"
    );
    let (rule, exp) = s.wait_grant();
    assert!(rule.starts_with(&rule_for("198.18.1.2")), "{rule}");
    // FW_ACCESS_TIMEOUT 30 of access.conf (no client timeout asked for).
    assert!(
        (t0 + 29..=now() + 31).contains(&exp),
        "expiry {exp}, t0 {t0}"
    );
    assert!(s.reachable(), "granted, yet the port is not reachable");
    assert!(wait_until(T, || s.service.accepted() >= 1));
    assert!(
        s.log()
            .contains("Added access rule to FWKNOP_INPUT for 198.18.1.2"),
        "{}",
        s.log()
    );
}

#[test]
fn fw_timeout_is_honoured_and_the_grant_expires() {
    if !require_root() {
        return;
    }
    let s = start("");
    let t0 = now();
    // -s: the server opens for the packet's source address.
    s.knock(
        &[
            "--access",
            &format!("tcp/{PORT}"),
            "--source-ip",
            "--fw-timeout",
            "4",
            "--key-base64-rijndael",
            &s.keys.key,
            "--key-base64-hmac",
            &s.keys.hmac,
            "-D",
            &s.server_ip(),
        ],
        None,
    );
    let (rule, exp) = s.wait_grant();
    assert!(rule.starts_with(&rule_for("198.18.1.2")), "{rule}");
    assert!((t0 + 3..=now() + 5).contains(&exp), "expiry {exp}, t0 {t0}");
    assert!(s.reachable());
    // fwknopd removes expired rules about once a second.
    assert!(
        wait_until(Duration::from_secs(12), || s.rules().is_empty()),
        "grant not removed: {:?}",
        s.rules()
    );
    assert!(!s.reachable(), "closed again after the timeout");
}

#[test]
fn wrong_keys_are_refused() {
    if !require_root() {
        return;
    }
    let s = start("");
    let other = keygen();
    let base = |key: &str, hmac: &str| {
        s.knock(
            &[
                "-A",
                &format!("tcp/{PORT}"),
                "-a",
                &s.client_ip(),
                "--key-base64",
                key,
                "--hmac-key-base64",
                hmac,
                &s.server_ip(),
            ],
            None,
        );
    };
    base(&s.keys.key, &other.hmac);
    wait_for_file_line(&s.log, "HMAC_COMPAREFAIL", T).unwrap();
    base(&other.key, &s.keys.hmac);
    wait_for_file_line(&s.log, "Decryption failed", T).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.rules().is_empty(), "{:?}", s.rules());
    assert!(!s.reachable());
    // The right keys still work afterwards.
    base(&s.keys.key, &s.keys.hmac);
    s.wait_grant();
    assert!(s.reachable());
}

#[test]
fn fwknoprc_stanza_and_required_user() {
    if !require_root() {
        return;
    }
    let s = start("REQUIRE_USERNAME bob\n");
    let home = s.lab.dir().join("home");
    fs::create_dir_all(&home).unwrap();
    write_private(
        &home.join(".fwknoprc"),
        &format!(
            "[default]\nHMAC_DIGEST_TYPE SHA256\n\n[lab]\nSPA_SERVER {}\nACCESS tcp/{PORT}\n\
             ALLOW_IP {}\nKEY_BASE64 {}\nHMAC_KEY_BASE64 {}\nUSE_HMAC Y\nSPOOF_USER alice\n",
            s.server_ip(),
            s.client_ip(),
            s.keys.key,
            s.keys.hmac
        ),
    );
    // The stanza's user is refused by REQUIRE_USERNAME...
    s.knock(&["-n", "lab"], Some(&home));
    wait_for_file_line(
        &s.log,
        "Username in SPA data (alice) does not match required username: bob",
        T,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.rules().is_empty(), "{:?}", s.rules());
    // ... the command line overrides it.
    s.knock(&["-n", "lab", "--user", "bob"], Some(&home));
    let (rule, _) = s.wait_grant();
    assert!(rule.starts_with(&rule_for("198.18.1.2")), "{rule}");
    assert!(s.reachable());
}
