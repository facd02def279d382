//! A minimal nfnetlink client for nf_tables set elements: add (with a per-element timeout),
//! delete, dump. That is all the grant path needs; tables, sets and chains are loaded with
//! `nft` (see `nftcmd.rs`).
//!
//! Wire format (see `include/uapi/linux/netfilter/nf_tables.h` and `nfnetlink.h`): every
//! message is a `nlmsghdr` followed by a `nfgenmsg` (family, version `NFNETLINK_V0`, resource
//! id) and netlink attributes. Changes go in a batch: `NFNL_MSG_BATCH_BEGIN` (resource id
//! `NFNL_SUBSYS_NFTABLES`), the `NFT_MSG_*` messages, `NFNL_MSG_BATCH_END`; the kernel applies
//! the batch as one transaction.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::error::NftError;

// nlmsghdr flags and types (linux/netlink.h).
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

// nfnetlink.h
const NFNETLINK_V0: u8 = 0;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFGENMSG_LEN: usize = 4;

// nf_tables.h: enum nf_tables_msg_types
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_GETGEN: u16 = 16;
// enum nft_set_elem_list_attributes
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
// enum nft_list_attributes
const NFTA_LIST_ELEM: u16 = 1;
// enum nft_set_elem_attributes
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
// enum nft_data_attributes
const NFTA_DATA_VALUE: u16 = 1;

/// `NFPROTO_*` of a table family name (`inet`, `ip`, `ip6`).
pub(crate) fn family_number(family: &str) -> Option<u8> {
    match family {
        "inet" => Some(1),
        "ip" => Some(2),
        "ip6" => Some(10),
        _ => None,
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds a datagram of one or more netlink messages.
#[derive(Debug, Default)]
pub(crate) struct MsgBuf {
    buf: Vec<u8>,
    /// Start of the message being built.
    msg_start: usize,
}

impl MsgBuf {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) {
        self.msg_start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in end()
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    fn end(&mut self) {
        let len = (self.buf.len() - self.msg_start) as u32;
        self.buf[self.msg_start..self.msg_start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    fn nest_begin(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn nest_end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn batch_marker(&mut self, ty: u16, seq: u32) {
        self.begin(ty, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES);
        self.end();
    }

    /// A `NEWSETELEM` (with `timeout_ms`) or `DELSETELEM` of one element.
    #[allow(clippy::too_many_arguments)]
    fn setelem(
        &mut self,
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        table: &str,
        set: &str,
        key: &[u8],
        timeout_ms: Option<u64>,
    ) {
        self.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            family,
            0,
        );
        self.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        self.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        let elems = self.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        let elem = self.nest_begin(NFTA_LIST_ELEM);
        let k = self.nest_begin(NFTA_SET_ELEM_KEY);
        self.attr(NFTA_DATA_VALUE, key);
        self.nest_end(k);
        if let Some(ms) = timeout_ms {
            self.attr(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
        }
        self.nest_end(elem);
        self.nest_end(elems);
        self.end();
    }
}

/// One element operation inside a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ElemOp<'a> {
    /// Add; fails with `EEXIST` if the element is there (`NLM_F_EXCL`).
    AddExcl { key: &'a [u8], timeout_ms: u64 },
    /// Add or, on kernels >= 6.12, update the timeout of an existing element.
    Add { key: &'a [u8], timeout_ms: u64 },
    /// Delete; fails with `ENOENT` if absent.
    Del { key: &'a [u8] },
}

/// Builds a batch `BEGIN, ops..., END` with sequence numbers from `seq`; returns the buffer and
/// the sequence numbers of the ops (each asks for an ack).
pub(crate) fn build_batch(
    seq: u32,
    family: u8,
    table: &str,
    set: &str,
    ops: &[ElemOp<'_>],
) -> (MsgBuf, Vec<u32>) {
    let mut b = MsgBuf::default();
    b.batch_marker(NFNL_MSG_BATCH_BEGIN, seq);
    let mut seqs = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let s = seq.wrapping_add(1 + i as u32);
        seqs.push(s);
        match *op {
            ElemOp::AddExcl { key, timeout_ms } => b.setelem(
                NFT_MSG_NEWSETELEM,
                NLM_F_CREATE | NLM_F_EXCL,
                s,
                family,
                table,
                set,
                key,
                Some(timeout_ms),
            ),
            ElemOp::Add { key, timeout_ms } => b.setelem(
                NFT_MSG_NEWSETELEM,
                NLM_F_CREATE,
                s,
                family,
                table,
                set,
                key,
                Some(timeout_ms),
            ),
            ElemOp::Del { key } => {
                b.setelem(NFT_MSG_DELSETELEM, 0, s, family, table, set, key, None)
            }
        }
    }
    b.batch_marker(NFNL_MSG_BATCH_END, seq.wrapping_add(1 + ops.len() as u32));
    (b, seqs)
}

/// Iterates over the netlink attributes in `data`: (type without flags, payload).
pub(crate) fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let ty = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        data = &data[align4(len).min(data.len())..];
        Some((ty, payload))
    })
}

fn find(data: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(data).find(|(t, _)| *t == ty).map(|(_, p)| p)
}

fn be64(p: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(p.get(..8)?.try_into().ok()?))
}

/// One element of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpedElem {
    pub key: Vec<u8>,
    pub timeout_ms: Option<u64>,
    pub expiration_ms: Option<u64>,
}

/// Parses the attributes (after the `nfgenmsg`) of a `NEWSETELEM` dump message.
pub(crate) fn parse_elems(attrs_data: &[u8], out: &mut Vec<DumpedElem>) {
    let Some(list) = find(attrs_data, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return;
    };
    for (ty, elem) in attrs(list) {
        if ty != NFTA_LIST_ELEM {
            continue;
        }
        let Some(key) = find(elem, NFTA_SET_ELEM_KEY).and_then(|k| find(k, NFTA_DATA_VALUE)) else {
            continue;
        };
        out.push(DumpedElem {
            key: key.to_vec(),
            timeout_ms: find(elem, NFTA_SET_ELEM_TIMEOUT).and_then(be64),
            expiration_ms: find(elem, NFTA_SET_ELEM_EXPIRATION).and_then(be64),
        });
    }
}

/// A message received from the kernel.
#[derive(Debug)]
struct RxMsg<'a> {
    ty: u16,
    seq: u32,
    payload: &'a [u8],
}

fn messages(mut data: &[u8]) -> impl Iterator<Item = RxMsg<'_>> {
    std::iter::from_fn(move || {
        if data.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(data[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([data[4], data[5]]);
        let seq = u32::from_ne_bytes(data[8..12].try_into().ok()?);
        let payload = &data[NLMSG_HDRLEN..len];
        data = &data[align4(len).min(data.len())..];
        Some(RxMsg { ty, seq, payload })
    })
}

/// The errno of an `NLMSG_ERROR` payload (0 = ack), as a positive number.
fn error_code(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .map(|e| -e)
        .unwrap_or(libc::EPROTO)
}

/// A `NETLINK_NETFILTER` socket bound in the network namespace it was created in.
#[derive(Debug)]
pub(crate) struct NlSocket {
    fd: OwnedFd,
    seq: u32,
    rbuf: Vec<u8>,
}

/// How long we wait for the kernel's answer before giving up.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

impl NlSocket {
    /// Opens the socket (no privilege needed for that; the kernel checks CAP_NET_ADMIN per
    /// message).
    pub(crate) fn open() -> Result<NlSocket, NftError> {
        // SAFETY: plain socket(2) call; the fd is owned right after.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT) => NftError::Unsupported {
                    detail: format!("no netfilter netlink socket: {e}"),
                },
                _ => NftError::io("cannot open a netfilter netlink socket", &e),
            });
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain old data; zeroed is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sa is a valid sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(NftError::io(
                "cannot bind the netfilter netlink socket",
                &io::Error::last_os_error(),
            ));
        }
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(NftError::io(
                "cannot set the netlink receive timeout",
                &io::Error::last_os_error(),
            ));
        }
        // Start sequence numbers somewhere unpredictable-ish; they only have to be distinct.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(NlSocket {
            fd,
            seq,
            rbuf: vec![0; 64 * 1024],
        })
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl zeroed = the kernel (pid 0).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: data and sa are valid for the given lengths.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    0,
                    (&sa as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one datagram into `rbuf`; returns its length. `nonblock` returns `Ok(0)` when
    /// nothing is waiting.
    fn recv(&mut self, nonblock: bool) -> io::Result<usize> {
        let flags = libc::MSG_TRUNC | if nonblock { libc::MSG_DONTWAIT } else { 0 };
        loop {
            // SAFETY: rbuf is valid for writes of its length.
            let rc = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.rbuf.as_mut_ptr().cast(),
                    self.rbuf.len(),
                    flags,
                )
            };
            if rc >= 0 {
                let n = rc as usize;
                if n > self.rbuf.len() {
                    // Truncated: grow and report it (the message is lost; callers fail).
                    self.rbuf.resize(n.next_power_of_two(), 0);
                    return Err(io::Error::other("netlink message truncated"));
                }
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if nonblock => return Ok(0),
                _ => return Err(e),
            }
        }
    }

    /// Discards anything left over from an earlier exchange.
    fn drain(&mut self) {
        while let Ok(n) = self.recv(true) {
            if n == 0 {
                break;
            }
        }
    }

    /// Sends a batch of element operations on `table`/`set` and waits for every ack. The
    /// error is the first failing operation's errno (as an `io::Error` raw code via
    /// [`BatchError`]).
    pub(crate) fn batch(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
        ops: &[ElemOp<'_>],
    ) -> Result<(), BatchError> {
        self.drain();
        let first = self.next_seq(ops.len() as u32 + 2);
        let (buf, seqs) = build_batch(first, family, table, set, ops);
        let last = first.wrapping_add(ops.len() as u32 + 1);
        self.send(buf.bytes()).map_err(BatchError::Io)?;
        let mut pending: Vec<u32> = seqs;
        let mut failure: Option<(usize, i32)> = None;
        while !pending.is_empty() {
            let n = match self.recv(false) {
                Ok(n) => n,
                Err(e) => {
                    return Err(match failure {
                        Some((i, errno)) => BatchError::Kernel { op: i, errno },
                        None => BatchError::Io(e),
                    });
                }
            };
            for m in messages(&self.rbuf[..n]) {
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let errno = error_code(m.payload);
                if m.seq == first || m.seq == last {
                    // The whole batch was refused (e.g. EPERM is reported on BATCH_BEGIN).
                    if errno != 0 {
                        return Err(BatchError::Kernel { op: 0, errno });
                    }
                    continue;
                }
                if let Some(pos) = pending.iter().position(|s| *s == m.seq) {
                    pending.swap_remove(pos);
                    if errno != 0 && failure.is_none() {
                        let idx = m.seq.wrapping_sub(first).wrapping_sub(1) as usize;
                        failure = Some((idx, errno));
                    }
                }
            }
        }
        match failure {
            Some((op, errno)) => Err(BatchError::Kernel { op, errno }),
            None => Ok(()),
        }
    }

    /// Checks that nf_tables answers and that we may talk to it (`NFT_MSG_GETGEN`).
    pub(crate) fn probe(&mut self) -> Result<(), NftError> {
        self.drain();
        let seq = self.next_seq(1);
        let mut b = MsgBuf::default();
        b.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            0,
            0,
        );
        b.end();
        let op = "query of the nftables generation";
        self.send(b.bytes())
            .map_err(|e| NftError::io(format!("netlink {op}"), &e))?;
        loop {
            let n = self
                .recv(false)
                .map_err(|e| NftError::io(format!("netlink {op}"), &e))?;
            for m in messages(&self.rbuf[..n]) {
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    let errno = error_code(m.payload);
                    return if errno == 0 {
                        Ok(())
                    } else {
                        Err(NftError::from_errno(op, errno))
                    };
                }
            }
        }
    }

    /// Looks one element up (`NFT_MSG_GETSETELEM` without dump: no transaction, so much
    /// cheaper than a failing batch, whose abort costs milliseconds). `Ok(None)` if absent.
    pub(crate) fn get(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
        key: &[u8],
    ) -> Result<Option<DumpedElem>, NftError> {
        self.drain();
        let seq = self.next_seq(1);
        let mut b = MsgBuf::default();
        b.setelem(NFT_MSG_GETSETELEM, 0, seq, family, table, set, key, None);
        let op = format!("lookup in set {set} of table {table}");
        Ok(self
            .elements(b.bytes(), seq, &op)?
            .and_then(|mut v| v.pop()))
    }

    /// Dumps the elements of `table`/`set`. `Ok(None)` if the set does not exist.
    pub(crate) fn dump(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
    ) -> Result<Option<Vec<DumpedElem>>, NftError> {
        self.drain();
        let seq = self.next_seq(1);
        let mut b = MsgBuf::default();
        b.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            family,
            0,
        );
        b.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        b.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        b.end();
        let op = format!("listing of set {set} in table {table}");
        self.elements(b.bytes(), seq, &op)
    }

    /// Sends a `GETSETELEM` request and collects the elements of its answer; `Ok(None)` if
    /// the set (or, for a lookup, the element) does not exist.
    fn elements(
        &mut self,
        request: &[u8],
        seq: u32,
        op: &str,
    ) -> Result<Option<Vec<DumpedElem>>, NftError> {
        self.send(request)
            .map_err(|e| NftError::io(format!("netlink {op}"), &e))?;
        let mut out = Vec::new();
        loop {
            let n = self
                .recv(false)
                .map_err(|e| NftError::io(format!("netlink {op}"), &e))?;
            for m in messages(&self.rbuf[..n]) {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(Some(out)),
                    NLMSG_ERROR => {
                        return match error_code(m.payload) {
                            0 => Ok(Some(out)),
                            libc::ENOENT => Ok(None),
                            errno => Err(NftError::from_errno(op, errno)),
                        };
                    }
                    _ => {
                        if let Some(a) = m.payload.get(NFGENMSG_LEN..) {
                            parse_elems(a, &mut out);
                        }
                    }
                }
            }
        }
    }
}

/// Failure of [`NlSocket::batch`].
#[derive(Debug)]
pub(crate) enum BatchError {
    /// Operation `op` (index in the ops slice; 0 for batch-wide refusals) got `errno`.
    Kernel {
        op: usize,
        errno: i32,
    },
    Io(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_layout() {
        let key = [198, 18, 1, 2, 6, 0, 0, 0, 0, 22, 0, 0];
        let (b, seqs) = build_batch(
            100,
            1,
            "knockd",
            "grants4",
            &[ElemOp::AddExcl {
                key: &key,
                timeout_ms: 3000,
            }],
        );
        assert_eq!(seqs, vec![101]);
        let msgs: Vec<_> = messages(b.bytes()).collect();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].ty, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(msgs[0].seq, 100);
        // nfgenmsg of the batch marker: family 0, version 0, res_id 10 big-endian.
        assert_eq!(msgs[0].payload, &[0, 0, 0, 10]);
        assert_eq!(msgs[1].ty, (10 << 8) | 12);
        assert_eq!(msgs[1].seq, 101);
        assert_eq!(msgs[2].ty, NFNL_MSG_BATCH_END);
        assert_eq!(msgs[2].seq, 102);
        // flags of the element message: REQUEST | ACK | CREATE | EXCL
        let raw = b.bytes();
        let second = align4(u32::from_ne_bytes(raw[0..4].try_into().unwrap()) as usize);
        let flags = u16::from_ne_bytes([raw[second + 6], raw[second + 7]]);
        assert_eq!(flags, 0x1 | 0x4 | 0x400 | 0x200);
        let p = msgs[1].payload;
        assert_eq!(p[0], 1); // NFPROTO_INET
        let a: Vec<_> = attrs(&p[4..]).collect();
        assert_eq!(a[0], (NFTA_SET_ELEM_LIST_TABLE, &b"knockd\0"[..]));
        assert_eq!(a[1], (NFTA_SET_ELEM_LIST_SET, &b"grants4\0"[..]));
        assert_eq!(a[2].0, NFTA_SET_ELEM_LIST_ELEMENTS);
        let elem: Vec<_> = attrs(a[2].1).collect();
        assert_eq!(elem.len(), 1);
        assert_eq!(elem[0].0, NFTA_LIST_ELEM);
        let inner: Vec<_> = attrs(elem[0].1).collect();
        assert_eq!(inner[0].0, NFTA_SET_ELEM_KEY);
        assert_eq!(find(inner[0].1, NFTA_DATA_VALUE), Some(&key[..]));
        assert_eq!(
            inner[1],
            (NFTA_SET_ELEM_TIMEOUT, &3000u64.to_be_bytes()[..])
        );
    }

    #[test]
    fn parse_dump_elements() {
        // Build a fake dump message body with the same encoder and parse it back.
        let mut b = MsgBuf::default();
        b.begin((10 << 8) | 12, 0, 7, 1, 0);
        b.attr_str(NFTA_SET_ELEM_LIST_TABLE, "knockd");
        let l = b.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        for (k, t, x) in [
            (&[1u8, 2, 3, 4][..], 5000u64, 4000u64),
            (&[9u8; 24][..], 1, 0),
        ] {
            let e = b.nest_begin(NFTA_LIST_ELEM);
            let kk = b.nest_begin(NFTA_SET_ELEM_KEY);
            b.attr(NFTA_DATA_VALUE, k);
            b.nest_end(kk);
            b.attr(NFTA_SET_ELEM_TIMEOUT, &t.to_be_bytes());
            b.attr(NFTA_SET_ELEM_EXPIRATION, &x.to_be_bytes());
            b.nest_end(e);
        }
        b.nest_end(l);
        b.end();
        let m = messages(b.bytes()).next().unwrap();
        let mut out = Vec::new();
        parse_elems(&m.payload[4..], &mut out);
        assert_eq!(
            out,
            vec![
                DumpedElem {
                    key: vec![1, 2, 3, 4],
                    timeout_ms: Some(5000),
                    expiration_ms: Some(4000)
                },
                DumpedElem {
                    key: vec![9; 24],
                    timeout_ms: Some(1),
                    expiration_ms: Some(0)
                }
            ]
        );
    }

    #[test]
    fn garbage_is_not_a_panic() {
        for data in [&[][..], &[1, 0], &[200, 0, 1, 0, 5], &[4, 0, 1, 0]] {
            let _ = attrs(data).count();
            let _ = messages(data).count();
            let mut out = Vec::new();
            parse_elems(data, &mut out);
        }
        assert_eq!(error_code(&[]), libc::EPROTO);
        assert_eq!(error_code(&(-1i32).to_ne_bytes()), 1);
    }
}
