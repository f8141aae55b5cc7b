//! The lines the CLI writes on stderr (errors, and notes on a terminal), as
//! text (`idfcr: error: a.tif: ...`, the default) or, with `--log-format
//! json`, one JSON object per line for log collectors (journald, Loki, ELK)
//! that cron jobs and clusters feed: a failure's kind, file and input are
//! then fields, not words to parse out of a sentence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;

/// How stderr lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Set once, before any line is written (from the command line).
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

pub fn format() -> LogFormat {
    if JSON.load(Ordering::Relaxed) {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// `--log-format json` or `--log-format=json` among raw arguments: usage
/// errors are reported before clap has parsed anything, and a JSON consumer
/// must get those as JSON too.
pub fn format_in_args(args: &[std::ffi::OsString]) -> LogFormat {
    let json = args
        .iter()
        .zip(args.iter().skip(1).map(Some).chain([None]))
        .any(|(a, next)| {
            a == "--log-format=json" || (a == "--log-format" && next.is_some_and(|n| n == "json"))
        });
    if json {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// One stderr line (an error, or else a note): what happened, and, where known, the kind of failure,
/// the file it is about, the batch input it belongs to, the exit code.
#[derive(Debug, Default)]
pub struct Event<'a> {
    pub error: bool,
    /// A warning (not an error): the run went on.
    pub warning: bool,
    pub message: String,
    pub kind: Option<&'static str>,
    pub path: Option<String>,
    pub input: Option<&'a str>,
    pub exit_code: Option<i32>,
}

impl<'a> Event<'a> {
    pub fn info(message: impl Into<String>) -> Self {
        Event {
            message: message.into(),
            ..Event::default()
        }
    }

    /// A warning: something the user should know about a run that went on.
    pub fn warning(message: impl Into<String>) -> Self {
        Event {
            warning: true,
            message: message.into(),
            ..Event::default()
        }
    }

    /// An error with no `Error` behind it (a usage problem found by clap, a
    /// batch's tally).
    pub fn error(message: impl Into<String>, exit_code: i32) -> Self {
        Event {
            error: true,
            message: message.into(),
            exit_code: Some(exit_code),
            ..Event::default()
        }
    }

    /// A failure: its one line (`one_line`), kind, path and exit code all
    /// come from the error itself.
    pub fn failure(e: &Error) -> Self {
        let (kind, path) = match e {
            Error::Usage(_) => ("usage", None),
            Error::Input { path, .. } => ("input", Some(path.clone())),
            Error::Model { path, .. } => ("model", Some(path.display().to_string())),
            Error::Runtime(_) => ("runtime", None),
            Error::Output { path, .. } => ("output", Some(path.display().to_string())),
            Error::System(_) => ("system", None),
            Error::Interrupted => ("interrupted", None),
        };
        Event {
            error: true,
            message: one_line(e),
            kind: Some(kind),
            path,
            exit_code: Some(e.exit_code()),
            ..Event::default()
        }
    }

    /// The batch input this line is about.
    pub fn for_input(mut self, input: &'a str) -> Self {
        self.input = Some(input);
        self
    }
}

/// The line for `event` in `format`, written at `now` (JSON only carries
/// the time: a text line goes to a terminal or a cron mail that has its own).
pub fn render(event: &Event, format: LogFormat, now: SystemTime) -> String {
    match format {
        LogFormat::Text if event.error => format!("idfcr: error: {}", event.message),
        LogFormat::Text if event.warning => format!("idfcr: warning: {}", event.message),
        LogFormat::Text => format!("idfcr: {}", event.message),
        LogFormat::Json => {
            let mut o = serde_json::Map::new();
            o.insert("time".into(), rfc3339_utc(now).into());
            let level = match (event.error, event.warning) {
                (true, _) => "error",
                (false, true) => "warning",
                _ => "info",
            };
            o.insert("level".into(), level.into());
            o.insert("message".into(), event.message.clone().into());
            if let Some(k) = event.kind {
                o.insert("kind".into(), k.into());
            }
            if let Some(p) = &event.path {
                o.insert("path".into(), p.clone().into());
            }
            if let Some(i) = event.input {
                o.insert("input".into(), i.into());
            }
            if let Some(c) = event.exit_code {
                o.insert("exit_code".into(), c.into());
            }
            serde_json::Value::Object(o).to_string()
        }
    }
}

/// The one line of a failure: our message (it names the file and the
/// problem), then each underlying cause in anyhow's context chain that the
/// message does not already quote (most quote GDAL's text themselves).
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    for cause in anyhow::Chain::new(e).skip(1) {
        let text = cause.to_string();
        let text = text.lines().next().unwrap_or("").trim();
        if !text.is_empty() && !line.contains(text) {
            line.push_str(": ");
            line.push_str(text);
        }
    }
    line
}

/// Write `event` on stderr in the chosen format.
pub fn emit(event: &Event) {
    super::stderr_line(&render(event, format(), SystemTime::now()));
}

/// `2026-12-05T20:41:07.123Z`: UTC with milliseconds (times before 1970 are
/// not a log's concern and print as the epoch).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's era arithmetic: 400-year eras of 146097 days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_line_adds_causes_the_message_does_not_quote() {
        let io = || std::io::Error::other("disk on fire");
        let cases = [
            (Error::input("a.tif", "cannot read"), "a.tif: cannot read"),
            (
                Error::input("a.tif", "cannot read").because(io()),
                "a.tif: cannot read: disk on fire",
            ),
            (
                Error::output("b.tif", "write failed (disk on fire)").because(io()),
                "b.tif: write failed (disk on fire)",
            ),
            (Error::Usage("bad".into()).because(io()), "bad"),
        ];
        for (e, want) in cases {
            assert_eq!(one_line(&e), want);
        }
    }

    #[test]
    fn utc_timestamps() {
        // (seconds since the epoch, millis, expected)
        let table = [
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 0, "2000-02-29T00:00:00.000Z"),
            (951_868_799, 999, "2000-02-29T23:59:59.999Z"),
            (1_709_251_199, 5, "2024-02-29T23:59:59.005Z"),
            (1_796_503_267, 120, "2026-12-05T20:41:07.120Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000Z"),
        ];
        for (secs, ms, want) in table {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms);
            assert_eq!(rfc3339_utc(t), want, "{secs}");
        }
    }

    #[test]
    fn text_and_json_lines() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_503_267);
        let input_err = Error::input("a \"b\".tif", "not a raster");
        let cases: Vec<(Event, &str, serde_json::Value)> = vec![
            (
                Event::failure(&input_err).for_input("in/a.tif"),
                "idfcr: error: a \"b\".tif: not a raster",
                serde_json::json!({"time": "2026-12-05T20:41:07.000Z", "level": "error",
                    "message": "a \"b\".tif: not a raster", "kind": "input", "path": "a \"b\".tif",
                    "input": "in/a.tif", "exit_code": 1}),
            ),
            (
                Event::failure(&Error::Usage("bad".into())),
                "idfcr: error: bad",
                serde_json::json!({"time": "2026-12-05T20:41:07.000Z", "level": "error",
                    "message": "bad", "kind": "usage", "exit_code": 2}),
            ),
            (
                Event::error("2 of 5 inputs failed", 1),
                "idfcr: error: 2 of 5 inputs failed",
                serde_json::json!({"time": "2026-12-05T20:41:07.000Z", "level": "error",
                    "message": "2 of 5 inputs failed", "exit_code": 1}),
            ),
            (
                Event::info("group 10m"),
                "idfcr: group 10m",
                serde_json::json!({"time": "2026-12-05T20:41:07.000Z", "level": "info",
                    "message": "group 10m"}),
            ),
        ];
        for (event, text, json) in cases {
            assert_eq!(render(&event, LogFormat::Text, t), text);
            let line = render(&event, LogFormat::Json, t);
            assert!(!line.contains('\n'), "{line}");
            let got: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(got, json);
        }
    }

    #[test]
    fn format_found_before_parsing() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let table: &[(&[&str], LogFormat)] = &[
            (
                &["idfcr", "remove", "--log-format", "json"],
                LogFormat::Json,
            ),
            (&["idfcr", "--log-format=json", "batch"], LogFormat::Json),
            (
                &["idfcr", "remove", "--log-format", "text"],
                LogFormat::Text,
            ),
            (&["idfcr", "remove", "--log-format"], LogFormat::Text),
            (&["idfcr", "remove", "json"], LogFormat::Text),
        ];
        for (argv, want) in table {
            assert_eq!(format_in_args(&args(argv)), *want, "{argv:?}");
        }
    }
}
