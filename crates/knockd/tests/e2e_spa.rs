//! End to end: fwknop-compatible SPA doors of the real daemon (issue "fwknop-compatible SPA").
//!
//! Each test builds its own lab (server + 2 clients) and runs `knockd -i cli1,cli2 -c CONF` in
//! the server namespace with an SPA door whose `open =` port hides a real TCP service. Packets
//! come from the real Debian `fwknop` client (2.6.10) or our `knock` run in the client
//! namespaces, or are built with `knock_core::spa::encode` (kernel randomness) and sent from a
//! UDP socket inside a client namespace. Every `nft` runs inside the lab. As root only (`KNOCK_SKIP_ROOT_TESTS=1` skips
//! when not root).

mod common;
mod support_grants;

use std::net::IpAddr;
use std::process::Output;

use base64::Engine as _;
use common::*;
use knock_core::proto::parse_proto_port;
use knock_core::spa::{HmacDigest, SpaKeys, SpaMessage, encode, rand16_from_entropy};
use netns_testkit::{Lab, require_root, wait_until};
use support_grants::*;

/// The protected service.
const PORT: u16 = 2222;
/// fwknop's default SPA port.
const SPA_PORT: u16 = 62201;

/// A door's keys, base64 (as in the config and on fwknop's command line).
#[derive(Clone)]
struct Keys {
    enc: String,
    hmac: String,
}

impl Keys {
    fn random() -> Keys {
        Keys {
            enc: random_key_b64(32),
            hmac: random_key_b64(64),
        }
    }

    fn spa_keys(&self, digest: HmacDigest) -> SpaKeys {
        let d = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        SpaKeys::new(d(&self.enc), Some(d(&self.hmac)))
            .unwrap()
            .with_hmac_digest(digest)
    }
}

/// An SPA door `[spa]` with `keys` opening tcp/PORT (30 s by default, client timeouts capped
/// at 45 s), then `extra` lines.
fn spa_door(keys: &Keys, extra: &str) -> String {
    format!(
        "[spa]\n spa_key_base64 = {}\n spa_hmac_key_base64 = {}\n open = tcp/{PORT}\n open_timeout = 30\n max_open_timeout = 45\n{extra}\n",
        keys.enc, keys.hmac
    )
}

/// Runs the real `fwknop` in client `k` against the server's address on link `k`, with `keys`
/// and HMAC; `args` add the request. Fails the test if fwknop fails.
fn fwknop(lab: &Lab, k: usize, keys: &Keys, args: &[&str]) -> Output {
    let server = lab.server_v4(k).to_string();
    let mut v = vec![
        FWKNOP,
        "-D",
        &server,
        "--key-base64-rijndael",
        &keys.enc,
        "--key-base64-hmac",
        &keys.hmac,
        "--use-hmac",
        "--no-save-args",
        "--no-rc-file",
    ];
    v.extend_from_slice(args);
    let out = lab.client(k).output(&v).unwrap();
    assert!(out.status.success(), "fwknop {args:?} failed: {out:?}");
    out
}

/// An access request built with our encoder (fresh random salt and nonce).
fn our_packet(
    keys: &Keys,
    digest: HmacDigest,
    user: &str,
    timestamp: u64,
    ip: IpAddr,
    port: &str,
    timeout: Option<u32>,
) -> String {
    let msg = SpaMessage::access(
        rand16_from_entropy(random_bytes::<16>()),
        user,
        timestamp,
        ip,
        vec![parse_proto_port(port).unwrap()],
        timeout,
    );
    encode(&keys.spa_keys(digest), &msg, random_bytes::<8>()).unwrap()
}

/// Sends `payload` in one UDP datagram from client `k` to the server's SPA port.
fn send(lab: &Lab, k: usize, v6: bool, port: u16, payload: &[u8]) {
    lab.client(k)
        .udp_send(lab.server_ip(k, v6), port, payload)
        .unwrap();
}

fn assert_nothing_listens_on_udp(lab: &Lab, port: u16) {
    let ss = udp_listeners(lab.server());
    assert!(
        !ss.contains(&format!(":{port} ")),
        "something listens on udp/{port} in the server namespace:\n{ss}"
    );
}

#[test]
fn fwknop_sha256_opens_for_the_requested_ip_with_its_timeout_capped() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let keys = Keys::random();
    let mut d = Knockd::start(&lab, IFACES, &spa_door(&keys, ""));
    assert!(cannot(&lab, 1, false, PORT));
    assert!(cannot(&lab, 2, false, PORT));
    assert_nothing_listens_on_udp(&lab, SPA_PORT);

    // -a with a client timeout of 20 s.
    fwknop(
        &lab,
        1,
        &keys,
        &["-A", "tcp/2222", "-a", "198.18.1.2", "-f", "20"],
    );
    let line = d.wait_log("198.18.1.2: spa: SPA request from user root: OPEN SESAME");
    assert!(line.ends_with("for 198.18.1.2 tcp/2222 (20 s)"), "{line}");
    d.wait_log("198.18.1.2: spa: granted tcp/2222 for 20 s");
    let st = d.status_grants();
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(
        (st[0].0.as_str(), st[0].1.as_str()),
        ("198.18.1.2", "tcp/2222")
    );
    assert!(
        (17..=20).contains(&st[0].2),
        "client timeout honoured: {st:?}"
    );
    assert_eq!(grants(&lab, false)[0].timeout, Some(20.0));
    let mut s = session(&lab, 1, false, PORT);
    roundtrip(&mut s, "opened by fwknop").unwrap();
    assert!(
        cannot(&lab, 2, false, PORT),
        "for the requested address only"
    );

    // A client timeout above max_open_timeout (45) is capped.
    fwknop(
        &lab,
        1,
        &keys,
        &["-A", "tcp/2222", "-a", "198.18.1.2", "-f", "600"],
    );
    let line = d.wait_log("198.18.1.2: spa: refreshed grant of tcp/2222");
    assert!(line.ends_with("for 45 s"), "{line}");
    assert!(d.log_text().contains("for 198.18.1.2 tcp/2222 (45 s)"));
    let st = d.status_grants();
    assert_eq!(st.len(), 1, "refreshed, not duplicated: {st:?}");
    assert!((42..=45).contains(&st[0].2), "capped at 45 s: {st:?}");

    // -s (0.0.0.0): the packet's source address, with the door's open_timeout.
    fwknop(&lab, 2, &keys, &["-A", "tcp/2222", "-s"]);
    let line = d.wait_log("198.18.2.2: spa: SPA request from user root: OPEN SESAME");
    assert!(line.ends_with("for 198.18.2.2 tcp/2222 (30 s)"), "{line}");
    d.wait_log("198.18.2.2: spa: granted tcp/2222 for 30 s");
    assert!(can(&lab, 2, false, PORT));

    let v = d.status_json();
    assert_eq!(v["spa_accepted"], 3, "{v}");
    assert_eq!(v["spa_rejected"], 0, "{v}");
    // Received passively: still no socket on the SPA port.
    assert_nothing_listens_on_udp(&lab, SPA_PORT);
}

#[test]
fn fwknop_hmac_sha512_door() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let keys = Keys::random();
    let mut d = Knockd::start(
        &lab,
        IFACES,
        &spa_door(&keys, " spa_hmac_digest = sha512\n"),
    );
    // A SHA-256 tag does not authenticate at a SHA-512 door.
    fwknop(&lab, 2, &keys, &["-A", "tcp/2222", "-a", "198.18.2.2"]);
    let line = d.wait_log("198.18.2.2: SPA packet rejected:");
    assert!(line.contains("hmac:"), "{line}");
    assert!(cannot(&lab, 2, false, PORT));

    fwknop(
        &lab,
        1,
        &keys,
        &[
            "-A",
            "tcp/2222",
            "-a",
            "198.18.1.2",
            "--hmac-digest-type",
            "sha512",
            "-f",
            "25",
        ],
    );
    d.wait_log("198.18.1.2: spa: granted tcp/2222 for 25 s");
    assert!(can(&lab, 1, false, PORT));
    assert!(cannot(&lab, 2, false, PORT));
}

/// Our `knock` in SPA mode in client `k`, with `keys`, to the server's address on link `k`.
fn knock_spa(lab: &Lab, k: usize, v6: bool, keys: &Keys, args: &[&str]) {
    let server = lab.server_ip(k, v6).to_string();
    let mut v = vec![
        "--key-base64",
        keys.enc.as_str(),
        "--hmac-key-base64",
        keys.hmac.as_str(),
    ];
    v.extend_from_slice(args);
    v.push(&server);
    our_knock(lab, k, &v);
}

#[test]
fn our_client_over_ipv6_opens_for_the_ipv6_address_only() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let keys = Keys::random();
    let mut d = Knockd::start(&lab, IFACES, &spa_door(&keys, ""));

    knock_spa(
        &lab,
        1,
        true,
        &keys,
        &[
            "-A",
            "tcp/2222",
            "-a",
            "2001:2:0:1::2",
            "-f",
            "20",
            "-U",
            "alice",
        ],
    );
    let line = d.wait_log("2001:2:0:1::2: spa: SPA request from user alice: OPEN SESAME");
    assert!(
        line.ends_with("for 2001:2:0:1::2 tcp/2222 (20 s)"),
        "{line}"
    );
    d.wait_log("2001:2:0:1::2: spa: granted tcp/2222 for 20 s");
    let v6 = grants(&lab, true);
    assert_eq!(v6.len(), 1, "{v6:?}");
    assert_eq!(v6[0].key, "2001:2:0:1::2 . tcp . 2222");
    assert!(grants(&lab, false).is_empty(), "no IPv4 grant");
    let mut s = session(&lab, 1, true, PORT);
    roundtrip(&mut s, "over IPv6").unwrap();
    assert!(
        cannot(&lab, 1, false, PORT),
        "client 1's IPv4 address is not granted"
    );
    assert!(cannot(&lab, 2, true, PORT), "client 2");

    // -s (0.0.0.0) from an IPv6 source: the packet's IPv6 source is granted.
    knock_spa(&lab, 2, true, &keys, &["-A", "tcp/2222", "-s", "-U", "bob"]);
    d.wait_log("2001:2:0:2::2: spa: granted tcp/2222 for 30 s");
    assert!(can(&lab, 2, true, PORT));
    assert!(cannot(&lab, 2, false, PORT));

    // A packet built with the codec directly (independent of the client): same result.
    let p = our_packet(
        &keys,
        HmacDigest::Sha256,
        "carol",
        unix_now().as_secs(),
        lab.client_v6(2).into(),
        "tcp/2222",
        Some(40),
    );
    send(&lab, 2, true, SPA_PORT, p.as_bytes());
    d.wait_log("2001:2:0:2::2: spa: refreshed grant of tcp/2222 for 40 s");
    assert_eq!(d.status_json()["spa_accepted"], 3);
}

#[test]
fn refused_requests_open_nothing_and_say_why() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let keys = Keys::random();
    let allowed = lab.path("allowed-command-ran");
    let other = lab.path("other-command-ran");
    let allowed_cmd = format!("touch {}", s(&allowed));
    let other_cmd = format!("touch {}", s(&other));
    let mut d = Knockd::start(
        &lab,
        IFACES,
        &spa_door(
            &keys,
            &format!(
                " require_user = alice\n require_source_address = yes\n spa_allow_command = {allowed_cmd}\n"
            ),
        ),
    );
    let mut rejected = 0;
    // Sends with `send`, waits for one more log line containing `needle`, returns it.
    let mut refused = |d: &mut Knockd, needle: &str, send: &dyn Fn()| -> String {
        rejected += 1;
        let n = d.count(needle);
        send();
        d.wait_count(needle, n + 1)
    };
    let access = ["-A", "tcp/2222", "-a", "198.18.1.2", "-U", "alice"];

    // Wrong encryption key, right HMAC key: authenticated, then fails to decrypt.
    let wrong_enc = Keys {
        enc: random_key_b64(32),
        ..keys.clone()
    };
    let line = refused(&mut d, "198.18.1.2: SPA packet rejected:", &|| {
        fwknop(&lab, 1, &wrong_enc, &access);
    });
    assert!(
        ["decrypt:", "plaintext:", "digest:"]
            .iter()
            .any(|s| line.contains(s)),
        "{line}"
    );
    // Wrong HMAC key.
    let wrong_hmac = Keys {
        hmac: random_key_b64(64),
        ..keys.clone()
    };
    let line = refused(&mut d, "198.18.1.2: SPA packet rejected: hmac:", &|| {
        fwknop(&lab, 1, &wrong_hmac, &access);
    });
    assert!(line.contains("does not match"), "{line}");
    // Ten minutes old: built with our encoder, and with fwknop's own offset option.
    let old = our_packet(
        &keys,
        HmacDigest::Sha256,
        "alice",
        unix_now().as_secs() - 600,
        "198.18.1.2".parse().unwrap(),
        "tcp/2222",
        None,
    );
    let line = refused(&mut d, "198.18.1.2: SPA packet rejected: age:", &|| {
        send(&lab, 1, false, SPA_PORT, old.as_bytes())
    });
    assert!(line.contains("older than now"), "{line}");
    let mut old_args = access.to_vec();
    old_args.extend(["--time-offset-minus", "10min"]);
    refused(&mut d, "198.18.1.2: SPA packet rejected: age:", &|| {
        fwknop(&lab, 1, &keys, &old_args);
    });
    // A port the door does not open.
    refused(
        &mut d,
        "198.18.1.2: spa: SPA request from user alice refused: port tcp/9999 is not open at this door",
        &|| {
            fwknop(
                &lab,
                1,
                &keys,
                &["-A", "tcp/9999", "-a", "198.18.1.2", "-U", "alice"],
            );
        },
    );
    // Not the required user.
    refused(
        &mut d,
        "spa: SPA request from user bob refused: user \"bob\" is not the required user \"alice\"",
        &|| {
            fwknop(
                &lab,
                1,
                &keys,
                &["-A", "tcp/2222", "-a", "198.18.1.2", "-U", "bob"],
            );
        },
    );
    // 0.0.0.0 with require_source_address.
    refused(
        &mut d,
        "spa: SPA request from user alice refused: the request asks for the packet's source address (0.0.0.0)",
        &|| {
            fwknop(&lab, 1, &keys, &["-A", "tcp/2222", "-s", "-U", "alice"]);
        },
    );
    // NAT access.
    refused(
        &mut d,
        "spa: SPA request from user alice refused: NAT access requests are not supported",
        &|| {
            fwknop(
                &lab,
                1,
                &keys,
                &[
                    "-A",
                    "tcp/2222",
                    "-a",
                    "198.18.1.2",
                    "-U",
                    "alice",
                    "-N",
                    "198.18.1.1:22",
                ],
            );
        },
    );
    // A command that is not listed.
    let line = refused(
        &mut d,
        "spa: SPA request from user alice refused: command",
        &|| {
            fwknop(
                &lab,
                1,
                &keys,
                &["-C", &other_cmd, "-a", "198.18.1.2", "-U", "alice"],
            );
        },
    );
    assert!(line.contains("is not allowed at this door"), "{line}");
    // The allowed command with another one chained: not an exact match.
    let chained = format!("{allowed_cmd}; {other_cmd}");
    let line = refused(
        &mut d,
        "spa: SPA request from user alice refused: command",
        &|| {
            fwknop(
                &lab,
                1,
                &keys,
                &["-C", &chained, "-a", "198.18.1.2", "-U", "alice"],
            );
        },
    );
    assert!(line.contains(&chained), "{line}");

    // Nothing was opened, nothing ran.
    assert!(grants(&lab, false).is_empty(), "{:?}", grants(&lab, false));
    assert!(cannot(&lab, 1, false, PORT));
    assert!(!other.exists() && !allowed.exists());
    let v = d.status_json();
    assert_eq!(v["spa_rejected"], rejected, "{v}");
    assert_eq!(v["spa_accepted"], 0, "{v}");
    assert_eq!(d.count("OPEN SESAME for"), 0, "{}", d.log_text());

    // The listed command runs; a valid access request opens: the door itself works.
    fwknop(
        &lab,
        1,
        &keys,
        &["-C", &allowed_cmd, "-a", "198.18.1.2", "-U", "alice"],
    );
    d.wait_log(
        "198.18.1.2: spa: SPA request from user alice: running the allowed command for 198.18.1.2",
    );
    assert!(wait_until(T, || allowed.exists()), "{}", d.state());
    fwknop(&lab, 1, &keys, &access);
    d.wait_log("198.18.1.2: spa: granted tcp/2222 for 30 s");
    assert!(can(&lab, 1, false, PORT));
    assert!(!other.exists());
}

#[test]
fn replayed_packets_are_refused_also_after_a_restart() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let _echo = Echo::start(lab.server(), PORT);
    let keys = Keys::random();
    // A second door without HMAC (fwknop's replay cache can be fooled there).
    let doors = format!(
        "{}[nohmac]\n spa_key_base64 = {}\n spa_require_hmac = no\n spa_port = 62202\n open = tcp/{PORT}\n",
        spa_door(&keys, ""),
        keys.enc
    );
    let mut d = Knockd::start(&lab, IFACES, &doors);

    let saved = lab.path("spa-packet.txt");
    fwknop(
        &lab,
        1,
        &keys,
        &["-A", "tcp/2222", "-a", "198.18.1.2", "-B", s(&saved)],
    );
    d.wait_log("198.18.1.2: spa: granted tcp/2222 for 30 s");
    let packet = std::fs::read_to_string(&saved).unwrap().trim().to_string();
    assert!(packet.len() > 140, "{packet:?}");

    // Replayed from the same client and from another one.
    send(&lab, 1, false, SPA_PORT, packet.as_bytes());
    d.wait_log("198.18.1.2: spa: SPA packet replayed, refused");
    send(&lab, 2, false, SPA_PORT, packet.as_bytes());
    d.wait_log("198.18.2.2: spa: SPA packet replayed, refused");
    // The "append =" variant.
    let rej = "198.18.2.2: SPA packet rejected:";
    let n = d.count(rej);
    send(&lab, 2, false, SPA_PORT, format!("{packet}=").as_bytes());
    let line = d.wait_count(rej, n + 1);
    assert!(line.contains("base64"), "{line}");
    assert_eq!(d.count("OPEN SESAME"), 1, "{}", d.log_text());
    let v = d.status_json();
    assert_eq!(
        (v["spa_accepted"].clone(), v["spa_rejected"].clone()),
        (1.into(), 3.into())
    );

    // Without HMAC: the same tricks.
    let plain = lab.path("spa-nohmac.txt");
    let server = lab.server_v4(1).to_string();
    let out = lab
        .client(1)
        .output(&[
            FWKNOP,
            "-D",
            &server,
            "-p",
            "62202",
            "--key-base64-rijndael",
            &keys.enc,
            "--no-save-args",
            "--no-rc-file",
            "-A",
            "tcp/2222",
            "-a",
            "198.18.1.2",
            "-B",
            s(&plain),
        ])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    d.wait_log("198.18.1.2: nohmac: SPA request from user root: OPEN SESAME");
    let plain_packet = std::fs::read_to_string(&plain).unwrap().trim().to_string();
    let n = d.count(rej);
    send(&lab, 2, false, 62202, format!("{plain_packet}=").as_bytes());
    let line = d.wait_count(rej, n + 1);
    assert!(line.contains("base64"), "{line}");
    send(&lab, 2, false, 62202, plain_packet.as_bytes());
    d.wait_log("198.18.2.2: nohmac: SPA packet replayed, refused");
    assert_eq!(d.count("OPEN SESAME"), 2, "{}", d.log_text());

    // SIGHUP keeps the replay memory.
    let n = d.count("re-reading config file");
    d.child.signal(libc::SIGHUP).unwrap();
    d.wait_count("re-reading config file", n + 1);
    let n = d.count("198.18.1.2: spa: SPA packet replayed, refused");
    send(&lab, 1, false, SPA_PORT, packet.as_bytes());
    d.wait_count("198.18.1.2: spa: SPA packet replayed, refused", n + 1);

    // kill -9 and restart: the cache was persisted when the packets were accepted.
    d.child.kill();
    let cache = std::fs::read_to_string(lab.path("spa-replay.cache")).unwrap();
    assert!(
        cache.lines().filter(|l| !l.starts_with('#')).count() >= 2,
        "{cache}"
    );
    let conf = d.conf.clone();
    let mut d = Knockd::start_conf(&lab, IFACES, &conf, &[]);
    let n = d.count("SPA packet replayed, refused");
    send(&lab, 2, false, SPA_PORT, packet.as_bytes());
    send(&lab, 1, false, 62202, plain_packet.as_bytes());
    d.wait_count("SPA packet replayed, refused", n + 2);
    assert_eq!(d.count("OPEN SESAME"), 2, "{}", d.log_text());
    let v = d.status_json();
    assert_eq!(v["spa_accepted"], 0, "{v}");
}
