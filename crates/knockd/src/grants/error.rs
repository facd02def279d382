//! Errors of the nftables backend, worded for the administrator who reads them in the log.

use std::net::IpAddr;
use std::path::PathBuf;

use knock_core::proto::ProtoPort;

/// Why an nftables operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NftError {
    /// The kernel has no nf_tables (module missing or not built).
    #[error(
        "nftables is not available in this kernel ({detail}): load it with `modprobe nf_tables` \
         or use a kernel built with CONFIG_NF_TABLES; doors with `open =` need it"
    )]
    Unsupported { detail: String },

    /// The daemon lacks CAP_NET_ADMIN (in the network namespace it runs in).
    #[error(
        "permission denied by the kernel for {what}: changing nftables needs CAP_NET_ADMIN \
         (run knockd as root or grant it CAP_NET_ADMIN)"
    )]
    PermissionDenied { what: String },

    /// The `nft` program is missing (it loads the ruleset; grants themselves go over netlink).
    #[error(
        "cannot run the nft program `{}`: {reason} (install the `nftables` package)",
        path.display()
    )]
    NftMissing { path: PathBuf, reason: String },

    /// `nft` rejected the script (the first lines of its error output are included).
    #[error("nft rejected the knockd ruleset for {target}: {stderr}")]
    NftFailed { target: String, stderr: String },

    /// `Nft_Chain` names a table or chain that does not exist.
    #[error(
        "Nft_Chain: chain `{family} {table} {chain}` does not exist; create it in your ruleset \
         first (knockd inserts its rules into it), or remove Nft_Chain to let knockd own a table"
    )]
    UserChainMissing {
        family: String,
        table: String,
        chain: String,
    },

    /// Our sets are gone (someone ran `nft flush ruleset` or deleted the table) or were never
    /// created: [`crate::grants::NftBackend::apply`] must run first.
    #[error(
        "set `{set}` of table `{table}` does not exist: the knockd ruleset was removed (e.g. by \
         `nft flush ruleset`) or not loaded yet; reload knockd (SIGHUP) to re-create it"
    )]
    NotApplied { table: String, set: String },

    /// The grant set reached its size limit.
    #[error("cannot grant {proto_port} to {addr}: the grant set is full ({limit} entries)")]
    SetFull {
        addr: IpAddr,
        proto_port: ProtoPort,
        limit: u32,
    },

    /// An IPv6 grant while `Nft_Chain` is an `ip` chain (or IPv4 with `ip6`).
    #[error(
        "cannot grant {proto_port} to {addr}: Nft_Chain is an `{family}` chain, which does not \
         see this address family (use an `inet` chain)"
    )]
    FamilyNotHandled {
        addr: IpAddr,
        proto_port: ProtoPort,
        family: String,
    },

    /// A zero timeout would make a permanent grant; refused.
    #[error(
        "refusing a grant of {proto_port} to {addr} with timeout {timeout_ms} ms (must be 1 ms .. {max_days} days)"
    )]
    BadTimeout {
        addr: IpAddr,
        proto_port: ProtoPort,
        timeout_ms: u128,
        max_days: u64,
    },

    /// Too many requests are waiting for the nftables worker.
    #[error(
        "nftables worker busy: {pending} requests pending, grant of {proto_port} to {addr} dropped"
    )]
    Busy {
        addr: IpAddr,
        proto_port: ProtoPort,
        pending: usize,
    },

    /// A table/chain name or family that nft would not take.
    #[error("bad nftables {what}: `{name}`")]
    BadName { what: &'static str, name: String },

    /// The worker thread is gone (backend torn down, or it panicked).
    #[error("the nftables worker has stopped")]
    WorkerGone,

    /// Any other netlink failure.
    #[error("nftables netlink {op} failed: {reason}")]
    Netlink { op: String, reason: String },

    /// An I/O error around the `nft` program or the netlink socket.
    #[error("{what}: {reason}")]
    Io { what: String, reason: String },
}

impl NftError {
    pub(crate) fn io(what: impl Into<String>, e: &std::io::Error) -> NftError {
        NftError::Io {
            what: what.into(),
            reason: e.to_string(),
        }
    }

    /// Maps a negative-errno answer of the kernel to an error for operation `op` (e.g.
    /// `"add element to inet knockd grants4"`).
    pub(crate) fn from_errno(op: &str, errno: i32) -> NftError {
        let e = std::io::Error::from_raw_os_error(errno);
        match errno {
            libc::EPERM | libc::EACCES => NftError::PermissionDenied {
                what: op.to_string(),
            },
            libc::EOPNOTSUPP | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT => {
                NftError::Unsupported {
                    detail: format!("{op}: {e}"),
                }
            }
            _ => NftError::Netlink {
                op: op.to_string(),
                reason: e.to_string(),
            },
        }
    }

    /// Whether this error means "nftables cannot be used at all here" (the daemon should
    /// refuse to start doors with `open =`), as opposed to a failure of one request.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            NftError::Unsupported { .. }
                | NftError::PermissionDenied { .. }
                | NftError::NftMissing { .. }
                | NftError::UserChainMissing { .. }
                | NftError::WorkerGone
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert!(matches!(
            NftError::from_errno("probe", libc::EPERM),
            NftError::PermissionDenied { .. }
        ));
        let e = NftError::from_errno("probe", libc::EOPNOTSUPP);
        assert!(matches!(e, NftError::Unsupported { .. }));
        assert!(e.to_string().contains("modprobe nf_tables"), "{e}");
        assert!(e.is_fatal());
        let e = NftError::from_errno("add element", libc::EINVAL);
        assert!(!e.is_fatal());
        assert!(e.to_string().contains("add element"), "{e}");
        assert!(
            NftError::from_errno("x", libc::EPERM)
                .to_string()
                .contains("CAP_NET_ADMIN")
        );
    }
}
