//! TCP flags and knockd's `tcpflags` door rule.

use std::fmt;

/// TCP header flag bits, as they appear in byte 13 of the TCP header.
pub mod bits {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

const NAMES: [(&str, u8); 6] = [
    ("fin", bits::FIN),
    ("syn", bits::SYN),
    ("rst", bits::RST),
    ("psh", bits::PSH),
    ("ack", bits::ACK),
    ("urg", bits::URG),
];

/// A door's TCP flag rule: bits that must be set and bits that must be clear.
///
/// knockd tests bits, it does not compare the whole byte: `syn` also matches SYN+ACK unless the
/// rule says `syn,!ack`. The default rule (no `tcpflags` line) matches every TCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlagRule {
    pub must_set: u8,
    pub must_clear: u8,
}

impl FlagRule {
    /// The rule that matches any flags.
    pub const ANY: FlagRule = FlagRule {
        must_set: 0,
        must_clear: 0,
    };

    /// Whether a TCP packet with these flags satisfies the rule.
    #[inline]
    pub fn matches(self, flags: u8) -> bool {
        flags & self.must_set == self.must_set && flags & self.must_clear == 0
    }

    /// Whether the rule constrains anything.
    pub fn is_any(self) -> bool {
        self.must_set == 0 && self.must_clear == 0
    }
}

/// Error of [`parse_flag_rule`]: names the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagRuleError {
    #[error(
        "unknown TCP flag \"{0}\" (expected fin, syn, rst, psh, ack or urg, optionally prefixed by !)"
    )]
    Unknown(String),
    #[error("TCP flag \"{0}\" is both required and forbidden")]
    Contradiction(String),
}

/// Parses a comma-separated list of flag names, each optionally negated with `!`
/// (`syn,!ack`). Names are case-insensitive and blanks around commas are allowed (knockd does
/// not allow them). An empty list is an error.
pub fn parse_flag_rule(s: &str) -> Result<FlagRule, FlagRuleError> {
    let mut rule = FlagRule::ANY;
    for raw in s.split(',') {
        let token = raw.trim();
        let (negated, name) = match token.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, token),
        };
        let bit = NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, b)| b)
            .ok_or_else(|| FlagRuleError::Unknown(token.to_string()))?;
        if negated {
            rule.must_clear |= bit;
        } else {
            rule.must_set |= bit;
        }
        if rule.must_set & rule.must_clear != 0 {
            return Err(FlagRuleError::Contradiction(name.to_ascii_lowercase()));
        }
    }
    Ok(rule)
}

/// Writes flags the way tcpdump does (`S`, `SA`, `R`...), for debug output.
pub struct FlagsDisplay(pub u8);

impl fmt::Display for FlagsDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (c, b) in [
            ('F', bits::FIN),
            ('S', bits::SYN),
            ('R', bits::RST),
            ('P', bits::PSH),
            ('A', bits::ACK),
            ('U', bits::URG),
        ] {
            if self.0 & b != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for FlagRule {
    /// Writes the rule back in knockd.conf syntax (`syn,!ack`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, bit) in NAMES {
            for (set, neg) in [(self.must_set, ""), (self.must_clear, "!")] {
                if set & bit != 0 {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{neg}{name}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::bits::*;
    use super::*;

    #[test]
    fn syn_matches_syn_ack_unless_negated() {
        let syn = parse_flag_rule("syn").unwrap();
        assert!(syn.matches(SYN));
        assert!(syn.matches(SYN | ACK));
        assert!(!syn.matches(ACK));
        let strict = parse_flag_rule("syn , !ack").unwrap();
        assert!(strict.matches(SYN));
        assert!(!strict.matches(SYN | ACK));
        assert_eq!(strict.to_string(), "syn,!ack");
    }

    #[test]
    fn all_names_case_insensitive() {
        let r = parse_flag_rule("FIN,Syn,rst,psh,ack,URG").unwrap();
        assert_eq!(r.must_set, 0x3f);
        assert!(FlagRule::ANY.matches(0));
    }

    #[test]
    fn errors_name_the_token() {
        assert_eq!(
            parse_flag_rule("syn,foo"),
            Err(FlagRuleError::Unknown("foo".into()))
        );
        assert_eq!(parse_flag_rule(""), Err(FlagRuleError::Unknown("".into())));
        assert_eq!(
            parse_flag_rule("syn,!syn"),
            Err(FlagRuleError::Contradiction("syn".into()))
        );
    }
}
