//! The program: parse, resolve once, knock, map failures to messages and exit codes.
//!
//! Exit status: 0 when the sequence was sent (with `--both`: sent completely over at least one
//! family), 1 on any error (usage errors included, as with the classic client).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, KnockPlan, Mode};
use crate::resolve::{resolve, select_targets};
use crate::send::{Hitter, SocketHitter, check_supported};
use crate::services::Services;

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
    let mode = match cli.into_mode(&Services::system()) {
        Ok(mode) => mode,
        Err(e) => return fail(&e),
    };
    match mode {
        Mode::Knock(plan) => run_knock(&plan),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("knock: {e}");
    ExitCode::FAILURE
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
