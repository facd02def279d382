//! Minimal JSON: a writer for the report and a reader of numbers in a flat object (the
//! daemon's `--status --json` counters).

use std::fmt::Write;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// An object from key/value pairs.
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, J)>) -> J {
        J::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn opt_u64(v: Option<u64>) -> J {
        v.map_or(J::Null, |x| J::Int(x as i64))
    }

    pub fn opt_f64(v: Option<f64>) -> J {
        v.map_or(J::Null, J::Num)
    }

    /// Pretty-printed text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s.push('\n');
        s
    }

    fn write(&self, s: &mut String, ind: usize) {
        match self {
            J::Null => s.push_str("null"),
            J::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => {
                let _ = write!(s, "{i}");
            }
            J::Num(f) if f.is_finite() => {
                let _ = write!(s, "{f}");
            }
            J::Num(_) => s.push_str("null"),
            J::Str(t) => quote(s, t),
            J::Arr(v) => {
                // Arrays of plain numbers stay on one line.
                let flat = v
                    .iter()
                    .all(|x| matches!(x, J::Int(_) | J::Num(_) | J::Null));
                s.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    if flat {
                        if i > 0 {
                            s.push(' ');
                        }
                    } else {
                        newline(s, ind + 1);
                    }
                    x.write(s, ind + 1);
                }
                if !flat && !v.is_empty() {
                    newline(s, ind);
                }
                s.push(']');
            }
            J::Obj(v) => {
                s.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    newline(s, ind + 1);
                    quote(s, k);
                    s.push_str(": ");
                    x.write(s, ind + 1);
                }
                if !v.is_empty() {
                    newline(s, ind);
                }
                s.push('}');
            }
        }
    }
}

fn newline(s: &mut String, ind: usize) {
    s.push('\n');
    for _ in 0..ind {
        s.push_str("  ");
    }
}

fn quote(s: &mut String, t: &str) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// The non-negative integer value of `"key"` in a JSON text, at any depth (first occurrence
/// as an object key). `None` if absent or not a non-negative integer.
pub fn find_u64(text: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\"");
    let mut from = 0;
    while let Some(pos) = text[from..].find(&pat) {
        let after = &text[from + pos + pat.len()..];
        let rest = after.trim_start();
        if let Some(v) = rest.strip_prefix(':') {
            let v = v.trim_start();
            let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
            let next = v[end..].trim_start().chars().next();
            if end > 0 && matches!(next, None | Some(',' | '}' | ']')) {
                return v[..end].parse().ok();
            }
            return None;
        }
        from += pos + pat.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_nested() {
        let j = J::obj([
            ("a", J::Int(1)),
            ("b", J::Str("x\"y\n".into())),
            ("c", J::Arr(vec![J::Num(1.5), J::Null])),
            ("d", J::obj([("e", J::Bool(true))])),
            ("f", J::Num(f64::NAN)),
        ]);
        let s = j.render();
        assert!(s.contains("\"a\": 1"));
        assert!(s.contains("\"b\": \"x\\\"y\\n\""));
        assert!(s.contains("[1.5, null]"));
        assert!(s.contains("\"e\": true"));
        assert!(s.contains("\"f\": null"));
    }

    #[test]
    fn find_numbers() {
        let t = r#"{"packets_seen": 120, "nested": {"evictions":7}, "name": "packets_matched",
                   "packets_matched" : 99, "neg": -1, "float": 1.5}"#;
        assert_eq!(find_u64(t, "packets_seen"), Some(120));
        assert_eq!(find_u64(t, "evictions"), Some(7));
        // A string value equal to the key is skipped; the real key is found.
        assert_eq!(find_u64(t, "packets_matched"), Some(99));
        assert_eq!(find_u64(t, "neg"), None);
        assert_eq!(find_u64(t, "float"), None);
        assert_eq!(find_u64(t, "absent"), None);
    }
}
