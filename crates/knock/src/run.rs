//! The program: parse, validate, run the chosen mode, map failures to messages and exit codes.
//!
//! Exit status: 0 when the sequence was sent (with `--both`: sent completely over at least one
//! family), the SPA packet sent, or the requested text printed; 1 on any error (usage errors
//! included, as with the classic client).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use knock_core::proto::Knock;

use crate::cli::{Cli, KnockPlan, Mode};
use crate::env::SystemEnv;
use crate::resolve::{resolve, select_targets};
use crate::rotating::{
    self, NEW_SECRET_BYTES, RotatingAction, RotatingPlan, new_secret_text, ports_line,
    validity_line,
};
use crate::send::{DatagramSender, Hitter, SocketHitter, check_supported};
use crate::services::Services;
use crate::spa::{KEYGEN_HMAC_KEY_LEN, KEYGEN_KEY_LEN, SpaPlan, keygen_text};

/// Entry point: returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let inv = match cli.into_mode(&Services::system(), &SystemEnv) {
        Ok(inv) => inv,
        Err(e) => return fail(&e),
    };
    for w in &inv.warnings {
        eprintln!("knock: warning: {w}");
    }
    match inv.mode {
        Mode::Knock(plan) => run_knock(&plan),
        Mode::Spa(plan) => run_spa(&plan),
        Mode::Rotating(plan) => run_rotating(&plan),
        Mode::SpaKeygen => match (random::<KEYGEN_KEY_LEN>(), random::<KEYGEN_HMAC_KEY_LEN>()) {
            (Ok(k), Ok(h)) => print_out(&keygen_text(&k, &h)),
            (Err(e), _) | (_, Err(e)) => fail(&e),
        },
        Mode::NewSecret => match random::<NEW_SECRET_BYTES>() {
            Ok(b) => print_out(&new_secret_text(&b)),
            Err(e) => fail(&e),
        },
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("knock: {e}");
    ExitCode::FAILURE
}

fn print_out(text: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write to stdout: {e}")),
    }
}

/// The operating system's randomness failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot get random bytes from the operating system: {0}")]
pub struct RandomError(getrandom::Error);

/// `N` bytes from the operating system's CSPRNG.
fn random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(RandomError)?;
    Ok(b)
}

/// Unix seconds now.
fn now_unix() -> Result<u64, String> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "the system clock is set before 1970".to_string())
}

fn run_knock(plan: &KnockPlan) -> ExitCode {
    if let Err(e) = check_supported(&plan.bind) {
        return fail(&e);
    }
    let targets = match resolve(&plan.host)
        .and_then(|addrs| select_targets(&plan.host, &addrs, plan.family, &plan.bind))
    {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let mut hitter = SocketHitter::new(plan.bind.clone());
    let ok = knock(
        plan,
        &targets,
        &mut hitter,
        &mut std::thread::sleep,
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_rotating(plan: &RotatingPlan) -> ExitCode {
    let now = match now_unix() {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let cur = match rotating::current(&plan.spec, now) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match &plan.action {
        RotatingAction::Print => {
            eprintln!("{}", validity_line(&cur, &plan.spec));
            print_out(&format!("{}\n", ports_line(&cur.ports)))
        }
        RotatingAction::Knock(template) => {
            if template.verbose {
                eprintln!(
                    "rotating sequence {} ({}), {}",
                    ports_line(&cur.ports),
                    plan.spec.proto,
                    validity_line(&cur, &plan.spec)
                );
            }
            let kp = KnockPlan {
                knocks: cur
                    .ports
                    .iter()
                    .map(|&p| Knock::new(p, plan.spec.proto))
                    .collect(),
                ..template.clone()
            };
            run_knock(&kp)
        }
    }
}

fn run_spa(plan: &SpaPlan) -> ExitCode {
    if let Err(e) = check_supported(&plan.bind) {
        return fail(&e);
    }
    let target = match resolve(&plan.host)
        .and_then(|addrs| select_targets(&plan.host, &addrs, plan.family, &plan.bind))
    {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let Some(&target) = target.first() else {
        return fail(&format!(
            "cannot resolve host \"{}\": no address",
            plan.host
        ));
    };
    let now = match now_unix() {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let (rand, salt) = match (random::<16>(), random::<8>()) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    let mut sender = SocketHitter::new(plan.bind.clone());
    match send_spa(
        plan,
        target,
        now,
        rand,
        salt,
        &mut sender,
        &mut io::stdout().lock(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Builds the request of `plan` at `now` with the given randomness and sends it to `target`
/// (its port replaced by the plan's). With `-v`, describes it on `out` (never the keys).
pub fn send_spa(
    plan: &SpaPlan,
    target: SocketAddr,
    now: u64,
    rand: [u8; 16],
    salt: [u8; 8],
    sender: &mut dyn DatagramSender,
    out: &mut dyn Write,
) -> Result<(), String> {
    let wire = plan
        .packet(now, rand, salt)
        .map_err(|e| format!("cannot build the SPA packet: {e}"))?;
    let mut to = target;
    to.set_port(plan.port);
    if plan.verbose {
        let _ = writeln!(out, "{}", plan.describe());
        let _ = writeln!(
            out,
            "sending {} bytes to udp {}:{}",
            wire.len(),
            to.ip(),
            to.port()
        );
        let _ = out.flush();
    }
    sender.send_datagram(to, wire.as_bytes()).map_err(|e| {
        format!(
            "cannot send the SPA packet to udp {}:{}: {e}",
            to.ip(),
            to.port()
        )
    })
}

/// Sends the plan's knocks to every target, port by port: each port is hit on every target
/// (one per family with `--both`) before the next port; the delay separates ports and is not
/// waited after the last one.
///
/// A target whose hit fails is reported on `err` and dropped; the others go on. Returns true
/// when at least one target got the whole sequence.
pub fn knock(
    plan: &KnockPlan,
    targets: &[SocketAddr],
    hitter: &mut dyn Hitter,
    sleep: &mut dyn FnMut(Duration),
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    let mut alive = vec![true; targets.len()];
    for (i, k) in plan.knocks.iter().enumerate() {
        for (target, alive) in targets.iter().zip(alive.iter_mut()) {
            if !*alive {
                continue;
            }
            let mut to = *target;
            to.set_port(k.port);
            if plan.verbose {
                // Exactly the classic format, IPv6 without brackets.
                let _ = writeln!(out, "hitting {} {}:{}", k.proto, to.ip(), k.port);
                let _ = out.flush();
            }
            if let Err(e) = hitter.hit(to, k.proto) {
                let _ = writeln!(
                    err,
                    "knock: cannot hit {} port {} on {}: {e}",
                    k.proto,
                    k.port,
                    to.ip()
                );
                if targets.len() > 1 {
                    let _ = writeln!(
                        err,
                        "knock: giving up on {} ({}), going on with the other address family",
                        to.ip(),
                        if to.is_ipv4() { "IPv4" } else { "IPv6" }
                    );
                }
                *alive = false;
            }
        }
        if !alive.iter().any(|a| *a) {
            return false;
        }
        if i + 1 < plan.knocks.len() && !plan.delay.is_zero() {
            sleep(plan.delay);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{BindOptions, Family};
    use crate::send::{HitError, Step};
    use knock_core::proto::{Knock, Protocol};

    /// Records every call (hits and sleeps) in order; fails the hits listed in `fail`.
    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
        fail: Vec<SocketAddr>,
    }

    impl Hitter for Fake {
        fn hit(&mut self, target: SocketAddr, proto: Protocol) -> Result<(), HitError> {
            self.log.push(format!("{proto} {target}"));
            if self.fail.contains(&target) {
                return Err(HitError {
                    step: Step::Connect,
                    source: io::Error::other("Network is unreachable"),
                });
            }
            Ok(())
        }
    }

    fn plan(knocks: &[(u16, Protocol)], delay_ms: u64, verbose: bool) -> KnockPlan {
        KnockPlan {
            host: "h".into(),
            knocks: knocks.iter().map(|&(p, pr)| Knock::new(p, pr)).collect(),
            family: Family::First,
            delay: Duration::from_millis(delay_ms),
            verbose,
            bind: BindOptions::default(),
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    struct Outcome {
        ok: bool,
        log: Vec<String>,
        out: String,
        err: String,
    }

    fn go(plan: &KnockPlan, targets: &[SocketAddr], fail: &[SocketAddr]) -> Outcome {
        let mut fake = Fake {
            fail: fail.to_vec(),
            ..Fake::default()
        };
        let mut sleeps = Vec::new();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = knock(
            plan,
            targets,
            &mut fake,
            &mut |d| sleeps.push(d),
            &mut out,
            &mut err,
        );
        // Interleave sleeps into the log by counting: sleeps happen between rounds.
        let mut log = fake.log;
        log.extend(sleeps.iter().map(|d| format!("sleep {}ms", d.as_millis())));
        Outcome {
            ok,
            log,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    use Protocol::{Tcp, Udp};

    /// Records datagrams; fails when `fail` is set.
    #[derive(Default)]
    struct FakeUdp {
        sent: Vec<(SocketAddr, Vec<u8>)>,
        fail: bool,
    }

    impl DatagramSender for FakeUdp {
        fn send_datagram(&mut self, target: SocketAddr, payload: &[u8]) -> Result<(), HitError> {
            if self.fail {
                return Err(HitError {
                    step: Step::Send,
                    source: io::Error::other("Network is unreachable"),
                });
            }
            self.sent.push((target, payload.to_vec()));
            Ok(())
        }
    }

    fn spa_plan(verbose: bool) -> crate::spa::SpaPlan {
        use knock_core::proto::ProtoPort;
        use knock_core::spa::{HmacDigest, SpaKeys};
        crate::spa::SpaPlan {
            host: "h".into(),
            family: Family::First,
            bind: BindOptions::default(),
            port: 62201,
            keys: SpaKeys::new(b"the enc key".to_vec(), Some(b"the mac key".to_vec())).unwrap(),
            access: vec![ProtoPort {
                proto: Tcp,
                port: 22,
            }],
            allow: crate::spa::Allow::Ip("198.18.1.2".parse().unwrap()),
            user: "alice".into(),
            fw_timeout: Some(30),
            digest: HmacDigest::Sha256,
            verbose,
        }
    }

    #[test]
    fn spa_packet_goes_to_the_spa_port_and_decodes() {
        use knock_core::spa::{Freshness, decode};
        let p = spa_plan(false);
        let mut udp = FakeUdp::default();
        let mut out = Vec::new();
        send_spa(
            &p,
            sa("[2001:2:0:1::1]:0"),
            1_800_000_000,
            [5; 16],
            [6; 8],
            &mut udp,
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
        assert_eq!(udp.sent.len(), 1);
        let (to, payload) = &udp.sent[0];
        assert_eq!(*to, sa("[2001:2:0:1::1]:62201"));
        let d = decode(
            payload,
            &p.keys,
            Freshness::Within {
                now_unix: 1_800_000_001,
                max_age: 120,
            },
        )
        .unwrap();
        assert_eq!(d.message, p.message(1_800_000_000, [5; 16]));
        assert_eq!(d.message.client_timeout, Some(30));
    }

    #[test]
    fn spa_verbose_never_shows_keys_and_errors_name_the_target() {
        let p = spa_plan(true);
        let mut udp = FakeUdp::default();
        let mut out = Vec::new();
        send_spa(
            &p,
            sa("198.18.1.1:0"),
            1,
            [0; 16],
            [0; 8],
            &mut udp,
            &mut out,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let len = udp.sent[0].1.len();
        assert_eq!(
            out,
            format!(
                "SPA access request: 198.18.1.2 tcp/22 (message type 3, timeout 30 s), user alice, HMAC sha256\n\
                 sending {len} bytes to udp 198.18.1.1:62201\n"
            )
        );
        assert!(!out.contains("the enc key") && !out.contains("the mac key"));
        let mut bad = FakeUdp {
            fail: true,
            ..FakeUdp::default()
        };
        let e = send_spa(
            &p,
            sa("198.18.1.1:0"),
            1,
            [0; 16],
            [0; 8],
            &mut bad,
            &mut io::sink(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "cannot send the SPA packet to udp 198.18.1.1:62201: send: Network is unreachable"
        );
    }

    #[test]
    fn hits_in_order_with_ports_and_protocols() {
        let p = plan(&[(7000, Tcp), (8000, Udp), (9000, Tcp)], 0, false);
        let o = go(&p, &[sa("198.18.1.2:0")], &[]);
        assert!(o.ok);
        assert_eq!(
            o.log,
            [
                "tcp 198.18.1.2:7000",
                "udp 198.18.1.2:8000",
                "tcp 198.18.1.2:9000"
            ]
        );
        assert_eq!(o.out, "");
        assert_eq!(o.err, "");
    }

    #[test]
    fn verbose_format_matches_the_classic_client() {
        let p = plan(&[(7000, Tcp), (8000, Udp)], 0, true);
        let o = go(&p, &[sa("198.18.1.2:0")], &[]);
        assert_eq!(
            o.out,
            "hitting tcp 198.18.1.2:7000\nhitting udp 198.18.1.2:8000\n"
        );
        let o = go(&p, &[sa("[2001:2:0:9::2]:0")], &[]);
        assert_eq!(
            o.out,
            "hitting tcp 2001:2:0:9::2:7000\nhitting udp 2001:2:0:9::2:8000\n"
        );
    }

    #[test]
    fn delay_between_hits_not_after_the_last() {
        let mut sleeps = Vec::new();
        let mut fake = Fake::default();
        let p = plan(&[(1, Tcp), (2, Tcp), (3, Tcp)], 150, false);
        assert!(knock(
            &p,
            &[sa("198.18.1.2:0")],
            &mut fake,
            &mut |d| sleeps.push(d),
            &mut io::sink(),
            &mut io::sink()
        ));
        assert_eq!(sleeps, [Duration::from_millis(150); 2]);
        // Zero delay: no sleep call at all; a single port: none either.
        let o = go(
            &plan(&[(1, Tcp), (2, Tcp)], 0, false),
            &[sa("198.18.1.2:0")],
            &[],
        );
        assert!(!o.log.iter().any(|l| l.starts_with("sleep")));
        let o = go(&plan(&[(1, Tcp)], 500, false), &[sa("198.18.1.2:0")], &[]);
        assert!(!o.log.iter().any(|l| l.starts_with("sleep")));
    }

    #[test]
    fn both_families_port_by_port() {
        let p = plan(&[(1, Tcp), (2, Udp)], 0, true);
        let t = [sa("[2001:2::2]:0"), sa("198.18.1.2:0")];
        let o = go(&p, &t, &[]);
        assert!(o.ok);
        assert_eq!(
            o.log,
            [
                "tcp [2001:2::2]:1",
                "tcp 198.18.1.2:1",
                "udp [2001:2::2]:2",
                "udp 198.18.1.2:2"
            ]
        );
        assert_eq!(
            o.out,
            "hitting tcp 2001:2::2:1\nhitting tcp 198.18.1.2:1\n\
             hitting udp 2001:2::2:2\nhitting udp 198.18.1.2:2\n"
        );
    }

    #[test]
    fn single_target_failure_stops_and_names_the_port() {
        let p = plan(&[(1, Tcp), (2, Tcp), (3, Tcp)], 0, false);
        let o = go(&p, &[sa("198.18.1.2:0")], &[sa("198.18.1.2:2")]);
        assert!(!o.ok);
        assert_eq!(o.log, ["tcp 198.18.1.2:1", "tcp 198.18.1.2:2"]);
        assert_eq!(
            o.err,
            "knock: cannot hit tcp port 2 on 198.18.1.2: connect: Network is unreachable\n"
        );
    }

    #[test]
    fn both_families_one_failing_goes_on_with_the_other() {
        let p = plan(&[(1, Tcp), (2, Tcp)], 0, false);
        let t = [sa("[2001:2::2]:0"), sa("198.18.1.2:0")];
        let o = go(&p, &t, &[sa("[2001:2::2]:1")]);
        assert!(o.ok);
        assert_eq!(
            o.log,
            ["tcp [2001:2::2]:1", "tcp 198.18.1.2:1", "tcp 198.18.1.2:2"]
        );
        assert!(
            o.err
                .contains("cannot hit tcp port 1 on 2001:2::2: connect:"),
            "{}",
            o.err
        );
        assert!(o.err.contains("giving up on 2001:2::2 (IPv6)"), "{}", o.err);
        // Both failing: failure.
        let o = go(&p, &t, &[sa("[2001:2::2]:1"), sa("198.18.1.2:2")]);
        assert!(!o.ok);
    }
}
