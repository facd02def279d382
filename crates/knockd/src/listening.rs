//! Which (protocol, port)s have a listening socket on this host, from /proc/net: used to warn
//! about knock ports where a real service answers.

use std::collections::HashSet;

use knock_core::proto::{Knock, Protocol};

/// Listening TCP sockets and bound, unconnected UDP sockets of this network namespace.
pub fn listening() -> HashSet<Knock> {
    let mut out = HashSet::new();
    for (file, proto, state) in [
        ("/proc/net/tcp", Protocol::Tcp, "0A"),
        ("/proc/net/tcp6", Protocol::Tcp, "0A"),
        ("/proc/net/udp", Protocol::Udp, "07"),
        ("/proc/net/udp6", Protocol::Udp, "07"),
    ] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(parse(&text, proto, state));
        }
    }
    out
}

/// The host's ephemeral port range (`net.ipv4.ip_local_port_range`, also used for IPv6).
pub fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// Parses one /proc/net table: local ports of sockets in `state`.
fn parse(text: &str, proto: Protocol, state: &str) -> Vec<Knock> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let st = fields.nth(1)?;
            if st != state {
                return None;
            }
            let port = local.rsplit_once(':')?.1;
            u16::from_str_radix(port, 16)
                .ok()
                .map(|p| Knock::new(p, proto))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:D3A2 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        assert_eq!(
            parse(text, Protocol::Tcp, "0A"),
            vec![Knock::new(22, Protocol::Tcp)]
        );
    }
}
