//! The side-by-side table and the JSON report.

use crate::bench::{Kind, RunResult, STATUS_KEYS, Scenario};
use crate::frame::Transport;
use crate::json::J;
use crate::sources::Distinct;

/// Nearest-rank percentile (`q` in 0..=100) of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latencies (seconds) of the successful attempts, sorted.
pub fn sorted_latencies(r: &RunResult) -> Vec<f64> {
    let mut v: Vec<f64> = r.latencies.iter().flatten().copied().collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Groups digits by thousands: 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.1}%", a as f64 * 100.0 / b as f64)
    }
}

fn ms(s: Option<f64>) -> String {
    s.map_or("-".into(), |v| format!("{:.1}", v * 1000.0))
}

/// RSS at 0, 25, 50, 75 and 100 % of the flood (from the samples taken during the flood).
pub fn rss_profile(r: &RunResult) -> Vec<u64> {
    let flood_end = r.flood.elapsed.as_secs_f64();
    let during: Vec<_> = r
        .samples
        .iter()
        .filter(|s| s.t <= flood_end + 0.3)
        .collect();
    if during.is_empty() {
        return vec![r.rss_before_kb, r.rss_end_kb];
    }
    let mut v = vec![r.rss_before_kb];
    for q in [0.25, 0.5, 0.75, 1.0] {
        let t = flood_end * q;
        let s = during
            .iter()
            .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()));
        if let Some(s) = s {
            v.push(s.rss_kb);
        }
    }
    v
}

fn rss_profile_text(r: &RunResult) -> String {
    let v = rss_profile(r);
    let parts: Vec<String> = v
        .iter()
        .map(|k| format!("{:.1}", *k as f64 / 1024.0))
        .collect();
    format!("{} MB", parts.join(" → "))
}

fn ratio_lower(knockd: Option<f64>, ours: Option<f64>) -> String {
    match (knockd, ours) {
        (Some(k), Some(o)) if o > 0.0 && k > 0.0 => {
            let x = k / o;
            if x >= 10.0 {
                format!("{x:.0}x lower")
            } else if x >= 1.0 {
                format!("{x:.1}x lower")
            } else {
                format!("{:.1}x higher", 1.0 / x)
            }
        }
        _ => "-".into(),
    }
}

/// One table row: metric, then a cell per daemon, then the ratio.
struct Row {
    metric: String,
    cells: Vec<String>,
    ratio: String,
}

fn rows(results: &[&RunResult]) -> Vec<Row> {
    let get = |k: Kind| results.iter().find(|r| r.kind == k).copied();
    let knockd = get(Kind::Knockd);
    let ours = get(Kind::Ours);
    let mut rows = Vec::new();
    let mut add = |metric: &str, f: &dyn Fn(&RunResult) -> String, ratio: String| {
        rows.push(Row {
            metric: metric.to_string(),
            cells: results.iter().map(|r| f(r)).collect(),
            ratio,
        });
    };
    add(
        "flood packets offered (generator)",
        &|r| thousands(r.flood.sent),
        String::new(),
    );
    add(
        "achieved flood rate (pps)",
        &|r| thousands(r.flood.rate().round() as u64),
        String::new(),
    );
    add(
        "packets at the server interface",
        &|r| {
            let mut s = thousands(r.iface_rx);
            if r.iface_rx_dropped + r.softnet_dropped > 0 {
                s.push_str(&format!(
                    " ({} kernel drops)",
                    thousands(r.iface_rx_dropped + r.softnet_dropped)
                ));
            }
            s
        },
        String::new(),
    );
    add(
        "flood packets processed by the daemon",
        &|r| match r.processed {
            Some(p) => format!("{} ({})", thousands(p), pct(p, r.flood.sent)),
            None => "n/a".into(),
        },
        String::new(),
    );
    add(
        "packets lost by the daemon's capture",
        &|r| r.capture_dropped.map_or("n/a".into(), thousands),
        String::new(),
    );
    let ok_ratio = match (knockd, ours) {
        (Some(k), Some(o)) => format!(
            "{} vs {}",
            pct(o.legit_ok() as u64, o.attempts.len() as u64),
            pct(k.legit_ok() as u64, k.attempts.len() as u64)
        ),
        _ => String::new(),
    };
    add(
        "legitimate knocks succeeded / sent",
        &|r| {
            format!(
                "{}/{} ({})",
                r.legit_ok(),
                r.attempts.len(),
                pct(r.legit_ok() as u64, r.attempts.len() as u64)
            )
        },
        ok_ratio,
    );
    add(
        "daemon CPU, flood + drain (s)",
        &|r| format!("{:.2} in {:.1} s", r.cpu_s, r.cpu_window_s),
        ratio_lower(knockd.map(|r| r.cpu_s), ours.map(|r| r.cpu_s)),
    );
    add(
        "CPU per processed packet (µs)",
        &|r| {
            r.per_packet_us()
                .map_or("n/a".into(), |u| format!("{u:.2}"))
        },
        ratio_lower(
            knockd.and_then(RunResult::per_packet_us),
            ours.and_then(RunResult::per_packet_us),
        ),
    );
    add(
        "CPU per offered packet (µs)",
        &|r| {
            if r.flood.sent > 0 {
                format!("{:.2}", r.cpu_s * 1e6 / r.flood.sent as f64)
            } else {
                "-".into()
            }
        },
        String::new(),
    );
    add(
        "peak memory (VmHWM)",
        &|r| mb(r.hwm_kb),
        match (knockd, ours) {
            (Some(k), Some(o)) if o.hwm_kb > 0 => {
                format!("{:.2}x knockd's", o.hwm_kb as f64 / k.hwm_kb.max(1) as f64)
            }
            _ => String::new(),
        },
    );
    add(
        "RSS before → 25/50/75/100% of flood",
        &rss_profile_text,
        String::new(),
    );
    add(
        "RSS growth during the run",
        &|r| {
            let g = r.rss_end_kb as i64 - r.rss_before_kb as i64;
            let per = r.processed.filter(|&p| p > 0).map_or(String::new(), |p| {
                format!(", {:.0} B/processed pkt", g as f64 * 1024.0 / p as f64)
            });
            format!("{:+.1} MB{per}", g as f64 / 1024.0)
        },
        String::new(),
    );
    add(
        "attempts tracked mid-flood / end / capacity",
        &|r| match r.kind {
            Kind::Knockd => "n/a (unbounded list)".into(),
            Kind::Ours => format!(
                "{} / {} / {}",
                r.status_mid_tracked.map_or("-".into(), thousands),
                r.status_end("attempts_tracked")
                    .map_or("-".into(), thousands),
                r.status_end("attempts_capacity")
                    .map_or("-".into(), thousands)
            ),
        },
        String::new(),
    );
    add(
        "evictions",
        &|r| match r.kind {
            Kind::Knockd => "n/a".into(),
            Kind::Ours => r.status_delta("evictions").map_or("-".into(), thousands),
        },
        String::new(),
    );
    add(
        "knock-to-action latency without flood (ms)",
        &|r| ms(r.idle_latency),
        String::new(),
    );
    let lat = |r: &RunResult, q: f64| percentile(&sorted_latencies(r), q);
    add(
        "knock-to-action latency median (ms)",
        &|r| ms(lat(r, 50.0)),
        ratio_lower(
            knockd.and_then(|r| lat(r, 50.0)),
            ours.and_then(|r| lat(r, 50.0)),
        ),
    );
    add(
        "knock-to-action latency p99 (ms)",
        &|r| ms(lat(r, 99.0)),
        ratio_lower(
            knockd.and_then(|r| lat(r, 99.0)),
            ours.and_then(|r| lat(r, 99.0)),
        ),
    );
    rows
}

/// One Markdown table: a header row per scenario, then its rows; one column per daemon.
pub fn table(scenarios: &[(Scenario, Vec<RunResult>)], generator_alone: Option<f64>) -> String {
    let kinds: Vec<Kind> = {
        let mut k = Vec::new();
        for (_, rs) in scenarios {
            for r in rs {
                if !k.contains(&r.kind) {
                    k.push(r.kind);
                }
            }
        }
        k
    };
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut head = vec!["metric".to_string()];
    head.extend(kinds.iter().map(|k| k.label().to_string()));
    head.push("ours vs knockd".into());
    lines.push(head);
    if let Some(g) = generator_alone {
        let mut l = vec![format!(
            "generator alone, no daemon: {} pps",
            thousands(g.round() as u64)
        )];
        l.extend(std::iter::repeat_n(String::new(), kinds.len() + 1));
        lines.push(l);
    }
    for (sc, rs) in scenarios {
        let mut l = vec![format!("**{}**", sc.describe())];
        l.extend(std::iter::repeat_n(String::new(), kinds.len() + 1));
        lines.push(l);
        let ordered: Vec<&RunResult> = kinds
            .iter()
            .filter_map(|k| rs.iter().find(|r| r.kind == *k))
            .collect();
        for row in rows(&ordered) {
            let mut l = vec![row.metric];
            // Missing daemons get empty cells.
            let mut cells = row.cells.into_iter();
            for k in &kinds {
                if rs.iter().any(|r| r.kind == *k) {
                    l.push(cells.next().unwrap_or_default());
                } else {
                    l.push(String::new());
                }
            }
            l.push(row.ratio);
            lines.push(l);
        }
    }
    let ncol = lines[0].len();
    let width: Vec<usize> = (0..ncol)
        .map(|c| {
            lines
                .iter()
                .filter(|l| !l[0].starts_with("**") && !l[0].starts_with("generator alone"))
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push('|');
        for (c, cell) in l.iter().enumerate() {
            let pad = width[c].saturating_sub(cell.chars().count());
            out.push(' ');
            out.push_str(cell);
            out.push_str(&" ".repeat(pad));
            out.push_str(" |");
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for w in &width {
                out.push_str(&format!("{}|", "-".repeat(w + 2)));
            }
            out.push('\n');
        }
    }
    out
}

/// Whether RSS stayed flat from a quarter of the flood to its end: at most 1 MB or 5% growth.
pub fn rss_flat(r: &RunResult) -> bool {
    let p = rss_profile(r);
    match (p.get(1), p.last()) {
        (Some(&q1), Some(&end)) => end <= q1 + (q1 / 20).max(1024),
        _ => false,
    }
}

/// The project's goals, checked on the results (informational: never an error).
pub fn goals(scenarios: &[(Scenario, Vec<RunResult>)]) -> Vec<String> {
    let mark = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut out = Vec::new();
    for (sc, rs) in scenarios {
        let k = rs.iter().find(|r| r.kind == Kind::Knockd);
        let Some(o) = rs.iter().find(|r| r.kind == Kind::Ours) else {
            continue;
        };
        let rate = o.flood.rate();
        let all = !o.attempts.is_empty() && o.legit_ok() == o.attempts.len();
        let k_lost = k.map(|k| k.legit_ok() < k.attempts.len());
        out.push(format!(
            "{}: all legitimate knocks through at {} pps (>= 100,000): {}{}",
            sc.name,
            thousands(rate.round() as u64),
            mark(all && rate >= 100_000.0),
            match k_lost {
                Some(true) => " (knockd 0.8 lost some)",
                Some(false) => " (knockd 0.8 lost none)",
                None => "",
            }
        ));
        if sc.distinct == Distinct::Cycle(10_000)
            && let (Some(k), Some(ou)) = (k.and_then(RunResult::per_packet_us), o.per_packet_us())
        {
            let x = k / ou.max(1e-9);
            out.push(format!(
                "{}: CPU per packet at 10,000 tracked sources at least 50x lower: {} ({x:.0}x)",
                sc.name,
                mark(x >= 50.0)
            ));
        }
        out.push(format!(
            "{}: our memory flat during the flood: {} ({})",
            sc.name,
            mark(rss_flat(o)),
            rss_profile_text(o)
        ));
    }
    out
}

fn result_json(r: &RunResult) -> J {
    let lats = sorted_latencies(r);
    J::obj([
        ("daemon", J::Str(r.kind.label().into())),
        ("binary", J::Str(r.binary.clone())),
        ("packets_offered", J::Int(r.flood.sent as i64)),
        ("flood_seconds", J::Num(r.flood.elapsed.as_secs_f64())),
        ("achieved_pps", J::Num(r.flood.rate().round())),
        ("generator_stalls", J::Int(r.flood.stalls as i64)),
        ("packets_at_server_interface", J::Int(r.iface_rx as i64)),
        (
            "server_interface_rx_dropped",
            J::Int(r.iface_rx_dropped as i64),
        ),
        ("softnet_backlog_dropped", J::Int(r.softnet_dropped as i64)),
        ("packets_processed", J::opt_u64(r.processed)),
        ("packets_processed_how", J::Str(r.processed_how.clone())),
        ("capture_dropped", J::opt_u64(r.capture_dropped)),
        ("knockd_stage1_lines_from_flood", J::opt_u64(r.stage1_lines)),
        ("legit_sent", J::Int(r.attempts.len() as i64)),
        ("legit_succeeded", J::Int(r.legit_ok() as i64)),
        (
            "legit_all_succeeded",
            J::Bool(!r.attempts.is_empty() && r.legit_ok() == r.attempts.len()),
        ),
        ("cpu_seconds", J::Num(r.cpu_s)),
        ("cpu_window_seconds", J::Num(r.cpu_window_s)),
        ("drain_seconds", J::Num(r.drain_s)),
        ("cpu_us_per_processed_packet", J::opt_f64(r.per_packet_us())),
        (
            "cpu_us_per_offered_packet",
            J::opt_f64((r.flood.sent > 0).then(|| r.cpu_s * 1e6 / r.flood.sent as f64)),
        ),
        ("vm_hwm_kb", J::Int(r.hwm_kb as i64)),
        ("rss_before_kb", J::Int(r.rss_before_kb as i64)),
        ("rss_end_kb", J::Int(r.rss_end_kb as i64)),
        ("rss_flat_during_flood", J::Bool(rss_flat(r))),
        (
            "rss_profile_kb",
            J::Arr(
                rss_profile(r)
                    .into_iter()
                    .map(|k| J::Int(k as i64))
                    .collect(),
            ),
        ),
        (
            "samples",
            J::obj([
                ("t", J::Arr(r.samples.iter().map(|s| J::Num(s.t)).collect())),
                (
                    "rss_kb",
                    J::Arr(r.samples.iter().map(|s| J::Int(s.rss_kb as i64)).collect()),
                ),
                (
                    "cpu_s",
                    J::Arr(r.samples.iter().map(|s| J::Num(s.cpu_s)).collect()),
                ),
                (
                    "sent",
                    J::Arr(r.samples.iter().map(|s| J::Int(s.sent as i64)).collect()),
                ),
            ]),
        ),
        (
            "latency_ms_without_flood",
            J::opt_f64(r.idle_latency.map(|v| v * 1e3)),
        ),
        (
            "latency_ms_median",
            J::opt_f64(percentile(&lats, 50.0).map(|v| v * 1e3)),
        ),
        (
            "latency_ms_p99",
            J::opt_f64(percentile(&lats, 99.0).map(|v| v * 1e3)),
        ),
        ("latency_ms_max", J::opt_f64(lats.last().map(|v| v * 1e3))),
        (
            "latencies_ms",
            J::Arr(
                r.latencies
                    .iter()
                    .map(|l| J::opt_f64(l.map(|v| v * 1e3)))
                    .collect(),
            ),
        ),
        (
            "status_counters",
            if r.kind == Kind::Ours {
                J::Obj(
                    STATUS_KEYS
                        .iter()
                        .map(|k| {
                            let s = r.status.iter().find(|s| s.0 == *k);
                            (
                                (*k).to_string(),
                                J::obj([
                                    ("start", J::opt_u64(s.and_then(|s| s.1))),
                                    ("end", J::opt_u64(s.and_then(|s| s.2))),
                                ]),
                            )
                        })
                        .collect(),
                )
            } else {
                J::Null
            },
        ),
        (
            "attempts_tracked_mid_flood",
            J::opt_u64(r.status_mid_tracked),
        ),
        (
            "notes",
            J::Arr(r.notes.iter().map(|n| J::Str(n.clone())).collect()),
        ),
    ])
}

fn scenario_json(sc: &Scenario) -> J {
    J::obj([
        ("name", J::Str(sc.name.clone())),
        ("description", J::Str(sc.describe())),
        (
            "transport",
            J::Str(match sc.transport {
                Transport::TcpSyn => "tcp".into(),
                Transport::Udp => "udp".into(),
            }),
        ),
        (
            "rate_pps",
            sc.rate.map_or(J::Str("max".into()), |r| J::Int(r as i64)),
        ),
        ("duration_s", J::Num(sc.duration.as_secs_f64())),
        ("count", J::opt_u64(sc.count)),
        (
            "distinct_sources",
            match sc.distinct {
                Distinct::Cycle(n) => J::Int(n as i64),
                Distinct::Unique => J::Str("unique".into()),
            },
        ),
        ("v6_percent", J::Int(i64::from(sc.v6_percent))),
        (
            "legit_interval_ms",
            J::Int(sc.legit_interval.as_millis() as i64),
        ),
        ("legit_v6_percent", J::Int(i64::from(sc.legit_v6_percent))),
        ("seq_timeout_s", J::Int(i64::from(sc.seq_timeout))),
        (
            "sequence",
            J::Arr(sc.ports.iter().map(|p| J::Int(i64::from(*p))).collect()),
        ),
    ])
}

/// The whole report as JSON.
pub fn json(scenarios: &[(Scenario, Vec<RunResult>)], generator_alone: Option<f64>) -> J {
    J::obj([
        ("tool", J::Str("flood-bench".into())),
        (
            "cpus",
            J::Int(std::thread::available_parallelism().map_or(1, |n| n.get()) as i64),
        ),
        (
            "generator_alone_pps",
            J::opt_f64(generator_alone.map(f64::round)),
        ),
        (
            "goals",
            J::Arr(goals(scenarios).into_iter().map(J::Str).collect()),
        ),
        (
            "scenarios",
            J::Arr(
                scenarios
                    .iter()
                    .map(|(sc, rs)| {
                        J::obj([
                            ("scenario", scenario_json(sc)),
                            (
                                "results",
                                J::Obj(
                                    rs.iter()
                                        .map(|r| (r.kind.key().to_string(), result_json(r)))
                                        .collect(),
                                ),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bench::Sample;
    use crate::generator::FloodStats;
    use crate::legit::Attempt;
    use std::time::Duration;

    fn result(kind: Kind, processed: u64, cpu: f64, ok: usize, rss: &[u64]) -> RunResult {
        let attempts: Vec<Attempt> = (0..4)
            .map(|i| Attempt {
                src: crate::legit::pool_addr(i, false),
                sent_at: 1000.0 + i as f64,
            })
            .collect();
        RunResult {
            kind,
            binary: "/bin/x".into(),
            flood: FloodStats {
                sent: 1_000_000,
                stalls: 0,
                elapsed: Duration::from_secs(10),
            },
            iface_rx: 1_000_012,
            iface_rx_dropped: 0,
            softnet_dropped: 0,
            processed: Some(processed),
            processed_how: "test".into(),
            capture_dropped: Some(1_000_000 - processed),
            stage1_lines: None,
            latencies: (0..4)
                .map(|i| (i < ok).then_some(0.002 * (i + 1) as f64))
                .collect(),
            attempts,
            idle_latency: Some(0.001),
            cpu_s: cpu,
            cpu_window_s: 10.5,
            drain_s: 0.5,
            hwm_kb: *rss.iter().max().unwrap(),
            rss_before_kb: rss[0],
            rss_end_kb: *rss.last().unwrap(),
            samples: rss
                .iter()
                .enumerate()
                .map(|(i, &k)| Sample {
                    t: i as f64 * 10.0 / (rss.len() - 1) as f64,
                    rss_kb: k,
                    cpu_s: 0.0,
                    sent: 0,
                })
                .collect(),
            status: vec![("attempts_capacity".into(), Some(65536), Some(65536))],
            status_mid_tracked: Some(10_000),
            notes: vec![],
        }
    }

    fn scenario() -> Scenario {
        Scenario {
            name: "tracked-10k".into(),
            transport: Transport::TcpSyn,
            rate: Some(100_000),
            duration: Duration::from_secs(10),
            count: None,
            distinct: Distinct::Cycle(10_000),
            v6_percent: 0,
            legit_interval: Duration::from_millis(500),
            legit_v6_percent: 0,
            seq_timeout: 25,
            ports: vec![7000, 8000, 9000],
            batch: 64,
            seed: 1,
        }
    }

    #[test]
    fn table_json_and_goals() {
        let knockd = result(
            Kind::Knockd,
            100_000,
            6.0,
            1,
            &[5000, 9000, 14000, 19000, 24000],
        );
        let ours = result(
            Kind::Ours,
            1_000_000,
            0.5,
            4,
            &[9000, 9100, 9100, 9100, 9100],
        );
        let done = vec![(scenario(), vec![knockd, ours])];
        let t = table(&done, Some(400_000.0));
        assert!(t.contains("| knockd 0.8"), "{t}");
        assert!(t.contains("generator alone, no daemon: 400,000 pps"));
        // knockd: 60 µs per packet, ours 0.5 µs: 120x lower.
        assert!(t.contains("60.00"), "{t}");
        assert!(t.contains("120x lower"), "{t}");
        assert!(
            t.contains("1/4 (25.0%)") && t.contains("4/4 (100.0%)"),
            "{t}"
        );
        assert!(t.contains("10,000 / - / 65,536"), "{t}");
        let g = goals(&done);
        assert!(
            g[0].contains(": met") && g[0].contains("knockd 0.8 lost some"),
            "{g:?}"
        );
        assert!(g[1].contains("at least 50x lower: met (120x)"), "{g:?}");
        assert!(g[2].contains("flat during the flood: met"), "{g:?}");
        let j = json(&done, Some(400_000.0)).render();
        assert!(j.contains("\"cpu_us_per_processed_packet\": 60"), "{j}");
        assert!(j.contains("\"legit_succeeded\": 4"));

        // A growing daemon, lost knocks, low rate: goals not met.
        let mut bad = result(
            Kind::Ours,
            1_000,
            0.5,
            3,
            &[5000, 9000, 14000, 19000, 24000],
        );
        bad.flood.sent = 500_000;
        let done = vec![(scenario(), vec![bad])];
        let g = goals(&done);
        assert!(g.iter().all(|l| l.contains("NOT met")), "{g:?}");
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0, 2.0], 0.0), Some(1.0));
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(ratio_lower(Some(60.0), Some(1.0)), "60x lower");
        assert_eq!(ratio_lower(Some(3.0), Some(2.0)), "1.5x lower");
        assert_eq!(ratio_lower(Some(1.0), Some(2.0)), "2.0x higher");
        assert_eq!(ratio_lower(None, Some(2.0)), "-");
    }
}
