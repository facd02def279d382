//! End to end: nftables grants of the real daemon (issue "Native nftables grants").
//!
//! Each test builds its own lab (server + 2 clients), runs `knockd -i cli1,cli2 -c CONF` in the
//! server namespace, puts real TCP services behind the protected ports and knocks with real
//! clients from the client namespaces. Every `nft` runs inside the lab; the host's ruleset is
//! never touched. As root only (`KNOCK_SKIP_ROOT_TESTS=1` skips when not root).

mod common;
mod support_grants;

use std::time::{Duration, Instant};

use common::*;
use netns_testkit::{Lab, require_root, wait_until};
use support_grants::*;

/// The protected service.
const PORT: u16 = 2222;
/// The knock door's sequence (not monotone, so the daemon does not warn about it).
const SEQ: [&str; 3] = ["7003", "7001", "7002"];

fn knock_door(open_timeout: u64, extra: &str) -> String {
    format!(
        "[ssh]\n sequence = {}\n seq_timeout = 5\n tcpflags = syn\n open = tcp/{PORT}\n open_timeout = {open_timeout}\n{extra}\n",
        SEQ.join(",")
    )
}

/// Knocks the `[ssh]` door from client `k` with the Debian client.
fn knock(lab: &Lab, k: usize, v6: bool) {
    let server = lab.server_ip(k, v6).to_string();
    let mut args = vec![server.as_str()];
    args.extend(SEQ);
    common::knock(lab, k, &args);
}

fn granted_line(lab: &Lab, k: usize, v6: bool) -> String {
    format!("{}: ssh: granted tcp/{PORT} for", lab.client_ip(k, v6))
}

#[test]
fn knock_opens_for_the_knocker_only_and_expires_while_sessions_survive() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(4, ""));
    assert!(
        d.wait_log("nftables: created table inet knockd")
            .contains("created")
    );

    assert!(cannot(&lab, 1, false, PORT), "client 1 before any knock");
    assert!(cannot(&lab, 2, false, PORT), "client 2 before any knock");
    assert!(
        cannot(&lab, 1, true, PORT),
        "client 1 (IPv6) before any knock"
    );

    knock(&lab, 1, false);
    let line = d.wait_log(&granted_line(&lab, 1, false));
    let t0 = Instant::now();
    assert!(line.contains("for 4 s"), "{line}");
    assert_eq!(d.count("198.18.1.2: ssh: OPEN SESAME"), 1);

    // Open for the knocker only.
    let mut live = session(&lab, 1, false, PORT);
    roundtrip(&mut live, "during the grant").unwrap();
    assert!(cannot(&lab, 2, false, PORT), "client 2 stays locked out");
    assert!(
        cannot(&lab, 1, true, PORT),
        "the grant is for 198.18.1.2, not for client 1's IPv6 address"
    );

    // The kernel holds exactly this element; --status lists it with its time left.
    let elems = grants(&lab, false);
    assert_eq!(elems.len(), 1, "{elems:?}");
    assert_eq!(elems[0].key, format!("198.18.1.2 . tcp . {PORT}"));
    assert_eq!(elems[0].timeout, Some(4.0), "{elems:?}");
    let text = d.status_text(&lab);
    let row = text
        .lines()
        .find(|l| l.contains("198.18.1.2") && l.contains(&format!("tcp/{PORT}")))
        .unwrap_or_else(|| panic!("no grant row in --status:\n{text}"));
    let left: u64 = row
        .split_whitespace()
        .rev()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {row:?}"));
    assert!((1..=4).contains(&left), "{row}");
    assert!(row.ends_with("s left"), "{row}");

    // The grant ends by itself: new connections are refused again...
    let closed = time_until(Duration::from_secs(8), || grants(&lab, false).is_empty())
        .expect("the element expires");
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_millis(3000) && at <= Duration::from_millis(5500),
        "expired {at:?} after the grant (open_timeout 4 s; polled {closed:?})"
    );
    assert!(
        cannot(&lab, 1, false, PORT),
        "new connections after the grant"
    );
    assert!(d.status_grants().is_empty(), "--status after expiry");
    // ...while the session opened during the grant goes on.
    roundtrip(&mut live, "after the grant ended").unwrap();
    d.assert_running();
}

#[test]
fn a_second_knock_refreshes_the_grant_without_duplicates() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(5, ""));

    knock(&lab, 1, false);
    d.wait_log(&granted_line(&lab, 1, false));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let before = grants(&lab, false);
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].expires.unwrap() <= 3.0, "{before:?}");

    // Our client this time (the daemon does not care which client knocked).
    let server = lab.server_v4(1).to_string();
    let mut args = vec![server.as_str()];
    args.extend(SEQ);
    our_knock(&lab, 1, &args);
    let line = d.wait_log(&format!(
        "198.18.1.2: ssh: refreshed grant of tcp/{PORT} for 5 s"
    ));
    let t1 = Instant::now();
    assert_eq!(d.count("198.18.1.2: ssh: OPEN SESAME"), 2, "{line}");

    let after = grants(&lab, false);
    assert_eq!(after.len(), 1, "one element, not two: {after:?}");
    assert_eq!(after[0].key, format!("198.18.1.2 . tcp . {PORT}"));
    assert!(
        after[0].expires.unwrap() >= 3.0,
        "the timeout was restarted: {after:?} (before: {before:?})"
    );
    let st = d.status_grants();
    assert_eq!(st.len(), 1, "{st:?}");
    assert!(st[0].2 >= 3, "{st:?}");

    // Still open past the first grant's end (t0 + 5 s), closed after the refreshed one.
    let first_end = t0 + Duration::from_millis(5500);
    std::thread::sleep(first_end.saturating_duration_since(Instant::now()));
    assert!(
        can(&lab, 1, false, PORT),
        "open after the first grant's end"
    );
    assert!(
        time_until(Duration::from_secs(6), || grants(&lab, false).is_empty()).is_some(),
        "the refreshed grant expires"
    );
    let at = t1.elapsed();
    assert!(
        at >= Duration::from_millis(4000) && at <= Duration::from_millis(6500),
        "refreshed grant ended {at:?} after the refresh"
    );
    assert!(cannot(&lab, 1, false, PORT));
}

#[test]
fn kill_9_keeps_the_grant_in_the_kernel_and_a_restart_adopts_it() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(6, ""));
    knock(&lab, 1, false);
    d.wait_log(&granted_line(&lab, 1, false));
    let t0 = Instant::now();
    let mut live = session(&lab, 1, false, PORT);

    d.child.kill(); // SIGKILL, reaped
    // Dead daemon: the grant still works, protected ports stay closed to others.
    assert!(can(&lab, 1, false, PORT), "grant alive after kill -9");
    assert!(
        cannot(&lab, 2, false, PORT),
        "still protected with knockd dead"
    );
    roundtrip(&mut live, "daemon dead").unwrap();
    let elems = grants(&lab, false);
    assert_eq!(elems.len(), 1, "{elems:?}");

    // Restart: the table and its live grant are adopted, nothing is flushed.
    let conf = d.conf.clone();
    let mut d2 = Knockd::start_conf(&lab, IFACES, &conf, &[]);
    let line = d2.wait_log("nftables: adopted table inet knockd with 1 live grant(s)");
    assert!(line.contains("1 live grant"), "{line}");
    roundtrip(&mut live, "after the restart").unwrap();
    assert!(
        cannot(&lab, 2, false, PORT),
        "still protected after the restart"
    );
    let st = d2.status_grants();
    assert_eq!(
        st.len(),
        1,
        "the restarted daemon lists the adopted grant: {st:?}"
    );
    assert_eq!(st[0].0, "198.18.1.2");

    // Expires on the kernel's schedule, not reset by the restart.
    assert!(
        time_until(Duration::from_secs(8), || grants(&lab, false).is_empty()).is_some(),
        "the adopted grant expires"
    );
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_millis(5000) && at <= Duration::from_millis(7500),
        "adopted grant ended {at:?} after it was granted (open_timeout 6 s)"
    );
    assert!(cannot(&lab, 1, false, PORT), "closed once expired");
    roundtrip(&mut live, "after expiry").unwrap();
    d2.assert_running();
}

#[test]
fn an_ipv6_knock_opens_for_the_ipv6_address_only() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(30, ""));
    assert!(cannot(&lab, 1, true, PORT));

    let server = lab.server_v6(1).to_string();
    let mut args = vec!["-6", server.as_str()];
    args.extend(SEQ);
    our_knock(&lab, 1, &args);
    d.wait_log(&granted_line(&lab, 1, true));

    let v6 = grants(&lab, true);
    assert_eq!(v6.len(), 1, "{v6:?}");
    assert_eq!(v6[0].key, format!("2001:2:0:1::2 . tcp . {PORT}"));
    assert!(grants(&lab, false).is_empty(), "no IPv4 grant");
    let mut s = session(&lab, 1, true, PORT);
    roundtrip(&mut s, "over IPv6").unwrap();
    assert!(
        cannot(&lab, 1, false, PORT),
        "client 1's IPv4 address is not granted"
    );
    assert!(cannot(&lab, 2, true, PORT), "client 2 over IPv6");
    assert!(cannot(&lab, 2, false, PORT), "client 2 over IPv4");
    let st = d.status_grants();
    assert_eq!(
        st.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        ["2001:2:0:1::2"]
    );
}

/// `Day HH:MM-HH:MM` for a window from `now + from_min` to `now + to_min` minutes, local time
/// (the window may cross midnight: it then starts on the start's day).
fn window(from_min: i64, to_min: i64) -> String {
    let now = jiff::Zoned::now();
    let a = now
        .checked_add(jiff::SignedDuration::from_mins(from_min))
        .unwrap();
    let b = now
        .checked_add(jiff::SignedDuration::from_mins(to_min))
        .unwrap();
    format!(
        "{} {}-{}",
        a.strftime("%a"),
        a.strftime("%H:%M"),
        b.strftime("%H:%M")
    )
}

#[test]
fn a_scheduled_door_is_open_inside_its_window_for_its_sources_only() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let (now_port, later_port) = (2223, 2224);
    let _a = Echo::start(lab.server(), now_port);
    let _b = Echo::start(lab.server(), later_port);
    let doors = format!(
        "[office]\n schedule = {}\n from = 198.18.1.0/24, 2001:2:0:1::/64\n open = tcp/{now_port}\n\
         [later]\n schedule = {}\n from = 198.18.1.0/24\n open = tcp/{later_port}\n",
        window(-60, 60),
        window(180, 240)
    );
    let mut d = Knockd::start(&lab, IFACES, &doors);
    d.assert_running();

    assert!(can(&lab, 1, false, now_port), "inside the window, in from");
    assert!(
        can(&lab, 1, true, now_port),
        "inside the window, in from (IPv6)"
    );
    assert!(
        cannot(&lab, 2, false, now_port),
        "inside the window, not in from"
    );
    assert!(cannot(&lab, 2, true, now_port), "not in from (IPv6)");
    assert!(cannot(&lab, 1, false, later_port), "outside the window");
    assert!(cannot(&lab, 2, false, later_port), "outside the window");
    // No grant is involved: the kernel's time match does it.
    assert!(grants(&lab, false).is_empty());
    let chain = nft(&lab, &["list", "chain", "inet", "knockd", "input"]);
    assert!(chain.contains("knockd door [office]"), "{chain}");
}

#[test]
fn from_on_a_knock_door_ignores_other_sources() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(30, " from = 198.18.1.0/24\n"));
    knock(&lab, 2, false);
    d.sync(&lab, 2, false);
    assert_eq!(d.count("ssh: OPEN SESAME"), 0, "{}", d.log_text());
    assert!(grants(&lab, false).is_empty());
    assert!(cannot(&lab, 2, false, PORT));

    knock(&lab, 1, false);
    d.wait_log(&granted_line(&lab, 1, false));
    assert!(can(&lab, 1, false, PORT));
    assert!(cannot(&lab, 2, false, PORT));
    assert_eq!(d.count("198.18.2.2: ssh"), 0, "{}", d.log_text());
}

#[test]
fn sighup_keeps_grants_and_applies_the_new_ruleset() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let _other = Echo::start(lab.server(), 2225);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(30, ""));
    assert!(can(&lab, 2, false, 2225), "2225 is not protected yet");
    knock(&lab, 1, false);
    d.wait_log(&granted_line(&lab, 1, false));
    let mut live = session(&lab, 1, false, PORT);
    roundtrip(&mut live, "before the reload").unwrap();

    // New config: another protected port and another timeout.
    let new = config(
        &lab,
        "",
        &format!(
            "{}[web]\n sequence = 7103,7101,7102\n tcpflags = syn\n open = tcp/2225\n open_timeout = 10\n",
            knock_door(12, "")
        ),
    );
    lab.write_file("knockd.conf", &new).unwrap();
    d.child.signal(libc::SIGHUP).unwrap();
    d.wait_log("re-reading config file");
    // The new ruleset is in (2225 protected now), the grant is still there.
    assert!(
        wait_until(T, || nft(
            &lab,
            &["list", "set", "inet", "knockd", "protected"]
        )
        .contains("2225")),
        "{}",
        d.state()
    );
    assert!(
        cannot(&lab, 2, false, 2225),
        "2225 protected after the reload"
    );
    let st = d.status_grants();
    assert_eq!(st.len(), 1, "grant kept across SIGHUP: {st:?}");
    assert_eq!(st[0].0, "198.18.1.2");
    assert!(st[0].2 >= 20, "not shortened by the reload: {st:?}");
    roundtrip(&mut live, "after the reload").unwrap();
    assert!(can(&lab, 1, false, PORT), "new connections still granted");
    assert!(cannot(&lab, 2, false, PORT));
    // The new door works, with its own timeout.
    common::knock(&lab, 2, &["198.18.2.1", "7103", "7101", "7102"]);
    d.wait_log("198.18.2.2: web: granted tcp/2225 for 10 s");
    assert!(can(&lab, 2, false, 2225));
    d.assert_running();
}

#[test]
fn nft_cleanup_decides_whether_sigterm_removes_the_table() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    // Without Nft_Cleanup: the table stays, the port stays protected, the grant stays.
    let mut d = Knockd::start(&lab, IFACES, &knock_door(30, ""));
    knock(&lab, 1, false);
    d.wait_log(&granted_line(&lab, 1, false));
    let st = d.stop_with(libc::SIGTERM);
    assert!(st.success(), "{st}\n{}", d.state());
    assert_eq!(tables(&lab), ["inet knockd"]);
    assert_eq!(grants(&lab, false).len(), 1);
    assert!(can(&lab, 1, false, PORT), "grant kept after a clean stop");
    assert!(
        cannot(&lab, 2, false, PORT),
        "still protected after a clean stop"
    );

    // With Nft_Cleanup = yes: SIGTERM removes the table, grants and protection with it.
    let conf = lab
        .write_file(
            "knockd.conf",
            &config(&lab, " Nft_Cleanup = yes\n", &knock_door(30, "")),
        )
        .unwrap();
    let mut d = Knockd::start_conf(&lab, IFACES, &conf, &[]);
    d.wait_log("adopted table inet knockd with 1 live grant(s)");
    let st = d.stop_with(libc::SIGTERM);
    assert!(st.success(), "{st}\n{}", d.state());
    assert!(tables(&lab).is_empty(), "{:?}", tables(&lab));
    assert!(
        can(&lab, 2, false, PORT),
        "nothing protects the port any more"
    );
}

const USER_RULESET: &str = "\
add table inet filter
add chain inet filter input { type filter hook input priority filter; policy drop; }
add rule inet filter input ct state established,related accept
add rule inet filter input iif lo accept
add rule inet filter input meta l4proto { icmp, ipv6-icmp } accept
add rule inet filter input tcp dport 2226 accept
";

#[test]
fn nft_chain_mode_opens_through_the_users_policy_drop_chain() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let _web = Echo::start(lab.server(), 2226);
    nft_script(&lab, USER_RULESET);
    assert!(cannot(&lab, 1, false, PORT), "the user's policy drop");
    assert!(can(&lab, 1, false, 2226), "the user's own accept rule");

    let mut d = Knockd::start_text(
        &lab,
        IFACES,
        &config(
            &lab,
            " Nft_Chain = inet filter input\n Nft_Cleanup = yes\n",
            &knock_door(30, ""),
        ),
    );
    assert_eq!(tables(&lab), ["inet filter"], "no table of knockd's own");
    let chain = nft(&lab, &["list", "chain", "inet", "filter", "input"]);
    assert_eq!(chain.matches("jump knockd_input").count(), 1, "{chain}");
    assert!(cannot(&lab, 1, false, PORT));
    assert!(
        can(&lab, 1, false, 2226),
        "unrelated user rules still apply"
    );

    knock(&lab, 1, false);
    d.wait_log(&granted_line(&lab, 1, false));
    let mut s = session(&lab, 1, false, PORT);
    roundtrip(&mut s, "through the user's chain").unwrap();
    assert!(
        cannot(&lab, 2, false, PORT),
        "the user's policy still drops client 2"
    );
    let elems = set_elements(&lab, "inet", "filter", "knockd_grants4");
    assert_eq!(elems.len(), 1, "{elems:?}");
    let st = d.status_grants();
    assert_eq!(st.len(), 1, "{st:?}");

    // Nft_Cleanup in Nft_Chain mode: SIGTERM takes knockd's objects out of the user's table
    // and leaves the user's rules as they were.
    let st = d.stop_with(libc::SIGTERM);
    assert!(st.success(), "{st}\n{}", d.state());
    let table = nft(&lab, &["list", "table", "inet", "filter"]);
    assert!(!table.contains("knockd"), "{table}");
    assert!(table.contains("tcp dport 2226 accept"), "{table}");
    assert!(
        cannot(&lab, 1, false, PORT),
        "back to the user's policy drop"
    );
    assert!(can(&lab, 1, false, 2226));
    roundtrip(&mut s, "established still accepted by the user's chain").unwrap();
}

#[test]
fn without_nftables_open_doors_are_refused_and_command_doors_work() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let marker = lab.path("command-door-ran");
    let doors = format!(
        "{}[cmd]\n sequence = 7203,7201,7202\n tcpflags = syn\n command = touch {}\n",
        knock_door(30, ""),
        s(&marker)
    );
    let conf = lab
        .write_file("knockd.conf", &config(&lab, "", &doors))
        .unwrap();
    // root without CAP_NET_ADMIN (capture needs only CAP_NET_RAW).
    let mut d = Knockd::start_with(
        &lab,
        &[
            "setpriv",
            "--inh-caps=-net_admin",
            "--bounding-set=-net_admin",
        ],
        IFACES,
        &conf,
        &[],
    );
    let line = d.wait_log("door [ssh] is disabled");
    assert!(
        line.contains("open = needs nftables") && line.contains("CAP_NET_ADMIN"),
        "{line}"
    );
    assert!(
        d.child.log().contains("door [ssh] is disabled") && d.child.log().contains("CAP_NET_ADMIN"),
        "the refusal is on stderr too: {}",
        d.child.log()
    );
    assert!(tables(&lab).is_empty(), "nothing created");

    // The refused door does nothing.
    knock(&lab, 1, false);
    d.sync(&lab, 1, false);
    assert_eq!(d.count("ssh: OPEN SESAME"), 0, "{}", d.state());
    // The command-only door works.
    common::knock(&lab, 2, &["198.18.2.1", "7203", "7201", "7202"]);
    d.wait_log("198.18.2.2: cmd: OPEN SESAME");
    assert!(
        wait_until(T, || marker.exists()),
        "the command ran\n{}",
        d.state()
    );
    d.assert_running();
}

#[test]
fn a_reload_without_open_doors_stops_protecting_the_ports() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(30, ""));
    assert!(cannot(&lab, 2, false, PORT));
    // The admin turns the door into a command-only door (no open =) and reloads.
    let doors = format!(
        "[ssh]\n sequence = {}\n tcpflags = syn\n command = true\n",
        SEQ.join(",")
    );
    lab.write_file("knockd.conf", &config(&lab, "", &doors))
        .unwrap();
    let n = d.count("re-reading config file");
    d.child.signal(libc::SIGHUP).unwrap();
    d.wait_count("re-reading config file", n + 1);
    d.sync(&lab, 2, false);
    // No door protects tcp/2222 any more: it must not stay closed with no way to open it.
    assert!(
        wait_until(T, || !nft(&lab, &["list", "ruleset"])
            .contains(&format!("tcp . {PORT}"))),
        "tcp/{PORT} still in knockd's protected set after a reload without open doors:\n{}",
        nft(&lab, &["list", "ruleset"])
    );
    assert!(can(&lab, 2, false, PORT), "the port is reachable again");
    d.assert_running();
}

#[test]
fn a_restart_without_open_doors_warns_about_the_leftover_table() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(30, ""));
    knock(&lab, 1, false);
    d.wait_log(&granted_line(&lab, 1, false));
    let st = d.stop_with(libc::SIGTERM);
    assert!(st.success(), "{st}\n{}", d.state());
    assert!(
        cannot(&lab, 2, false, PORT),
        "protected while knockd is stopped"
    );

    // The admin removes the door's open = and starts knockd again: the previous run's table
    // still drops tcp/PORT and no door can open it. knockd leaves it alone (another knockd
    // may use it) but says so, with the way out.
    let doors = format!(
        "[ssh]\n sequence = {}\n tcpflags = syn\n command = true\n",
        SEQ.join(",")
    );
    let conf = lab
        .write_file("knockd.conf", &config(&lab, "", &doors))
        .unwrap();
    let mut d = Knockd::start_conf(&lab, IFACES, &conf, &[]);
    let line = d.wait_log("still holds knockd's ruleset of a previous run");
    assert!(
        line.contains("table inet knockd")
            && line.contains("1 live grant(s)")
            && line.contains("nft delete table inet knockd"),
        "{line}"
    );
    assert!(
        d.child.log().contains("still holds knockd's ruleset"),
        "on stderr too"
    );
    // Nothing was changed.
    assert!(cannot(&lab, 2, false, PORT));
    assert_eq!(grants(&lab, false).len(), 1);

    // A plain start in a clean namespace says nothing about nftables.
    let lab2 = Lab::new(2).unwrap();
    let conf2 = lab2
        .write_file("knockd.conf", &config(&lab2, "", &doors))
        .unwrap();
    let mut d2 = Knockd::start_conf(&lab2, IFACES, &conf2, &[]);
    d2.sync(&lab2, 1, false);
    assert_eq!(d2.count("nftables"), 0, "{}", d2.log_text());
    assert!(tables(&lab2).is_empty());
}

#[test]
fn grant_durations_nftables_cannot_hold_are_refused_at_startup() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    for (door, what) in [
        (knock_door(0, ""), "open_timeout = 0"),
        (knock_door(31 * 86_400, ""), "open_timeout = 2678400"),
        (
            format!(
                "[spa]\n spa_key_base64 = {}\n spa_hmac_key_base64 = {}\n open = tcp/{PORT}\n max_open_timeout = 0\n",
                random_key_b64(32),
                random_key_b64(64)
            ),
            "max_open_timeout = 0",
        ),
    ] {
        let conf = lab
            .write_file("knockd.conf", &config(&lab, "", &door))
            .unwrap();
        let mut d = Knockd::spawn(&lab, &[], IFACES, &conf, &[]);
        let st = d.child.wait_timeout(T).unwrap();
        let out = d.child.log();
        assert!(
            st.is_some_and(|s| !s.success()),
            "knockd must refuse {what:?} (every grant would fail at run time): {st:?}\n{}",
            d.state()
        );
        assert!(out.contains(what), "the message names {what:?}: {out}");
    }
}

#[test]
fn a_knock_after_a_flushed_ruleset_restores_it() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let mut d = Knockd::start(&lab, IFACES, &knock_door(30, ""));
    assert!(cannot(&lab, 2, false, PORT));
    // A firewall reload that flushes everything (the admin's mistake).
    nft(&lab, &["flush", "ruleset"]);
    assert!(tables(&lab).is_empty());
    assert!(can(&lab, 2, false, PORT), "exposed until knockd notices");
    // The next grant finds its set gone, re-applies the ruleset and grants.
    knock(&lab, 1, false);
    d.wait_log(&granted_line(&lab, 1, false));
    assert_eq!(tables(&lab), ["inet knockd"]);
    assert!(can(&lab, 1, false, PORT));
    assert!(cannot(&lab, 2, false, PORT), "protected again");
    d.assert_running();
}
