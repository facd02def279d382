//! One-time sequences (`One_Time_Sequences = file`): the pure half.
//!
//! The file holds one sequence per line in `Sequence =` syntax. The current sequence is the
//! first line that is neither blank nor a `#` comment. When it has been used, knockd overwrites
//! the first character of that line with `#` (so lines are best written with a leading space)
//! and the next valid line becomes current. This module finds the current line; the daemon
//! does the file I/O.

use crate::config::{ErrorKind, parse_sequence};
use crate::proto::Knock;

/// The sequence currently in force, and where its line starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Byte offset of the line's first character: the byte to overwrite with `#` once used.
    pub offset: usize,
    /// 1-based line number, for messages.
    pub line: usize,
    pub sequence: Vec<Knock>,
}

/// The first valid sequence of a one-time sequences file, `None` when none is left.
/// An invalid line is an error with its line number.
pub fn current(text: &str) -> Result<Option<Current>, (usize, ErrorKind)> {
    let mut offset = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sequence = parse_sequence(line).map_err(|e| (i + 1, e))?;
        return Ok(Some(Current {
            offset: start,
            line: i + 1,
            sequence,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Protocol::*;

    #[test]
    fn walks_the_file_as_lines_are_marked() {
        let mut text = String::from("# one-time sequences\n\n 7000,8000,9000\n 1111:udp,2222\n");
        let c = current(&text).unwrap().unwrap();
        assert_eq!(c.line, 3);
        assert_eq!(
            c.sequence,
            vec![
                Knock::new(7000, Tcp),
                Knock::new(8000, Tcp),
                Knock::new(9000, Tcp)
            ]
        );
        assert_eq!(&text[c.offset..c.offset + 2], " 7");
        text.replace_range(c.offset..c.offset + 1, "#");
        let c = current(&text).unwrap().unwrap();
        assert_eq!(c.line, 4);
        assert_eq!(
            c.sequence,
            vec![Knock::new(1111, Udp), Knock::new(2222, Tcp)]
        );
        text.replace_range(c.offset..c.offset + 1, "#");
        assert_eq!(current(&text), Ok(None));
    }

    #[test]
    fn without_leading_space_the_first_digit_is_lost() {
        // knockd's behaviour: "7000,..." becomes "#000,...", a comment.
        let mut text = String::from("7000,8000\n9000\n");
        let c = current(&text).unwrap().unwrap();
        text.replace_range(c.offset..c.offset + 1, "#");
        assert_eq!(text, "#000,8000\n9000\n");
        assert_eq!(
            current(&text).unwrap().unwrap().sequence,
            vec![Knock::new(9000, Tcp)]
        );
    }

    #[test]
    fn bad_lines_are_located() {
        assert_eq!(
            current("#\n 1,x\n"),
            Err((2, ErrorKind::BadPort("x".into(), "sequence")))
        );
        assert_eq!(current(""), Ok(None));
    }
}
