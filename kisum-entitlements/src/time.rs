//! Instants and the injected clock. Every rule of the model is evaluated at an explicit instant, so every
//! test is deterministic; only the edge of a program asks a [`Clock`] for "now".

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

/// An instant, with nanosecond precision, parsed from and printed as RFC 3339.
///
/// Instants compare at full precision; all intervals of the model are half-open, so an instant equal to
/// an end is outside. Fractions finer than a nanosecond are refused rather than rounded, so that no two
/// distinct instants of a file ever compare equal.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// Why a string is not an RFC 3339 instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an RFC 3339 instant with an offset: {why}")]
pub struct TimeError {
    text: String,
    why: &'static str,
}

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// The instant `secs` seconds after the Unix epoch.
    pub const fn from_unix(secs: i64) -> Self {
        Timestamp { secs, nanos: 0 }
    }

    /// The instant `secs` seconds and `nanos` nanoseconds after the Unix epoch; `None` if `nanos` is not
    /// below one second.
    pub const fn from_unix_nanos(secs: i64, nanos: u32) -> Option<Self> {
        if nanos < 1_000_000_000 { Some(Timestamp { secs, nanos }) } else { None }
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// The sub-second part, in nanoseconds.
    pub const fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// This instant moved by `secs` seconds; `None` on overflow.
    pub fn checked_add_seconds(self, secs: i64) -> Option<Self> {
        Some(Timestamp { secs: self.secs.checked_add(secs)?, nanos: self.nanos })
    }

    /// The current wall-clock time. Prefer an injected [`Clock`] in anything that must be tested.
    pub fn now() -> Self {
        SystemClock.now()
    }

    /// Parses an RFC 3339 date-time with an offset (`Z` or `±HH:MM`), such as `2026-01-15T00:00:00Z`.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        parse_rfc3339(text).map_err(|why| TimeError { text: text.chars().take(64).collect(), why })
    }
}

fn parse_rfc3339(text: &str) -> Result<Timestamp, &'static str> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err("too short");
    }
    let num = |from: usize, len: usize| -> Result<i64, &'static str> {
        let digits = b.get(from..from + len).ok_or("truncated")?;
        digits.iter().try_fold(0i64, |acc, d| {
            if d.is_ascii_digit() { Ok(acc * 10 + i64::from(d - b'0')) } else { Err("expected a digit") }
        })
    };
    let sep = |at: usize, allowed: &[u8]| -> Result<(), &'static str> {
        match b.get(at) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err("unexpected separator"),
        }
    };
    let year = num(0, 4)?;
    sep(4, b"-")?;
    let month = num(5, 2)?;
    sep(7, b"-")?;
    let day = num(8, 2)?;
    sep(10, b"Tt")?;
    let hour = num(11, 2)?;
    sep(13, b":")?;
    let minute = num(14, 2)?;
    sep(16, b":")?;
    let second = num(17, 2)?;
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range");
    }
    if hour > 23 || minute > 59 {
        return Err("time out of range");
    }
    if second == 60 {
        return Err("leap seconds are not supported");
    }
    if second > 59 {
        return Err("second out of range");
    }
    let mut pos = 19;
    let mut nanos: u32 = 0;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 {
            return Err("empty fraction");
        }
        if digits > 9 {
            return Err("fractions finer than a nanosecond are not supported");
        }
        let frac = num(start, digits)?;
        // INVARIANT: at most 9 digits, so the scaled value is below 10^9 and fits in u32.
        nanos = u32::try_from(frac * 10i64.pow(9 - digits as u32)).map_err(|_| "fraction out of range")?;
    }
    let offset = match b.get(pos) {
        Some(b'Z' | b'z') => {
            pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(pos + 1, 2)?;
            sep(pos + 3, b":")?;
            let om = num(pos + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err("offset out of range");
            }
            let value = oh * 3600 + om * 60;
            pos += 6;
            if *sign == b'-' { -value } else { value }
        }
        _ => return Err("missing offset (`Z` or `±HH:MM`)"),
    };
    if pos != b.len() {
        return Err("trailing characters");
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Ok(Timestamp { secs, nanos })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with as many fraction digits as needed (none for whole seconds).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)?;
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("an RFC 3339 instant with an offset"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Timestamp")
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A source of "now", injected wherever a component needs the current time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp { secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX), nanos: d.subsec_nanos() },
            Err(e) => {
                let d = e.duration();
                let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => Timestamp { secs, nanos: 0 },
                    n => Timestamp { secs: secs - 1, nanos: 1_000_000_000 - n },
                }
            }
        }
    }
}

/// A clock that stands still until told to move: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock {
    secs: AtomicI64,
}

impl ManualClock {
    /// A clock showing `at` (whole seconds; the fraction is dropped).
    pub fn new(at: Timestamp) -> Self {
        ManualClock { secs: AtomicI64::new(at.secs) }
    }

    /// Moves the clock to `at` (whole seconds).
    pub fn set(&self, at: Timestamp) {
        self.secs.store(at.secs, Ordering::SeqCst);
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance(&self, secs: i64) {
        self.secs.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.secs.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_rfc3339() {
        assert_eq!(ts("1970-01-01T00:00:00Z"), Timestamp::UNIX_EPOCH);
        assert_eq!(ts("2026-01-15T00:00:00Z").unix_seconds(), 1_768_435_200);
        assert_eq!(ts("2026-01-15T01:00:00+01:00"), ts("2026-01-15T00:00:00Z"));
        assert_eq!(ts("2026-01-14T23:00:00-01:00"), ts("2026-01-15T00:00:00Z"));
        assert_eq!(ts("2024-02-29T12:30:45.5z").to_string(), "2024-02-29T12:30:45.5Z");
        assert_eq!(ts("1969-12-31T23:59:59.999999999Z").to_string(), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(ts("0001-01-01T00:00:00Z").to_string(), "0001-01-01T00:00:00Z");
        assert_eq!(ts("9999-12-31T23:59:59Z").to_string(), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn compares_at_full_precision() {
        assert!(ts("2026-01-15T00:00:00.000000001Z") > ts("2026-01-15T00:00:00Z"));
        assert!(ts("2026-01-15T00:00:00.1Z") < ts("2026-01-15T00:00:00.10000001Z"));
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-01-15",
            "2026-01-15T00:00:00",
            "2026-01-15 00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-15T24:00:00Z",
            "2026-01-15T00:00:60Z",
            "2026-01-15T00:00:00.Z",
            "2026-01-15T00:00:00.1234567891Z",
            "2026-01-15T00:00:00+0100",
            "2026-01-15T00:00:00Zjunk",
            "+2026-01-15T00:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(ts("2026-01-01T00:00:00Z"));
        clock.advance(60);
        assert_eq!(clock.now(), ts("2026-01-01T00:01:00Z"));
        assert!(SystemClock.now() > ts("2020-01-01T00:00:00Z"));
    }
}
