//! Command line, scenario selection and the `stamp` helper the doors run.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::bench::{self, Daemon, Kind, RunResult, Scenario};
use crate::frame::Transport;
use crate::report;
use crate::sources::Distinct;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Both,
    Ours,
    Knockd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Proto {
    Tcp,
    Udp,
}

/// Flood benchmark of port-knock daemons: our knockd side by side with knockd 0.8.
///
/// Builds a throw-away lab of network namespaces (nothing touches the host's network), starts
/// each daemon with the same config, floods the first port of its door with spoofed first
/// knocks from a packet generator of its own while a legitimate client knocks every 500 ms,
/// and prints one table (CPU per packet, memory, legitimate knocks that got through,
/// knock-to-action latency). Without scenario flags it runs the full comparison; any of
/// --rate, --duration, --count, --sources, --v6, --proto selects one custom scenario.
/// Must run as root.
#[derive(Debug, Parser)]
#[command(name = "flood-bench", version)]
struct Cli {
    /// A few seconds at low rate, only to check the plumbing (for CI); never fails on
    /// performance figures
    #[arg(long)]
    smoke: bool,

    /// Which daemons to run
    #[arg(long, value_enum, default_value = "both")]
    daemon: Which,

    /// Flood rate: packets per second, "max" (as fast as the generator goes) or "auto" (half
    /// the generator's rate measured alone, at least 100,000 if it can do 125,000)
    #[arg(long, value_name = "PPS|max|auto")]
    rate: Option<String>,

    /// Flood duration in seconds (at most 600)
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,

    /// Stop the flood after this many packets (the duration still bounds it)
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// Distinct spoofed sources, cycled ("10000" holds 10,000 tracked sources), or "unique"
    /// for a new source on every packet
    #[arg(long, value_name = "N|unique")]
    sources: Option<String>,

    /// Share of IPv6 flood sources, in percent
    #[arg(long, value_name = "PCT")]
    v6: Option<u8>,

    /// Flood transport (the door's sequence uses the same protocol)
    #[arg(long, value_enum)]
    proto: Option<Proto>,

    /// Interval between legitimate knock sequences, in ms
    #[arg(long, default_value_t = 500, value_name = "MS")]
    legit_interval: u64,

    /// Share of legitimate knock sequences sent over IPv6, in percent
    #[arg(long, default_value_t = 0, value_name = "PCT")]
    legit_v6: u8,

    /// The door's knock sequence (ports; the flood hits the first)
    #[arg(long, default_value = "7000,8000,9000", value_name = "P1,P2,...")]
    sequence: String,

    /// The door's Seq_Timeout in seconds (knockd's default is 25)
    #[arg(long, default_value_t = 25, value_name = "SECS")]
    seq_timeout: u32,

    /// Frames per sendmmsg call
    #[arg(long, default_value_t = 64)]
    batch: usize,

    /// Seed of the spoofed sources and ports
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,

    /// Seconds to measure the generator alone first (0: skip; "auto" rate then means "max")
    #[arg(long, value_name = "SECS")]
    calibrate: Option<f64>,

    /// Only measure the generator alone (no daemon) and exit
    #[arg(long)]
    generator_only: bool,

    /// Write the report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Our knockd binary (default: the workspace's, next to flood-bench)
    #[arg(long, value_name = "PATH")]
    ours: Option<PathBuf>,

    /// knockd 0.8 binary
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/knockd")]
    knockd: PathBuf,

    /// Extra `[options]` line for our daemon only (repeatable), e.g. a state capacity
    #[arg(long = "ours-option", value_name = "LINE")]
    ours_options: Vec<String>,

    /// Less progress output
    #[arg(short, long)]
    quiet: bool,
}

/// `flood-bench stamp FILE IP`: appends `IP UNIX_SECONDS` to FILE. The doors' Start_Command;
/// handled before argument parsing so it starts fast.
fn stamp(args: &[String]) -> ExitCode {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (Some(file), Some(ip)) = (args.first(), args.get(1)) else {
        eprintln!("usage: flood-bench stamp FILE IP");
        return ExitCode::from(2);
    };
    let line = format!("{ip} {}.{:09}\n", now.as_secs(), now.subsec_nanos());
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flood-bench stamp: {file}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    let ports: Result<Vec<u16>, String> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("--sequence: {p:?} is not a port 1..65535"))
        })
        .collect();
    let ports = ports?;
    if ports.is_empty() {
        return Err("--sequence: no port".into());
    }
    Ok(ports)
}

fn parse_distinct(s: &str) -> Result<Distinct, String> {
    if s == "unique" {
        return Ok(Distinct::Unique);
    }
    s.replace(['_', ','], "")
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .map(Distinct::Cycle)
        .ok_or_else(|| format!("--sources: {s:?} is neither a positive number nor \"unique\""))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RateSpec {
    Fixed(u64),
    Max,
    Auto,
}

fn parse_rate(s: &str) -> Result<RateSpec, String> {
    match s {
        "max" => Ok(RateSpec::Max),
        "auto" => Ok(RateSpec::Auto),
        _ => s
            .replace(['_', ','], "")
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(RateSpec::Fixed)
            .ok_or_else(|| format!("--rate: {s:?} is not a positive number, \"max\" or \"auto\"")),
    }
}

/// The "auto" flood rate from the generator's rate alone: half of it (a daemon's capture
/// socket makes each packet dearer for the sender, and the daemon needs a core), but at least
/// 100,000 packets/s when the generator can do 125% of that; rounded down to 10,000.
fn auto_rate(alone: f64) -> u64 {
    let r = (alone * 0.5).max(100_000f64.min(alone * 0.8));
    ((r / 10_000.0).floor() as u64 * 10_000).max(1000)
}

/// The scenarios to run, each with its rate spec.
fn scenarios(cli: &Cli) -> Result<Vec<(Scenario, RateSpec)>, String> {
    let ports = parse_ports(&cli.sequence)?;
    if cli.v6.is_some_and(|v| v > 100) || cli.legit_v6 > 100 {
        return Err("IPv6 shares are percentages (0..100)".into());
    }
    let base = Scenario {
        name: String::new(),
        transport: match cli.proto {
            Some(Proto::Udp) => Transport::Udp,
            _ => Transport::TcpSyn,
        },
        rate: None,
        duration: Duration::from_secs(30),
        count: cli.count,
        distinct: Distinct::Cycle(10_000),
        v6_percent: cli.v6.unwrap_or(0),
        legit_interval: Duration::from_millis(cli.legit_interval.max(10)),
        legit_v6_percent: cli.legit_v6,
        seq_timeout: cli.seq_timeout,
        ports,
        batch: cli.batch,
        seed: cli.seed,
    };
    let duration = match cli.duration {
        Some(d) if d > 0.0 && d <= 600.0 => Some(Duration::from_secs_f64(d)),
        Some(d) => return Err(format!("--duration {d}: must be in (0, 600] seconds")),
        None => None,
    };
    let rate = cli.rate.as_deref().map(parse_rate).transpose()?;
    let distinct = cli.sources.as_deref().map(parse_distinct).transpose()?;
    if cli.smoke {
        let sc = Scenario {
            name: "smoke".into(),
            duration: duration.unwrap_or(Duration::from_secs(3)),
            distinct: distinct.unwrap_or(Distinct::Cycle(1000)),
            v6_percent: cli.v6.unwrap_or(50),
            ..base
        };
        return Ok(vec![(sc, rate.unwrap_or(RateSpec::Fixed(2000)))]);
    }
    let custom = cli.rate.is_some()
        || cli.duration.is_some()
        || cli.count.is_some()
        || cli.sources.is_some()
        || cli.v6.is_some()
        || cli.proto.is_some();
    if custom {
        let sc = Scenario {
            name: "custom".into(),
            duration: duration.unwrap_or(base.duration),
            distinct: distinct.unwrap_or(base.distinct),
            ..base
        };
        return Ok(vec![(sc, rate.unwrap_or(RateSpec::Auto))]);
    }
    Ok(vec![
        (
            Scenario {
                name: "tracked-10k".into(),
                distinct: Distinct::Cycle(10_000),
                v6_percent: 0,
                ..base.clone()
            },
            RateSpec::Auto,
        ),
        (
            Scenario {
                name: "unique-sources".into(),
                distinct: Distinct::Unique,
                v6_percent: 50,
                ..base.clone()
            },
            RateSpec::Auto,
        ),
        (
            // As fast as the generator goes, while it shares the machine with the daemon.
            Scenario {
                name: "max-rate".into(),
                distinct: Distinct::Cycle(10_000),
                v6_percent: 50,
                duration: Duration::from_secs(15),
                ..base
            },
            RateSpec::Max,
        ),
    ])
}

fn daemons(cli: &Cli) -> Result<Vec<Daemon>, String> {
    let mut v = Vec::new();
    if matches!(cli.daemon, Which::Both | Which::Knockd) {
        if !cli.knockd.is_file() {
            return Err(format!(
                "knockd 0.8 not found at {} (Debian package knockd; scripts/deps --test installs it), \
                 or use --daemon ours",
                cli.knockd.display()
            ));
        }
        v.push(Daemon {
            kind: Kind::Knockd,
            binary: cli.knockd.clone(),
            extra_options: Vec::new(),
        });
    }
    if matches!(cli.daemon, Which::Both | Which::Ours) {
        let binary = match &cli.ours {
            Some(p) => p.clone(),
            None => netns_testkit::bin("knockd").map_err(|e| e.to_string())?,
        };
        v.push(Daemon {
            kind: Kind::Ours,
            binary,
            extra_options: cli.ours_options.clone(),
        });
    }
    Ok(v)
}

fn run(cli: &Cli) -> Result<bool, String> {
    if !netns_testkit::is_root() {
        return Err("flood-bench builds network namespaces and must run as root".into());
    }
    let plan = scenarios(cli)?;
    crate::generator::catch_interrupts();
    let daemons = if cli.generator_only {
        Vec::new()
    } else {
        daemons(cli)?
    };
    let verbose = !cli.quiet;
    let calib_secs = cli.calibrate.unwrap_or(if cli.smoke || cli.generator_only {
        1.0
    } else {
        3.0
    });
    let mut generator_alone = None;
    if calib_secs > 0.0 {
        let (sc, _) = &plan[0];
        let st = bench::calibrate(sc, Duration::from_secs_f64(calib_secs.min(60.0)))?;
        if verbose {
            eprintln!(
                "generator alone: {} packets in {:.2} s = {} pps ({} send stalls)",
                report::thousands(st.sent),
                st.elapsed.as_secs_f64(),
                report::thousands(st.rate().round() as u64),
                st.stalls
            );
        }
        generator_alone = Some(st.rate());
    }
    if cli.generator_only {
        return Ok(true);
    }
    let mut done: Vec<(Scenario, Vec<RunResult>)> = Vec::new();
    for (mut sc, spec) in plan {
        sc.rate = match spec {
            RateSpec::Fixed(r) => Some(r),
            RateSpec::Max => None,
            RateSpec::Auto => generator_alone.map(auto_rate),
        };
        if verbose {
            eprintln!("scenario {}", sc.describe());
        }
        let mut results = Vec::new();
        for d in &daemons {
            if crate::generator::interrupted() {
                return Err("interrupted".into());
            }
            let r = bench::run(d, &sc, verbose)
                .map_err(|e| format!("scenario {}, {}: {e}", sc.name, d.kind.label()))?;
            if verbose {
                eprintln!(
                    "[{}] processed {:?}, legit {}/{}, cpu {:.2} s, rss {} -> {} kB{}",
                    d.kind.label(),
                    r.processed,
                    r.legit_ok(),
                    r.attempts.len(),
                    r.cpu_s,
                    r.rss_before_kb,
                    r.rss_end_kb,
                    if r.notes.is_empty() {
                        String::new()
                    } else {
                        format!("; notes: {}", r.notes.join("; "))
                    }
                );
            }
            results.push(r);
        }
        done.push((sc, results));
    }
    println!("{}", report::table(&done, generator_alone));
    for (sc, rs) in &done {
        for r in rs {
            println!(
                "{} / {}: processed = {}",
                sc.name,
                r.kind.label(),
                if r.processed_how.is_empty() {
                    "n/a"
                } else {
                    &r.processed_how
                }
            );
            for n in &r.notes {
                println!("{} / {}: note: {n}", sc.name, r.kind.label());
            }
        }
    }
    if !cli.smoke {
        for g in report::goals(&done) {
            println!("goal: {g}");
        }
    }
    if let Some(p) = &cli.json {
        std::fs::write(p, report::json(&done, generator_alone).render())
            .map_err(|e| format!("writing {}: {e}", p.display()))?;
    }
    // Plumbing: every daemon got flood packets and legitimate attempts were made.
    let mut ok = true;
    for (sc, rs) in &done {
        for r in rs {
            let mut problems = Vec::new();
            if r.flood.sent == 0 {
                problems.push("the generator sent nothing");
            }
            if r.iface_rx == 0 {
                problems.push("nothing reached the server interface");
            }
            if r.attempts.is_empty() {
                problems.push("no legitimate knock was sent");
            }
            if r.processed == Some(0) {
                problems.push("the daemon processed no flood packet");
            }
            if r.kind == Kind::Ours && r.processed.is_none() {
                problems.push("the daemon's status counters could not be read");
            }
            if !problems.is_empty() {
                ok = false;
                eprintln!(
                    "plumbing problem in {} / {}: {}",
                    sc.name,
                    r.kind.label(),
                    problems.join("; ")
                );
            }
        }
    }
    Ok(ok)
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("stamp") {
        return stamp(&args[2..]);
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("flood-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("flood-bench").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn full_smoke_and_custom_plans() {
        let full = scenarios(&cli(&[])).unwrap();
        assert_eq!(full.len(), 3);
        assert_eq!(full[0].0.distinct, Distinct::Cycle(10_000));
        assert_eq!(full[1].0.distinct, Distinct::Unique);
        assert_eq!(full[2].1, RateSpec::Max);
        let smoke = scenarios(&cli(&["--smoke"])).unwrap();
        assert_eq!(smoke.len(), 1);
        assert_eq!(smoke[0].1, RateSpec::Fixed(2000));
        assert!(smoke[0].0.duration <= Duration::from_secs(5));
        let c = scenarios(&cli(&[
            "--rate",
            "50000",
            "--sources",
            "unique",
            "--v6",
            "100",
            "--proto",
            "udp",
        ]))
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1, RateSpec::Fixed(50_000));
        assert_eq!(c[0].0.transport, Transport::Udp);
        assert_eq!(c[0].0.v6_percent, 100);
    }

    #[test]
    fn auto_rates() {
        assert_eq!(auto_rate(419_645.0), 200_000);
        assert_eq!(auto_rate(180_000.0), 100_000);
        assert_eq!(auto_rate(100_000.0), 80_000);
        assert_eq!(auto_rate(1000.0), 1000);
    }

    #[test]
    fn bad_values() {
        assert!(scenarios(&cli(&["--duration", "0"])).is_err());
        assert!(scenarios(&cli(&["--duration", "601"])).is_err());
        assert!(scenarios(&cli(&["--sequence", "7000,x"])).is_err());
        assert!(scenarios(&cli(&["--sources", "0"])).is_err());
        assert!(scenarios(&cli(&["--rate", "fast"])).is_err());
        assert_eq!(parse_rate("100_000").unwrap(), RateSpec::Fixed(100_000));
        assert_eq!(parse_distinct("10,000").unwrap(), Distinct::Cycle(10_000));
    }

    #[test]
    fn stamp_appends() {
        let dir = std::env::temp_dir().join(format!("flood-bench-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.log");
        let fs = f.to_string_lossy().into_owned();
        assert_eq!(
            stamp(&[fs.clone(), "198.18.1.10".into()]),
            ExitCode::SUCCESS
        );
        assert_eq!(
            stamp(&[fs.clone(), "198.18.1.11".into()]),
            ExitCode::SUCCESS
        );
        let m = crate::legit::parse_stamps(&std::fs::read_to_string(&f).unwrap());
        assert_eq!(m.len(), 2);
        let t = m[&"198.18.1.10".parse().unwrap()][0];
        assert!((t - crate::legit::unix_now()).abs() < 60.0);
        assert_eq!(stamp(&[fs]), ExitCode::from(2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
