//! SPA doors in the daemon: which doors listen on which UDP port, the replay cache and its
//! file. The decoding and the policy are pure (`knock_core::spa`); this module adds the state
//! that outlives a packet.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use knock_core::config::{Config, Trigger};
use knock_core::spa::{
    self, DEFAULT_MAX_ENTRIES, Decision, Freshness, Policy, ReplayCache, ReplayVerdict, SpaError,
    SpaKeys,
};

/// Where the replay cache is kept unless `SPA_Replay_File` says otherwise.
pub const DEFAULT_REPLAY_FILE: &str = "/var/lib/knockd/spa-replay.cache";

/// One SPA door, ready to check packets.
pub struct SpaDoor {
    /// Index in `config.doors`.
    pub index: usize,
    pub port: u16,
    keys: SpaKeys,
    max_age: u64,
}

/// What one datagram to an SPA port came to.
#[derive(Debug)]
pub enum Verdict {
    /// Authenticated, fresh, not a replay, allowed: do it.
    Accepted {
        door: usize,
        user: String,
        decision: Decision,
    },
    /// Authenticated but refused by the door's policy.
    Refused {
        door: usize,
        user: String,
        reason: spa::Refusal,
    },
    /// Authenticated, but seen before.
    Replayed { door: usize },
    /// Not authenticated by any door on this port (junk, forged, wrong key), or too old.
    Rejected(SpaError),
    /// The datagram was cut (snap length or IP fragment): cannot be checked.
    Incomplete,
}

/// The SPA doors of a configuration and the replay cache.
pub struct SpaState {
    pub doors: Vec<SpaDoor>,
    cache: ReplayCache,
    file: PathBuf,
    /// Lines appended to the file since it was last written whole.
    appended: usize,
    pub accepted: u64,
    pub rejected: u64,
}

impl SpaState {
    /// The SPA doors of `config`; loads the replay cache from its file. Errors name the door.
    /// `warn` receives problems with the cache file (the daemon logs them and goes on).
    pub fn build(config: &Config, warn: &mut dyn FnMut(String)) -> Result<SpaState, String> {
        let mut doors = Vec::new();
        for (index, door) in config.doors.iter().enumerate() {
            if let Trigger::Spa(s) = &door.trigger {
                let keys = s
                    .keys()
                    .map_err(|e| format!("door [{}]: bad SPA key: {e}", door.name))?;
                doors.push(SpaDoor {
                    index,
                    port: s.port,
                    keys,
                    max_age: s.max_age,
                });
            }
        }
        let window = doors.iter().map(|d| d.max_age).max().unwrap_or(0).max(1);
        let file = PathBuf::from(
            config
                .options
                .spa_replay_file
                .as_deref()
                .unwrap_or(DEFAULT_REPLAY_FILE),
        );
        let now = unix_now();
        let cache = if doors.is_empty() {
            ReplayCache::new(window, DEFAULT_MAX_ENTRIES)
        } else {
            load_cache(&file, window, now, warn)
        };
        Ok(SpaState {
            doors,
            cache,
            file,
            appended: 0,
            accepted: 0,
            rejected: 0,
        })
    }

    /// Carries the replay memory of a previous state over (SIGHUP).
    pub fn inherit(&mut self, old: SpaState) {
        let now = unix_now();
        let text = old.cache.to_text();
        if let Ok(c) =
            ReplayCache::from_text(&text, self.cache.window(), self.cache.max_entries(), now)
        {
            self.cache = c;
        }
        self.accepted = old.accepted;
        self.rejected = old.rejected;
    }

    /// Whether some SPA door listens on this UDP port.
    pub fn listens(&self, port: u16) -> bool {
        self.doors.iter().any(|d| d.port == port)
    }

    /// Disables a door (nftables unavailable for its grants).
    pub fn disable(&mut self, index: usize) {
        self.doors.retain(|d| d.index != index);
    }

    /// Checks a datagram to an SPA port from `src`: the first door on the port whose keys
    /// authenticate it decides. `now` is Unix seconds.
    pub fn check(
        &mut self,
        config: &Config,
        port: u16,
        payload: &[u8],
        complete: bool,
        src: IpAddr,
        now: u64,
    ) -> Verdict {
        if !complete {
            self.rejected += 1;
            return Verdict::Incomplete;
        }
        let mut last_err = None;
        for d in self.doors.iter().filter(|d| d.port == port) {
            let fresh = Freshness::Within {
                now_unix: now,
                max_age: d.max_age,
            };
            let decoded = match spa::decode(payload, &d.keys, fresh) {
                Ok(x) => x,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let Some(door) = config.doors.get(d.index) else {
                continue;
            };
            let Trigger::Spa(conf) = &door.trigger else {
                continue;
            };
            match self
                .cache
                .check(decoded.replay_digest, decoded.message.timestamp, now)
            {
                ReplayVerdict::Fresh => {}
                _ => {
                    self.rejected += 1;
                    return Verdict::Replayed { door: d.index };
                }
            }
            remember(
                &self.file,
                &self.cache,
                &mut self.appended,
                &decoded.replay_digest,
                decoded.message.timestamp,
            );
            let policy = Policy {
                spa: conf,
                open: &door.open,
                open_timeout: door.open_timeout,
                from: &door.from,
            };
            let user = decoded.message.user.clone();
            return match policy.decide(&decoded.message, src) {
                Ok(decision) => {
                    self.accepted += 1;
                    Verdict::Accepted {
                        door: d.index,
                        user,
                        decision,
                    }
                }
                Err(reason) => {
                    self.rejected += 1;
                    Verdict::Refused {
                        door: d.index,
                        user,
                        reason,
                    }
                }
            };
        }
        self.rejected += 1;
        Verdict::Rejected(last_err.unwrap_or(SpaError::TooShort {
            len: payload.len(),
            min: spa::MIN_WIRE_LEN,
        }))
    }

    /// The file the cache is kept in.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Checks that the cache file can be written (startup), so a misconfigured path is
    /// reported at once rather than silently losing replay protection over restarts.
    pub fn check_writable(&self) -> Result<(), String> {
        if self.doors.is_empty() {
            return Ok(());
        }
        save_cache(&self.file, &self.cache)
    }
}

/// Persists an accepted packet: one line appended to the cache file (cheap, on the packet
/// path); the file is rewritten compactly when appended lines outnumber live entries.
fn remember(
    file: &Path,
    cache: &ReplayCache,
    appended: &mut usize,
    digest: &spa::ReplayDigest,
    ts: u64,
) {
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(spa::entry_line(digest, ts).as_bytes()));
    *appended += 1;
    if written.is_err() || *appended > cache.len() * 2 + 1024 {
        let _ = save_cache(file, cache);
        *appended = 0;
    }
}

fn save_cache(file: &Path, cache: &ReplayCache) -> Result<(), String> {
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, cache.to_text())
        .and_then(|_| std::fs::rename(&tmp, file))
        .map_err(|e| format!("cannot write the SPA replay cache {}: {e}", file.display()))
}

fn load_cache(file: &Path, window: u64, now: u64, warn: &mut dyn FnMut(String)) -> ReplayCache {
    match std::fs::read_to_string(file) {
        Ok(text) => match ReplayCache::from_text(&text, window, DEFAULT_MAX_ENTRIES, now) {
            Ok(c) => c,
            Err(e) => {
                warn(format!(
                    "{}: {e}; starting with an empty SPA replay cache",
                    file.display()
                ));
                ReplayCache::new(window, DEFAULT_MAX_ENTRIES)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ReplayCache::new(window, DEFAULT_MAX_ENTRIES)
        }
        Err(e) => {
            warn(format!(
                "cannot read the SPA replay cache {}: {e}; starting with an empty one",
                file.display()
            ));
            ReplayCache::new(window, DEFAULT_MAX_ENTRIES)
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
