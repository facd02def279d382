//! Tests of the kit itself. They need root (see `require_root`).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use netns_testkit::{Lab, Ns, bin, bin_dir, require_root, wait_for_file_line, wait_until};

const T: Duration = Duration::from_secs(3);

fn netns_list() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pid_alive(pid: u32) -> bool {
    // A zombie is dead for our purpose.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z "),
        Err(_) => false,
    }
}

#[test]
fn lab_has_namespaces_links_and_addresses() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let list = netns_list();
    assert!(list.contains(lab.server().name()), "{list}");
    for c in lab.clients() {
        assert!(list.contains(c.name()), "{list}");
    }
    assert_eq!(lab.clients().len(), 2);
    assert!(lab.server().name().ends_with("-srv"));
    assert!(lab.client(2).name().ends_with("-c2"));

    // Server: lo + cli1 + cli2 and nothing from the host.
    let links = lab.server().run_stdout(&["ip", "-o", "link"]).unwrap();
    let names: Vec<&str> = links
        .lines()
        .map(|l| {
            l.split(':')
                .nth(1)
                .unwrap()
                .trim()
                .split('@')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["lo", "cli1", "cli2"], "{links}");
    assert!(links.contains("LOOPBACK,UP"), "{links}");
    let addrs = lab.server().run_stdout(&["ip", "-o", "addr"]).unwrap();
    for want in [
        "cli1    inet 198.18.1.1/24",
        "cli2    inet 198.18.2.1/24",
        "cli1    inet6 2001:2:0:1::1/64",
        "cli2    inet6 2001:2:0:2::1/64",
        "lo    inet 127.0.0.1/8",
    ] {
        assert!(addrs.contains(want), "missing {want:?} in\n{addrs}");
    }
    let caddr = lab.client(2).run_stdout(&["ip", "-o", "addr"]).unwrap();
    assert!(caddr.contains("eth0    inet 198.18.2.2/24"), "{caddr}");
    assert!(caddr.contains("eth0    inet6 2001:2:0:2::2/64"), "{caddr}");
    assert!(!caddr.contains("198.18.1."), "{caddr}");
    let routes = lab.client(1).run_stdout(&["ip", "route"]).unwrap();
    assert!(
        routes.contains("default via 198.18.1.1 dev eth0"),
        "{routes}"
    );

    assert_eq!(lab.server_v4(2).to_string(), "198.18.2.1");
    assert_eq!(lab.client_v4(2).to_string(), "198.18.2.2");
    assert_eq!(lab.server_v6(2).to_string(), "2001:2:0:2::1");
    assert_eq!(lab.client_v6(2).to_string(), "2001:2:0:2::2");
    assert_eq!(lab.server_if(2), "cli2");
    assert_eq!(lab.client_if(), "eth0");
    assert_eq!(netns_testkit::server_v6(10).to_string(), "2001:2:0:a::1");
}

#[test]
fn both_families_reachable_with_nc_and_in_process() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let svc = lab.server().tcp_service(2222).unwrap();
    for k in 1..=2 {
        for v6 in [false, true] {
            let dst = lab.server_ip(k, v6).to_string();
            // netcat-openbsd from the client namespace.
            lab.client(k)
                .run(&["nc", "-z", "-w", "2", &dst, "2222"])
                .unwrap();
            assert!(lab.client(k).tcp_connect_ok(lab.server_ip(k, v6), 2222, T));
        }
    }
    assert!(wait_until(T, || svc.accepted() == 8), "{}", svc.accepted());
    let peers: Vec<IpAddr> = svc.peers().iter().map(SocketAddr::ip).collect();
    for k in 1..=2 {
        for v6 in [false, true] {
            let c = lab.client_ip(k, v6);
            assert_eq!(peers.iter().filter(|p| **p == c).count(), 2, "{peers:?}");
        }
    }
    // Through its default route a client also reaches the server's address on another link.
    assert!(
        lab.client(1)
            .tcp_connect_ok(lab.server_v4(2).into(), 2222, T)
    );

    // The other direction, and a closed port fails fast.
    let csvc = lab.client(1).tcp_service(0).unwrap();
    assert!(
        lab.server()
            .tcp_connect_ok(lab.client_v6(1).into(), csvc.port(), T)
    );
    let t0 = Instant::now();
    assert!(
        !lab.client(1)
            .tcp_connect_ok(lab.server_v4(1).into(), 2223, T)
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    // The host namespace has no route into the lab's addresses via the lab.
    let host = std::process::Command::new("ip")
        .args(["-o", "addr"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&host.stdout).contains("198.18.1.1/24"));
}

#[test]
fn udp_send_reaches_server() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let sock = lab
        .server()
        .run_in(|| UdpSocket::bind("[::]:9999"))
        .unwrap()
        .unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    for v6 in [false, true] {
        lab.client(1)
            .udp_send(lab.server_ip(1, v6), 9999, b"x")
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"x");
        assert_eq!(from.ip().to_canonical(), lab.client_ip(1, v6));
    }
}

#[test]
fn drop_kills_processes_and_deletes_everything() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let names: Vec<String> = [lab.server(), lab.client(1)]
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    let dir = lab.dir().to_path_buf();
    assert!(dir.is_dir());
    // A detached process the test does not own, in each namespace.
    let mut pids = Vec::new();
    for ns in [lab.server(), lab.client(1)] {
        let out = ns
            .run_stdout(&[
                "sh",
                "-c",
                "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!",
            ])
            .unwrap();
        pids.push(out.trim().parse::<u32>().unwrap());
    }
    assert!(wait_until(T, || lab.server().pids().unwrap().len() == 1));
    assert!(pids.iter().all(|p| pid_alive(*p)));
    drop(lab);
    let list = netns_list();
    for n in &names {
        assert!(!list.contains(n.as_str()), "{n} still in\n{list}");
        assert!(!Path::new("/run/netns").join(n).exists());
    }
    assert!(
        wait_until(T, || pids.iter().all(|p| !pid_alive(*p))),
        "{pids:?}"
    );
    assert!(!dir.exists());
}

#[test]
fn failing_command_reports_everything() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(0).unwrap();
    let err = lab
        .server()
        .sh("echo to-stdout; echo to-stderr >&2; exit 3")
        .unwrap_err()
        .to_string();
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("to-stdout"), "{err}");
    assert!(err.contains("to-stderr"), "{err}");
    assert!(err.contains(lab.server().name()), "{err}");
    let err = lab
        .server()
        .run(&["ip", "link", "set", "nosuchif", "up"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nosuchif"), "{err}");
    // A namespace name that exists already: `ip` fails and says so.
    let dup = Ns::create(lab.server().name(), lab.dir());
    let msg = dup.as_ref().unwrap_err().to_string();
    assert!(msg.contains("netns add"), "{msg}");
}

#[test]
fn child_guard_log_signal_and_kill_on_drop() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(0).unwrap();
    let mut c = lab
        .server()
        .spawn(&[
            "sh",
            "-c",
            "trap 'echo got-hup' HUP; echo started; while :; do sleep 0.05; done",
        ])
        .unwrap();
    let line = c.wait_for_line("started", T).unwrap();
    assert_eq!(line, "started");
    c.signal(libc::SIGHUP).unwrap();
    c.wait_for_line("got-hup", T).unwrap();
    let log = c.log_path().unwrap().to_path_buf();
    assert!(wait_for_file_line(&log, "got-hup", T).is_ok());
    let err = c
        .wait_for_line("never", Duration::from_millis(100))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("still running") && err.contains("got-hup"),
        "{err}"
    );
    let pid = c.pid();
    assert!(lab.server().pids().unwrap().contains(&pid));
    drop(c);
    assert!(!pid_alive(pid));

    let mut c = lab.server().spawn(&["sleep", "1000"]).unwrap();
    let st = c.stop(T).unwrap();
    assert!(!st.success());
    let mut c = lab.server().spawn(&["sh", "-c", "exit 7"]).unwrap();
    assert_eq!(c.wait_timeout(T).unwrap().unwrap().code(), Some(7));
}

#[test]
fn labs_in_parallel_threads() {
    if !require_root() {
        return;
    }
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let lab = Lab::new(2).unwrap();
                let port = 3000 + i;
                let svc = lab.server().tcp_service(port).unwrap();
                for k in 1..=2 {
                    assert!(
                        lab.client(k)
                            .tcp_connect_ok(lab.server_v4(k).into(), port, T)
                    );
                    assert!(
                        lab.client(k)
                            .tcp_connect_ok(lab.server_v6(k).into(), port, T)
                    );
                }
                assert!(wait_until(T, || svc.accepted() == 4));
                lab.id().to_string()
            })
        })
        .collect();
    let mut ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let list = netns_list();
    for id in &ids {
        assert!(!list.contains(id.as_str()), "{id} left in\n{list}");
    }
}

#[test]
fn bin_finds_profile_dir_and_explains_missing() {
    let dir = bin_dir().unwrap();
    let profile = dir.file_name().unwrap().to_str().unwrap();
    assert!(
        ["debug", "release"].contains(&profile) || dir.join("deps").is_dir(),
        "{}",
        dir.display()
    );
    let err = bin("no-such-binary-xyz").unwrap_err().to_string();
    assert!(err.contains("cargo build --workspace"), "{err}");
    assert!(err.contains("no-such-binary-xyz"), "{err}");
}

#[test]
fn wait_until_times_out_and_succeeds() {
    let t0 = Instant::now();
    assert!(!wait_until(Duration::from_millis(50), || false));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    let mut n = 0;
    assert!(wait_until(T, || {
        n += 1;
        n == 3
    }));
    let p = std::env::temp_dir().join(format!("ntk-wait-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let err = wait_for_file_line(&p, "x", Duration::from_millis(30)).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    let p2 = p.clone();
    let w = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(&p2, "a\nb needle c\n").unwrap();
    });
    assert_eq!(wait_for_file_line(&p, "needle", T).unwrap(), "b needle c");
    w.join().unwrap();
    std::fs::remove_file(&p).unwrap();
}
