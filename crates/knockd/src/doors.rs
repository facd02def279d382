//! From a parsed configuration to what the running daemon needs: the matcher's rules (with
//! one-time sequence files and rotating secrets read from disk), and the mapping between
//! matcher doors and configuration doors.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use knock_core::config::{Config, Door, Trigger};
use knock_core::matcher::{DoorRule, Pattern, Watch};
use knock_core::onetime;
use knock_core::proto::Knock;
use knock_core::rotate::RotatingSpec;

/// The doors of a configuration, ready to run.
#[derive(Debug, Clone)]
pub struct DoorSet {
    pub config: Config,
    /// Matcher door index → index in `config.doors`.
    pub matched: Vec<usize>,
    /// The matcher's rules, in the same order as `matched`.
    pub rules: Vec<DoorRule>,
    /// Some door uses one-time sequences.
    pub has_onetime: bool,
}

impl DoorSet {
    /// Builds the rules, reading one-time sequence files and secret files. Errors name the
    /// door and the file.
    pub fn build(config: Config) -> Result<DoorSet, String> {
        let mut matched = Vec::new();
        let mut rules = Vec::new();
        for (i, door) in config.doors.iter().enumerate() {
            let pattern = match &door.trigger {
                Trigger::Sequence(seq) => Pattern::Fixed(seq.clone()),
                Trigger::OneTime { file } => match read_onetime(door, file)? {
                    Some(seq) => Pattern::Fixed(seq),
                    None => Pattern::Disabled,
                },
                Trigger::Rotating(r) => Pattern::Rotating(RotatingSpec {
                    secret: read_secret(Path::new(&r.secret_file))
                        .map_err(|e| format!("door [{}]: {e}", door.name))?,
                    length: r.length,
                    lo: r.port_lo,
                    hi: r.port_hi,
                    step: r.step,
                    proto: r.protocol,
                }),
                Trigger::Spa(_) | Trigger::Schedule => continue,
            };
            matched.push(i);
            rules.push(DoorRule {
                pattern,
                flags: door.tcp_flags,
                timeout_ms: door.seq_timeout.saturating_mul(1000),
                target: door.target,
                from: door.from.clone(),
            });
        }
        let has_onetime = config
            .doors
            .iter()
            .any(|d| matches!(d.trigger, Trigger::OneTime { .. }));
        Ok(DoorSet {
            config,
            matched,
            rules,
            has_onetime,
        })
    }

    /// The configuration door behind matcher door `m`.
    pub fn door(&self, m: usize) -> Option<&Door> {
        self.matched.get(m).and_then(|&i| self.config.doors.get(i))
    }
}

/// Reads and decodes a rotating door's secret file: base64 of at least 32 bytes.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let text = fs::read_to_string(path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    knock_core::rotate::decode_secret(&text)
        .map_err(|e| format!("secret file {} {e}", path.display()))
}

/// The current sequence of a one-time sequences file (`None` when used up).
fn read_onetime(door: &Door, file: &str) -> Result<Option<Vec<Knock>>, String> {
    let text = fs::read_to_string(file).map_err(|e| {
        format!(
            "door [{}]: cannot read one-time sequences file {file}: {e}",
            door.name
        )
    })?;
    onetime::current(&text)
        .map(|c| c.map(|c| c.sequence))
        .map_err(|(line, kind)| format!("{file}:{line}: {kind}"))
}

/// Marks the current line of a one-time sequences file as used (its first character becomes
/// `#`, as knockd does) and returns the next sequence, `None` when none is left.
pub fn consume_onetime(file: &str) -> Result<Option<Vec<Knock>>, String> {
    let text = fs::read_to_string(file)
        .map_err(|e| format!("cannot read one-time sequences file {file}: {e}"))?;
    let current =
        onetime::current(&text).map_err(|(line, kind)| format!("{file}:{line}: {kind}"))?;
    if let Some(c) = current {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(file)
            .map_err(|e| format!("cannot write one-time sequences file {file}: {e}"))?;
        f.seek(SeekFrom::Start(c.offset as u64))
            .and_then(|_| f.write_all(b"#"))
            .map_err(|e| format!("cannot write one-time sequences file {file}: {e}"))?;
    }
    let text = fs::read_to_string(file)
        .map_err(|e| format!("cannot read one-time sequences file {file}: {e}"))?;
    onetime::current(&text)
        .map(|c| c.map(|c| c.sequence))
        .map_err(|(line, kind)| format!("{file}:{line}: {kind}"))
}

/// Everything the kernel filter must pass: the matcher's watches plus SPA ports.
pub fn watches(set: &DoorSet, matcher_watches: Vec<Watch>) -> Vec<Watch> {
    let mut w = matcher_watches;
    for door in &set.config.doors {
        if let Trigger::Spa(spa) = &door.trigger {
            w.push(Watch::Port(Knock::new(
                spa.port,
                knock_core::proto::Protocol::Udp,
            )));
        }
    }
    w.sort();
    w.dedup();
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("knockd-doors-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn onetime_files_are_consumed_like_knockd() {
        let d = tmp("ot");
        let f = d.join("ot.txt");
        fs::write(&f, " 1,2\n\t3\n4\n").unwrap();
        let conf = format!("[ot]\none_time_sequences = {}\n", f.display());
        let set = DoorSet::build(knock_core::config::parse(&conf, "t").unwrap()).unwrap();
        assert_eq!(
            set.rules[0].pattern,
            Pattern::Fixed(vec![
                Knock::new(1, knock_core::proto::Protocol::Tcp),
                Knock::new(2, knock_core::proto::Protocol::Tcp)
            ])
        );
        let f = f.to_str().unwrap();
        assert_eq!(consume_onetime(f).unwrap().unwrap().len(), 1);
        assert_eq!(fs::read_to_string(f).unwrap(), "#1,2\n\t3\n4\n");
        assert_eq!(consume_onetime(f).unwrap().unwrap()[0].port, 4);
        assert_eq!(fs::read_to_string(f).unwrap(), "#1,2\n#3\n4\n");
        assert_eq!(consume_onetime(f).unwrap(), None);
        assert_eq!(fs::read_to_string(f).unwrap(), "#1,2\n#3\n#\n");
    }

    #[test]
    fn secrets_are_checked() {
        let d = tmp("secret");
        let short = d.join("short");
        fs::write(&short, "AAEC\n").unwrap();
        let e = read_secret(&short).unwrap_err();
        assert!(e.contains("holds 3 bytes, at least 32"), "{e}");
        let bad = d.join("bad");
        fs::write(&bad, "not base64!").unwrap();
        assert!(read_secret(&bad).unwrap_err().contains("is not base64"));
        let good = d.join("good");
        fs::write(&good, "AAECAwQFBgcICQoLDA0ODxAREhMU\nFRYXGBkaGxwdHh8=\n").unwrap();
        assert_eq!(read_secret(&good).unwrap(), (0u8..32).collect::<Vec<_>>());
        let e = read_secret(&d.join("missing")).unwrap_err();
        assert!(
            e.contains("cannot read secret file") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn bad_onetime_line_is_located() {
        let d = tmp("otbad");
        let f = d.join("ot.txt");
        fs::write(&f, "# c\n 1,zz\n").unwrap();
        let conf = format!("[ot]\none_time_sequences = {}\n", f.display());
        let e = DoorSet::build(knock_core::config::parse(&conf, "t").unwrap()).unwrap_err();
        assert_eq!(e, format!("{}:2: bad port \"zz\" in sequence", f.display()));
    }
}
