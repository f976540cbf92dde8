//! OHLCV bars and the CSV reader that streams them.
//!
//! The reader accepts what researchers actually have on disk: a header row
//! whose time column is named `date`, `datetime`, `timestamp` or `time` (any
//! case) or is the unnamed first column (as backtesting.py's `GOOG.csv`),
//! `open`, `high`, `low`, `close`, `volume` in any case and order, and an
//! optional `symbol` column (then the file holds one stream per symbol).
//! Times are dates (`2004-08-19`, midnight UTC), date-times
//! (`2004-08-19 09:30:00`, `2004-08-19T09:30:00Z`, with an optional UTC
//! offset) or integer epoch seconds.
//!
//! Every bad row is an error naming its line and column; nothing is
//! skipped or defaulted. Within one symbol the times must increase, since a
//! streaming pipeline cannot take a bar back.

use std::collections::BTreeMap;
use std::io::Read;

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// Longest symbol accepted, in bytes.
pub const MAX_SYMBOL_LEN: usize = 64;

/// Most distinct symbols one file may hold (each keeps a pipeline's state).
pub const MAX_SYMBOLS: usize = 10_000;

/// One OHLCV bar of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The instrument.
    pub symbol: String,
    /// The bar's time, epoch seconds UTC.
    pub ts: i64,
    /// Opening price, finite and positive.
    pub open: f64,
    /// Highest price, finite and positive.
    pub high: f64,
    /// Lowest price, finite and positive.
    pub low: f64,
    /// Closing price, finite and positive.
    pub close: f64,
    /// Traded volume, finite and not negative (zero is a real bar).
    pub volume: f64,
}

/// Why a bar file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarError {
    /// The header lacks a column or has an ambiguous one.
    #[error("header: {0}")]
    Header(String),
    /// A row is bad; `line` is 1-based and counts the header.
    #[error("line {line}, column `{column}`: {message}")]
    Row {
        /// The 1-based line.
        line: u64,
        /// The column's header name (or `time` for an unnamed time column).
        column: String,
        /// What is wrong.
        message: String,
    },
    /// The file cannot be read or is not CSV.
    #[error("line {line}: {message}")]
    Csv {
        /// The 1-based line, as far as known.
        line: u64,
        /// The reader's message.
        message: String,
    },
}

impl BarError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BarError::Header(_) => "bars.header",
            BarError::Row { .. } => "bars.row",
            BarError::Csv { .. } => "bars.csv",
        }
    }
}

/// Where each field sits in a row.
#[derive(Debug, Clone)]
struct Columns {
    time: (usize, String),
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    volume: usize,
    symbol: Option<usize>,
    names: Vec<String>,
}

const TIME_NAMES: [&str; 4] = ["date", "datetime", "timestamp", "time"];

fn columns(header: &csv::StringRecord) -> Result<Columns, BarError> {
    let names: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    let find = |wanted: &str| -> Result<Option<usize>, BarError> {
        let hits: Vec<usize> =
            names.iter().enumerate().filter(|(_, n)| n.eq_ignore_ascii_case(wanted)).map(|(i, _)| i).collect();
        match hits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(BarError::Header(format!("column `{wanted}` appears {} times", hits.len()))),
        }
    };
    let required = |wanted: &str| -> Result<usize, BarError> {
        find(wanted)?.ok_or_else(|| BarError::Header(format!("no `{wanted}` column (have {})", names.join(", "))))
    };
    let mut time = None;
    for wanted in TIME_NAMES {
        if let Some(i) = find(wanted)? {
            if let Some((_, first)) = &time {
                return Err(BarError::Header(format!("two time columns, `{first}` and `{}`", names[i])));
            }
            time = Some((i, names[i].clone()));
        }
    }
    let time = match time {
        Some(t) => t,
        None if names.first().is_some_and(|n| n.is_empty()) => (0, "time".to_owned()),
        None => {
            return Err(BarError::Header(
                "no time column: name one date, datetime, timestamp or time, or leave the first column unnamed".into(),
            ));
        }
    };
    Ok(Columns {
        time,
        open: required("open")?,
        high: required("high")?,
        low: required("low")?,
        close: required("close")?,
        volume: required("volume")?,
        symbol: find("symbol")?,
        names,
    })
}

/// Streams bars from CSV, one row at a time.
pub struct BarReader<R: Read> {
    rows: csv::StringRecordsIntoIter<R>,
    columns: Columns,
    default_symbol: String,
    last_ts: BTreeMap<String, i64>,
    record_line: u64,
}

impl<R: Read> std::fmt::Debug for BarReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BarReader").field("columns", &self.columns.names).finish_non_exhaustive()
    }
}

impl<R: Read> BarReader<R> {
    /// Reads the header. `default_symbol` names the stream when the file
    /// has no `symbol` column.
    pub fn new(reader: R, default_symbol: &str) -> Result<BarReader<R>, BarError> {
        check_symbol(default_symbol).map_err(|m| BarError::Header(format!("symbol `{default_symbol}`: {m}")))?;
        let mut csv = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(reader);
        let header = csv.headers().map_err(|e| csv_error(&e, 1))?.clone();
        let columns = columns(&header)?;
        Ok(BarReader {
            rows: csv.into_records(),
            columns,
            default_symbol: default_symbol.to_owned(),
            last_ts: BTreeMap::new(),
            record_line: 1,
        })
    }

    fn bar(&mut self, row: &csv::StringRecord, line: u64) -> Result<Bar, BarError> {
        let c = &self.columns;
        let err = |i: usize, message: String| BarError::Row {
            line,
            column: if i == c.time.0 { c.time.1.clone() } else { c.names[i].clone() },
            message,
        };
        let field = |i: usize| row.get(i).unwrap_or("").trim();
        let ts = parse_time(field(c.time.0)).map_err(|m| err(c.time.0, m))?;
        let price = |i: usize| -> Result<f64, BarError> {
            let v = parse_number(field(i)).map_err(|m| err(i, m))?;
            if v > 0.0 { Ok(v) } else { Err(err(i, format!("price {v} is not positive"))) }
        };
        let (open, high, low, close) = (price(c.open)?, price(c.high)?, price(c.low)?, price(c.close)?);
        let volume = parse_number(field(c.volume)).map_err(|m| err(c.volume, m))?;
        if volume < 0.0 {
            return Err(err(c.volume, format!("volume {volume} is negative")));
        }
        if low > high {
            return Err(err(c.low, format!("low {low} is above high {high}")));
        }
        let symbol = match c.symbol {
            Some(i) => {
                let s = field(i);
                check_symbol(s).map_err(|m| err(i, m))?;
                s.to_owned()
            }
            None => self.default_symbol.clone(),
        };
        let time_col = c.time.0;
        match self.last_ts.get(&symbol) {
            Some(&prev) if ts <= prev => {
                return Err(err(
                    time_col,
                    format!("time {} of `{symbol}` is not after the previous bar's {}", rfc3339(ts), rfc3339(prev)),
                ));
            }
            None if self.last_ts.len() >= MAX_SYMBOLS => {
                return Err(err(time_col, format!("more than {MAX_SYMBOLS} symbols in one file")));
            }
            _ => {}
        }
        self.last_ts.insert(symbol.clone(), ts);
        Ok(Bar { symbol, ts, open, high, low, close, volume })
    }
}

impl<R: Read> Iterator for BarReader<R> {
    type Item = Result<Bar, BarError>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = match self.rows.next()? {
            Ok(row) => row,
            Err(e) => return Some(Err(csv_error(&e, self.record_line + 1))),
        };
        let line = row.position().map_or(self.record_line + 1, |p| p.line());
        self.record_line = line;
        Some(self.bar(&row, line))
    }
}

/// `n` bars of symbol `SYN` from `start_ts`, one every `step_seconds`: a
/// seeded random walk of ±1 % a bar from 100 (xorshift, the same on every
/// machine), for fixtures and benchmarks.
pub fn random_walk(n: usize, start_ts: i64, step_seconds: i64) -> Vec<Bar> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut close = 100.0;
    (0..n)
        .map(|i| {
            let open = close;
            close = (close * (1.0 + (next() - 0.5) * 0.02)).max(1.0);
            Bar {
                symbol: "SYN".into(),
                ts: start_ts + i as i64 * step_seconds,
                open,
                high: open.max(close) * (1.0 + next() * 0.005),
                low: open.min(close) * (1.0 - next() * 0.005),
                close,
                volume: (next() * 1e6).floor(),
            }
        })
        .collect()
}

/// Reads every bar of a CSV document.
pub fn read_bars(reader: impl Read, default_symbol: &str) -> Result<Vec<Bar>, BarError> {
    BarReader::new(reader, default_symbol)?.collect()
}

fn csv_error(e: &csv::Error, fallback_line: u64) -> BarError {
    let line = e.position().map_or(fallback_line, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        _ => e.to_string(),
    };
    BarError::Csv { line, message }
}

fn check_symbol(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the symbol is empty".into());
    }
    if s.len() > MAX_SYMBOL_LEN {
        return Err(format!("the symbol is longer than {MAX_SYMBOL_LEN} bytes"));
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:/^=".contains(&b)) {
        return Err(format!("symbol `{s}` has characters other than letters, digits and `._-:/^=`"));
    }
    Ok(())
}

fn parse_number(s: &str) -> Result<f64, String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() { Ok(v) } else { Err(format!("`{s}` is not finite")) }
}

/// Parses a bar time: a date, a date-time (optionally with `Z` or a UTC
/// offset) or integer epoch seconds. Returns epoch seconds UTC.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Err("empty time".into());
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.bytes().all(|b| b.is_ascii_digit()) && !digits.is_empty() {
        if digits.len() > 12 {
            return Err(format!("`{s}` is too large for epoch seconds (milliseconds are not accepted)"));
        }
        return s.parse().map_err(|_| format!("`{s}` is not epoch seconds"));
    }
    parse_datetime(s).ok_or_else(|| {
        format!("`{s}` is not a date (YYYY-MM-DD), a date-time (YYYY-MM-DD HH:MM[:SS][Z|±HH:MM]) or epoch seconds")
    })
}

fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(num(8..10)?).ok()?).ok()?;
    if b.len() == 10 {
        return Some(date.midnight().assume_utc().unix_timestamp());
    }
    if !matches!(b.get(10), Some(b' ' | b'T' | b't')) || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = u8::try_from(num(11..13)?).ok()?;
    let minute = u8::try_from(num(14..16)?).ok()?;
    let mut at = 16;
    let mut second = 0u8;
    if b.get(at) == Some(&b':') {
        second = u8::try_from(num(17..19)?).ok()?;
        at = 19;
        if b.get(at) == Some(&b'.') {
            let end = b[at + 1..].iter().position(|c| !c.is_ascii_digit()).map_or(b.len(), |p| p + at + 1);
            // Bars are whole seconds; a fraction is accepted only when it is zero.
            if end == at + 1 || !b[at + 1..end].iter().all(|&c| c == b'0') {
                return None;
            }
            at = end;
        }
    }
    let time = Time::from_hms(hour, minute, second).ok()?;
    let offset = match &s[at..] {
        "" | "Z" | "z" | "+00:00" | "UTC" => UtcOffset::UTC,
        rest => {
            let rb = rest.as_bytes();
            let sign: i8 = match rb.first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let h = i8::try_from(num(at + 1..at + 3)?).ok()?;
            let m = i8::try_from(num(at + 4..at + 6)?).ok()?;
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset).unix_timestamp())
}

/// Formats epoch seconds as RFC 3339 UTC, such as `2004-08-19T00:00:00Z`.
pub fn rfc3339(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("@{ts}"))
}

/// Parses RFC 3339 (or any time [`parse_time`] accepts) into epoch seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    parse_time(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Bar>, BarError> {
        read_bars(text.as_bytes(), "X")
    }

    #[test]
    fn an_unnamed_first_column_is_the_time_as_in_backtesting_goog() {
        let bars = read(",Open,High,Low,Close,Volume\n2004-08-19,100,104.06,95.96,100.34,22351900\n").unwrap();
        assert_eq!(bars[0].ts, 1_092_873_600);
        assert_eq!(bars[0].symbol, "X");
        assert_eq!(bars[0].close, 100.34);
    }

    #[test]
    fn time_columns_are_found_by_any_of_four_names_in_any_case() {
        for name in ["date", "DateTime", "TIMESTAMP", "Time"] {
            let text = format!("{name},OPEN,high,Low,close,Volume\n1700000000,1,2,1,2,0\n");
            assert_eq!(read(&text).unwrap()[0].ts, 1_700_000_000, "{name}");
        }
    }

    #[test]
    fn dates_date_times_and_offsets_agree_on_the_same_instant() {
        let want = 1_092_925_800; // 2004-08-19T14:30:00Z
        for s in [
            "2004-08-19 14:30:00",
            "2004-08-19T14:30:00Z",
            "2004-08-19T10:30:00-04:00",
            "2004-08-19 14:30",
            "2004-08-19T14:30:00.000Z",
            "1092925800",
        ] {
            assert_eq!(parse_time(s), Ok(want), "{s}");
        }
        assert!(parse_time("2004-02-30").is_err());
        assert!(parse_time("2004-08-19T14:30:00.5Z").is_err());
        assert!(parse_time("1700000000000").unwrap_err().contains("milliseconds"));
    }

    #[test]
    fn a_symbol_column_splits_the_file_into_streams_each_in_time_order() {
        let text = "date,symbol,open,high,low,close,volume\n2020-01-01,A,1,1,1,1,1\n2020-01-01,B,2,2,2,2,2\n2020-01-02,A,1,1,1,1,1\n";
        let bars = read(text).unwrap();
        assert_eq!(bars.iter().map(|b| b.symbol.as_str()).collect::<Vec<_>>(), ["A", "B", "A"]);
        let back = "date,symbol,open,high,low,close,volume\n2020-01-02,A,1,1,1,1,1\n2020-01-01,A,1,1,1,1,1\n";
        let err = read(back).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3, column `date`: time 2020-01-01T00:00:00Z of `A` is not after the previous bar's 2020-01-02T00:00:00Z"
        );
    }

    #[test]
    fn a_bad_row_names_its_line_and_column() {
        let text = "Date,Open,High,Low,Close,Volume\n2020-01-01,1,2,1,2,5\n2020-01-02,1,2,x,2,5\n";
        assert_eq!(read(text).unwrap_err().to_string(), "line 3, column `Low`: `x` is not a number");
        let text = "Date,Open,High,Low,Close,Volume\nyesterday,1,2,1,2,5\n";
        assert!(read(text).unwrap_err().to_string().starts_with("line 2, column `Date`: `yesterday` is not a date"));
        let text = "Date,Open,High,Low,Close,Volume\n2020-01-01,1,2,1,0,5\n";
        assert_eq!(read(text).unwrap_err().to_string(), "line 2, column `Close`: price 0 is not positive");
        let text = "Date,Open,High,Low,Close,Volume\n2020-01-01,1,2,1,2,NaN\n";
        assert_eq!(read(text).unwrap_err().to_string(), "line 2, column `Volume`: `NaN` is not finite");
        let text = "Date,Open,High,Low,Close,Volume\n2020-01-01,1,2,1,2\n";
        assert_eq!(read(text).unwrap_err().to_string(), "line 2: 5 fields where the header has 6");
    }

    #[test]
    fn a_header_without_a_required_column_says_which() {
        let err = read("date,open,high,low,close\n").unwrap_err();
        assert_eq!(err.to_string(), "header: no `volume` column (have date, open, high, low, close)");
        let err = read("open,high,low,close,volume\n").unwrap_err();
        assert!(err.to_string().contains("no time column"));
        let err = read("date,time,open,high,low,close,volume\n").unwrap_err();
        assert!(err.to_string().contains("two time columns"));
    }

    #[test]
    fn a_hostile_symbol_is_refused() {
        let text = format!("date,symbol,open,high,low,close,volume\n2020-01-01,{},1,1,1,1,1\n", "A".repeat(100));
        assert!(read(&text).unwrap_err().to_string().contains("longer than 64"));
        let text = "date,symbol,open,high,low,close,volume\n2020-01-01,a b,1,1,1,1,1\n";
        assert!(read(text).unwrap_err().to_string().contains("characters other than"));
    }

    #[test]
    fn rfc3339_is_utc_with_a_z() {
        assert_eq!(rfc3339(1_092_873_600), "2004-08-19T00:00:00Z");
    }
}
