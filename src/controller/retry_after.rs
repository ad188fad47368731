//! `Retry-After` (RFC 9110 §10.2.3): a number of seconds or an HTTP-date, read against the
//! client's clock.
//!
//! HTTP-dates come in three spellings (RFC 9110 §5.6.7) and a recipient must read all of
//! them: `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT` and
//! `Sun Nov  6 08:49:37 1994`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// How long `value` asks the client to wait from `now`: zero for a date already past, `None`
/// for anything unreadable.
pub(crate) fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = UNIX_EPOCH + Duration::from_secs(parse_http_date(value)?);
    Some(at.duration_since(now).unwrap_or_default())
}

/// Seconds since the Unix epoch of an HTTP-date in any of its three spellings.
fn parse_http_date(value: &str) -> Option<u64> {
    let cleaned = value.replace([',', '-'], " ");
    let fields: Vec<&str> = cleaned.split_ascii_whitespace().collect();
    let (day, month, year, time) = match fields[..] {
        // IMF-fixdate and RFC 850: weekday, day, month, year, time, GMT.
        [_, day, month, year, time, "GMT"] => (day, month, year, time),
        // asctime: weekday, month, day, time, year.
        [_, month, day, time, year] => (day, month, year, time),
        _ => return None,
    };
    let year = match (year.len(), number(year)?) {
        // RFC 850's two-digit years: the century that makes the date nearest to now.
        (2, yy) => yy + if yy < 70 { 2000 } else { 1900 },
        (4, yyyy) if yyyy >= 1970 => yyyy,
        _ => return None,
    };
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let day = number(day).filter(|d| (1..=days_in_month(year, month)).contains(d))?;
    let [h, m, s] = clock_time(time)?;
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// `hh:mm:ss`, each part in range (a leap second reads as :59).
fn clock_time(time: &str) -> Option<[u64; 3]> {
    let mut parts = time.split(':').map(number);
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || time.len() != 8 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some([h, m, s.min(59)])
}

fn number(digits: &str) -> Option<u64> {
    (!digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date on or after it (the proleptic Gregorian calendar).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    // Howard Hinnant's algorithm, with years starting in March so leap days come last.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `time` as an IMF-fixdate, the spelling servers send (whole seconds, rounded down).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn format_http_date(time: SystemTime) -> String {
    // 1970-01-01 was a Thursday.
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let days = secs / 86_400;
    // The inverse of `days_from_civil`.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let rest = secs % 86_400;
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn reads_seconds_and_the_three_date_spellings() {
        let now = at(784_111_777 - 30); // 1994-11-06 08:49:07 UTC
        assert_eq!(parse(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse(date, now), Some(Duration::from_secs(30)), "{date}");
        }
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        let now = at(0);
        for junk in [
            "",
            "-5",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(parse(junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn formats_what_it_reads() {
        assert_eq!(
            format_http_date(at(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        for secs in [0, 951_782_400, 1_767_225_600, 4_102_444_799] {
            let text = format_http_date(at(secs));
            assert_eq!(parse_http_date(&text), Some(secs), "{text}");
        }
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
    }
}
