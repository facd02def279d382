//! Time-of-day windows for scheduled doors (`schedule = Mon-Fri 09:50-19:10`).
//!
//! A schedule is one or more windows separated by `;`, each `DAYS HH:MM-HH:MM` where DAYS is a
//! comma list of day names or ranges (`Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri`) or `*` / `daily` for
//! every day. A window whose end is before its start crosses midnight (`Fri 22:00-02:00` is open
//! from Friday 22:00 to Saturday 02:00). Times are the host's local time; the evaluation here is
//! pure and takes the local weekday and minute as arguments.

use std::fmt;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A day of the week, Monday = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Weekday(u8);

impl Weekday {
    /// Monday = 0 ... Sunday = 6; `None` past 6.
    pub fn from_monday0(n: u8) -> Option<Weekday> {
        (n < 7).then_some(Weekday(n))
    }

    pub fn index(self) -> u8 {
        self.0
    }

    /// English name as nftables' `meta day` expects it (`Monday`).
    pub fn long_name(self) -> &'static str {
        LONG_DAYS[usize::from(self.0)]
    }

    fn next(self) -> Weekday {
        Weekday((self.0 + 1) % 7)
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DAYS[usize::from(self.0)])
    }
}

/// One window: a set of days and a minute range of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Bit `n` set = the window starts on weekday `n` (Monday = 0).
    pub days: u8,
    /// Start, minutes after local midnight (0..1440).
    pub start: u16,
    /// End, minutes after local midnight (0..=1440); before `start` when crossing midnight.
    pub end: u16,
}

impl Window {
    /// Whether the window crosses midnight.
    pub fn wraps(&self) -> bool {
        self.end <= self.start
    }

    fn contains(&self, day: Weekday, minute: u16) -> bool {
        let starts_on = |d: Weekday| self.days & (1 << d.0) != 0;
        if !self.wraps() {
            return starts_on(day) && minute >= self.start && minute < self.end;
        }
        // Crossing midnight: the evening part belongs to `day`, the morning part to the day before.
        let yesterday = Weekday((day.0 + 6) % 7);
        (starts_on(day) && minute >= self.start) || (starts_on(yesterday) && minute < self.end)
    }

    /// The days on which the window's morning part (after midnight) falls, for a wrapping window.
    pub fn morning_days(&self) -> u8 {
        let mut out = 0u8;
        for d in 0..7u8 {
            if self.days & (1 << d) != 0 {
                out |= 1 << Weekday(d).next().0;
            }
        }
        out
    }
}

/// A parsed `schedule =` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule {
    pub windows: Vec<Window>,
}

impl Schedule {
    /// Whether the door is open at this local weekday and minute of the day (0..1440).
    pub fn is_open(&self, day: Weekday, minute: u16) -> bool {
        self.windows.iter().any(|w| w.contains(day, minute))
    }
}

/// Error of [`parse_schedule`], naming the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("bad day \"{0}\" in schedule (expected Mon..Sun, a range like Mon-Fri, or *)")]
    Day(String),
    #[error("bad time range \"{0}\" in schedule (expected HH:MM-HH:MM)")]
    Times(String),
    #[error("bad schedule window \"{0}\" (expected DAYS HH:MM-HH:MM, e.g. Mon-Fri 09:50-19:10)")]
    Shape(String),
    #[error("empty time range \"{0}\" in schedule")]
    Empty(String),
}

fn parse_day(s: &str) -> Result<u8, ScheduleError> {
    DAYS.iter()
        .zip(LONG_DAYS)
        .position(|(short, long)| s.eq_ignore_ascii_case(short) || s.eq_ignore_ascii_case(long))
        .map(|i| i as u8)
        .ok_or_else(|| ScheduleError::Day(s.to_string()))
}

fn parse_days(s: &str) -> Result<u8, ScheduleError> {
    if s == "*" || s.eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let mut mask = 0u8;
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a.trim())?, parse_day(b.trim())?);
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << parse_day(part)?,
        }
    }
    Ok(mask)
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Parses a `schedule =` value.
pub fn parse_schedule(s: &str) -> Result<Schedule, ScheduleError> {
    let mut windows = Vec::new();
    for raw in s.split(';') {
        let w = raw.trim();
        let (days, times) = w
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| ScheduleError::Shape(w.to_string()))?;
        let days = parse_days(days.trim())?;
        let (a, b) = times
            .split_once('-')
            .ok_or_else(|| ScheduleError::Times(times.to_string()))?;
        let start = parse_hhmm(a).ok_or_else(|| ScheduleError::Times(times.to_string()))?;
        let end = parse_hhmm(b).ok_or_else(|| ScheduleError::Times(times.to_string()))?;
        if start == end || start == 1440 {
            return Err(ScheduleError::Empty(times.to_string()));
        }
        windows.push(Window { days, start, end });
    }
    Ok(Schedule { windows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u8) -> Weekday {
        Weekday::from_monday0(n).unwrap()
    }

    #[test]
    fn working_hours() {
        let s = parse_schedule("Mon-Fri 09:50-19:10").unwrap();
        assert_eq!(s.windows[0].days, 0b0011111);
        assert!(s.is_open(day(0), 9 * 60 + 50));
        assert!(s.is_open(day(4), 19 * 60 + 9));
        assert!(!s.is_open(day(4), 19 * 60 + 10));
        assert!(!s.is_open(day(5), 12 * 60));
        assert!(!s.is_open(day(2), 9 * 60 + 49));
    }

    #[test]
    fn lists_ranges_wrap_and_all() {
        let s = parse_schedule("sat,Sunday 10:00-12:00; Fri-Mon 22:00-02:00").unwrap();
        assert_eq!(s.windows[0].days, 0b1100000);
        assert_eq!(s.windows[1].days, 0b1110001);
        assert!(s.windows[1].wraps());
        assert!(s.is_open(day(5), 11 * 60));
        assert!(s.is_open(day(4), 23 * 60));
        assert!(s.is_open(day(1), 60)); // Tuesday 01:00 is Monday night
        assert!(!s.is_open(day(2), 60)); // Wednesday 01:00: Tuesday is not in Fri-Mon
        assert_eq!(s.windows[1].morning_days(), 0b1100011);
        let all = parse_schedule("* 00:00-24:00").unwrap();
        assert!(all.is_open(day(3), 1439));
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_schedule("Mon-Fry 09:00-10:00"),
            Err(ScheduleError::Day("Fry".into()))
        );
        assert_eq!(
            parse_schedule("Mon 9-10"),
            Err(ScheduleError::Times("9-10".into()))
        );
        assert_eq!(
            parse_schedule("Mon 09:00-25:00"),
            Err(ScheduleError::Times("09:00-25:00".into()))
        );
        assert_eq!(
            parse_schedule("09:00-10:00"),
            Err(ScheduleError::Shape("09:00-10:00".into()))
        );
        assert_eq!(
            parse_schedule("Mon 10:00-10:00"),
            Err(ScheduleError::Empty("10:00-10:00".into()))
        );
    }
}
