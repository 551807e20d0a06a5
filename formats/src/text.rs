//! Values from text, as Flink's text formats write them: decimals and SQL timestamps.

use chrono::{Datelike, NaiveDate, NaiveDateTime};

/// Parses a decimal literal into an unscaled integer at `scale`, rejecting values that need
/// more than `precision` digits or more fractional digits than `scale`... rounding half up.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = scale.max(0) as usize;
    let mut v: i128 = 0;
    for b in int_part.bytes() {
        v = v.checked_mul(10)?.checked_add((b - b'0') as i128)?;
    }
    let frac = frac_part.as_bytes();
    for i in 0..scale {
        let d = frac.get(i).map_or(0, |b| (b - b'0') as i128);
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    if frac.get(scale).is_some_and(|b| *b >= b'5') {
        v += 1;
    }
    if v >= 10i128.pow(precision as u32) {
        return None;
    }
    Some(if neg { -v } else { v })
}

/// Parses `yyyy-MM-dd HH:mm:ss[.fff]` (Flink's SQL format) or the ISO form with `T`.
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    if let Some(ms) = sql_timestamp_ms(text.as_bytes()) {
        return Some(ms);
    }
    // Shorter and unusual forms; chrono's format interpreter is about 10x slower than the
    // fixed layout above, which every Flink-written file uses.
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|d| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis()
    })
}

/// The fixed layout `yyyy-MM-dd[ T]HH:mm:ss[.f{1,9}]`, read by position; fractions beyond
/// milliseconds are truncated, as chrono's `timestamp_millis` does. `None` for anything else.
fn sql_timestamp_ms(b: &[u8]) -> Option<i64> {
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + (d - b'0') as u32)
        })
    };
    let date = NaiveDate::from_ymd_opt(
        number(&b[0..4])? as i32,
        number(&b[5..7])?,
        number(&b[8..10])?,
    )?;
    let (h, m, s) = (
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
    );
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let millis = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..]
            if (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit) =>
        {
            let kept = &fraction[..fraction.len().min(3)];
            number(kept)? * 10u32.pow(3 - kept.len() as u32)
        }
        _ => return None,
    };
    const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
    let days = date.num_days_from_ce() as i64 - UNIX_EPOCH_DAYS_FROM_CE;
    Some((days * 86_400 + (h * 3600 + m * 60 + s) as i64) * 1000 + millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_at_scale() {
        assert_eq!(parse_decimal("12.3456", 10, 3), Some(12346));
        assert_eq!(parse_decimal("-0.5", 5, 0), Some(-1));
        assert_eq!(parse_decimal("7", 5, 2), Some(700));
        assert_eq!(parse_decimal("1234", 3, 0), None);
        assert_eq!(parse_decimal("1e5", 10, 0), None);
    }

    #[test]
    fn the_fixed_layout_agrees_with_chrono() {
        let chrono_ms = |t: &str| {
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
                .map(|dt| dt.and_utc().timestamp_millis())
        };
        for t in [
            "2015-07-15 00:00:00.000",
            "2015-07-15 23:59:59.999",
            "1969-12-31 23:59:59.5",
            "1900-02-28T12:00:00.123456789",
            "2024-02-29 01:02:03.04",
            "0001-01-01 00:00:00",
        ] {
            assert_eq!(sql_timestamp_ms(t.as_bytes()), chrono_ms(t), "{t}");
            assert!(sql_timestamp_ms(t.as_bytes()).is_some(), "{t}");
        }
        for bad in [
            "2015-02-29 00:00:00",
            "2015-07-15 24:00:00",
            "2015-07-15 00:00:00.",
            "2015-07-15 00:00:00.1234567890",
            "2015-07-15 00:00:0x",
            "2015-7-15 00:00:00",
        ] {
            assert_eq!(sql_timestamp_ms(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_in_sql_and_iso_forms() {
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:01.5"), Some(1500));
        assert_eq!(parse_timestamp_ms("1970-01-01T00:01:00"), Some(60_000));
        assert_eq!(parse_timestamp_ms("yesterday"), None);
    }
}
