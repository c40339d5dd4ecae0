//! Small parsers for command-line values: where consuming starts, durations,
//! headers, acks, codecs.

use std::time::Duration;

use kafka_sansio::records::Compression;

/// Where `consume -o` starts, per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start.
    Beginning,
    /// The log end (only new records).
    End,
    /// The group's committed offset (with `-G`), else the log start.
    Stored,
    /// This absolute offset.
    Offset(i64),
    /// This many records before the end (`-N`).
    FromEnd(i64),
    /// The first record at or after this timestamp in ms (`@TS`).
    Timestamp(i64),
}

/// Parses `beginning|end|stored|N|-N|@TIMESTAMP_MS`.
pub fn parse_start(text: &str) -> Result<StartAt, String> {
    let bad = || {
        format!(
            "offset {text:?}: expected beginning, end, stored, an offset N, -N (N before the end) or @TIMESTAMP_MS"
        )
    };
    Ok(match text {
        "beginning" | "earliest" => StartAt::Beginning,
        "end" | "latest" => StartAt::End,
        "stored" | "committed" => StartAt::Stored,
        _ => {
            if let Some(ts) = text.strip_prefix('@') {
                let ts: i64 = ts.parse().map_err(|_| bad())?;
                if ts < 0 {
                    return Err(bad());
                }
                StartAt::Timestamp(ts)
            } else if let Some(n) = text.strip_prefix('-') {
                let n: i64 = n.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Err(bad());
                }
                StartAt::FromEnd(n)
            } else {
                let n: i64 = text.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Err(bad());
                }
                StartAt::Offset(n)
            }
        }
    })
}

/// The start offset for `-N` given a partition's log start and end.
pub fn from_end(log_start: i64, log_end: i64, n: i64) -> i64 {
    log_end.saturating_sub(n).max(log_start)
}

/// Parses a duration: a number with a unit `ms`, `s`, `m` or `h` (a bare number is
/// seconds), fractions allowed (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("duration {text:?}: expected a number with ms, s, m or h"))?;
    if !value.is_finite() || value < 0.0 || value * scale > 1e9 {
        return Err(format!("duration {text:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// Parses a header `KEY=VALUE` (`KEY` alone: a null value).
pub fn parse_header(text: &str) -> Result<(String, Option<Vec<u8>>), String> {
    let (k, v) = match text.split_once('=') {
        Some((k, v)) => (k, Some(v.as_bytes().to_vec())),
        None => (text, None),
    };
    if k.is_empty() {
        return Err(format!("header {text:?}: expected KEY=VALUE"));
    }
    Ok((k.to_owned(), v))
}

/// Parses acks: `all`/`-1`, `1`, `0`.
pub fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "all" | "-1" => Ok(-1),
        "1" | "leader" => Ok(1),
        "0" | "none" => Ok(0),
        _ => Err(format!("acks {text:?}: expected all, 1 or 0")),
    }
}

/// Parses a codec name.
pub fn parse_compression(text: &str) -> Result<Compression, String> {
    match text {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(format!(
            "compression {text:?}: expected none, gzip, snappy, lz4 or zstd"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_specs() {
        assert_eq!(parse_start("beginning"), Ok(StartAt::Beginning));
        assert_eq!(parse_start("end"), Ok(StartAt::End));
        assert_eq!(parse_start("stored"), Ok(StartAt::Stored));
        assert_eq!(parse_start("17"), Ok(StartAt::Offset(17)));
        assert_eq!(parse_start("-5"), Ok(StartAt::FromEnd(5)));
        assert_eq!(
            parse_start("@1700000000000"),
            Ok(StartAt::Timestamp(1_700_000_000_000))
        );
        for bad in ["", "x", "--5", "@", "@-1", "1.5", "-", "@abc"] {
            assert!(parse_start(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn from_end_stays_in_the_log() {
        assert_eq!(from_end(0, 100, 10), 90);
        assert_eq!(from_end(95, 100, 10), 95);
        assert_eq!(from_end(0, 3, 10), 0);
        assert_eq!(from_end(0, 100, 0), 100);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1e300h").is_err());
    }

    #[test]
    fn headers_acks_codecs() {
        assert_eq!(
            parse_header("a=b=c"),
            Ok(("a".into(), Some(b"b=c".to_vec())))
        );
        assert_eq!(parse_header("flag"), Ok(("flag".into(), None)));
        assert!(parse_header("=v").is_err());
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
        assert_eq!(parse_compression("zstd"), Ok(Compression::Zstd));
        assert!(parse_compression("brotli").is_err());
    }
}
