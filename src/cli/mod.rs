//! The command-line edge: arguments in, exit code out.
//!
//! - `args`: clap structs, turned into validated configs (nothing below this
//!   folder sees clap types): the command list, `remove` and the processing
//!   options it shares; `batch_args`, `s2_args` and `metrics_args` (`quality`,
//!   `eval`) and `models_args` (the bundled models listed) the other
//!   commands', `cloud_mask_args` those of `--cloud-mask`;
//! - `log`: the stderr lines (errors, notes) as text or, with `--log-format
//!   json`, one JSON object per line;
//! - `describe`: `--describe-json`, the parameters for front ends such as QGIS;
//! - `app`: runs a subcommand, prints its report on stdout and its error
//!   once on stderr, maps errors to exit codes;
//! - `progress`: the progress sink the CLI hands to the pipeline (a bar on a
//!   terminal, GDAL's `0...10...` on stdout for QGIS, or nothing);
//! - `stdout_report` here: the only way the CLI writes reports (a failed
//!   write is an error); `stdout_text`/`stdout_line` progress and notes;
//!   `stderr_line` the only way it writes errors and warnings.

pub mod app;
pub mod args;
pub mod batch_args;
pub mod cloud_mask_args;
pub mod describe;
pub mod log;
pub mod metrics_args;
pub mod models_args;
pub mod progress;
pub mod s2_args;

/// Write a run's report (JSON, CSV, result lines) on stdout. A closed pipe
/// (`idfcr ... | head`) is the reader's choice and not a failure; any other
/// write error (a full disk behind `> report.json`) is: the report is what
/// the run was for, so the exit code must not say it arrived.
pub fn stdout_report(text: &str) -> crate::error::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::error::Error::output(
            "standard output",
            format!("cannot write the report: {e}"),
        )),
        _ => Ok(()),
    }
}

/// `stdout_report` once the outputs are in place: a report that cannot be
/// written still fails the run (exit 1), but the outputs are finished and
/// stay, so the message says so (`kept`: which), and a script does not take
/// them for the partial files of a failed run.
pub fn stdout_report_after(text: &str, kept: &str) -> crate::error::Result<()> {
    stdout_report(text).map_err(|e| match e {
        crate::error::Error::Output { path, msg, .. } => {
            crate::error::Error::output(path, format!("{msg}; {kept} written and complete"))
        }
        other => other,
    })
}

/// Write to stdout, ignoring a closed pipe (`idfcr ... | head` must not
/// panic) and any other write error: for progress and notes, which must not
/// fail a run (reports go through `stdout_report`).
pub fn stdout_text(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// `stdout_text` with a newline.
pub fn stdout_line(text: &str) {
    stdout_text(&format!("{text}\n"));
}

/// One line on stderr (errors and warnings), ignoring a closed pipe the same
/// way: `eprintln!` panics there, so `idfcr batch ... 2>&1 | head -n 1` died
/// at its second error line and never wrote its summary.
pub fn stderr_line(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}").and_then(|_| err.flush());
}
