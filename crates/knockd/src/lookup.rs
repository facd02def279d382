//! `-l`: reverse DNS names of knockers for log lines, resolved off the packet path.
//!
//! The packet path only reads a bounded cache. The first packet from an address starts a
//! lookup on the blocking pool (at most [`MAX_CONCURRENT`] at once; under a spoofed flood the
//! rest are simply not looked up) and lines are written with the plain address until the name
//! is known: `198.18.1.2 (client.example): door: OPEN SESAME`, as knockd writes them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// Names cached at most.
pub const CACHE_ENTRIES: usize = 4096;
/// Lookups running at once, at most.
pub const MAX_CONCURRENT: usize = 4;

#[derive(Clone)]
enum Entry {
    Pending,
    Done(Option<String>),
}

/// The cache of reverse names.
pub struct Names {
    cache: Arc<Mutex<HashMap<IpAddr, Entry>>>,
    slots: Arc<Semaphore>,
}

impl Default for Names {
    fn default() -> Self {
        Names::new()
    }
}

impl Names {
    pub fn new() -> Names {
        Names {
            cache: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        }
    }

    /// How a knocker appears in log lines: `ip` or `ip (name)`. Starts a lookup the first
    /// time an address is seen. Must be called inside a tokio runtime.
    pub fn display(&self, ip: IpAddr) -> String {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(&ip) {
            Some(Entry::Done(Some(name))) => return format!("{ip} ({name})"),
            Some(_) => return ip.to_string(),
            None => {}
        }
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            return ip.to_string();
        };
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(ip, Entry::Pending);
        let cache = Arc::clone(&self.cache);
        tokio::task::spawn_blocking(move || {
            let name = reverse(ip);
            cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ip, Entry::Done(name));
            drop(permit);
        });
        ip.to_string()
    }
}

/// getnameinfo(3) with NI_NAMEREQD: the PTR name, or `None`.
pub fn reverse(ip: IpAddr) -> Option<String> {
    let sa: socket2::SockAddr = SocketAddr::new(ip, 0).into();
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `sa` is a valid socket address of the given length; `host` is a writable buffer
    // of the given size; no service buffer is requested.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo wrote a NUL-terminated string into `host`.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    name.to_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_from_hosts_file() {
        // /etc/hosts maps 127.0.0.1 to localhost on Debian; no network is used.
        assert_eq!(
            reverse("127.0.0.1".parse().unwrap()).as_deref(),
            Some("localhost")
        );
    }

    #[tokio::test]
    async fn first_display_is_plain_then_named() {
        let names = Names::new();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(names.display(ip), "127.0.0.1");
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if names.display(ip) != "127.0.0.1" {
                break;
            }
        }
        assert_eq!(names.display(ip), "127.0.0.1 (localhost)");
    }
}
