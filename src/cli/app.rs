//! Running the subcommands: parse, dispatch, report. Errors are printed
//! once on stderr as `idfcr: error: ...` (or one JSON line, `--log-format
//! json`; see `log`) and mapped to the exit code;
//! data (JSON, CSV, GDAL progress) goes to stdout.

use crate::cli::log::{self, Event};
use crate::cli::stdout_report;
use crate::cli::{args as cli, progress};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::metrics::evaluate;
use crate::pipeline::{self, batch};

/// Parse arguments, run the command, return the process exit code. Errors
/// are printed once, on stderr, prefixed with the program name.
pub fn run_cli(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    use clap::Parser;
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    log::set_format(log::format_in_args(&args));
    // `idfcr SUBCOMMAND --describe-json`: describe instead of run, so the
    // required positionals need not be given.
    if args.iter().any(|a| a == "--describe-json") {
        return describe_json(&args);
    }
    // clap's own words ("invalid UTF-8 was detected in one or more
    // arguments") name no argument; a file name in Latin-1 is the usual case.
    if let Some(bad) = args.iter().skip(1).find(|a| a.to_str().is_none()) {
        let text = bad.to_string_lossy();
        let hint = if text.starts_with('-') || text.contains('=') {
            ""
        } else {
            " (rename the file, e.g. convmv -f latin1 -t utf8 --notest NAME)"
        };
        report(&Error::Usage(format!(
            "{text}: not valid UTF-8; idfcr takes file names and options in UTF-8{hint}"
        )));
        return 2;
    }
    let cli = match cli::Cli::try_parse_from(cli::gdal_style_args(args)) {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            report(&Error::Usage(clap_one_line(&e.render().to_string())));
            return 2;
        }
        Err(e) => {
            // --help, --version: clap's own text on stdout.
            let _ = e.print();
            return 0;
        }
    };
    log::set_format(cli.log_format);
    interrupt::install(
        |line| {
            log::emit(&Event {
                kind: Some("interrupted"),
                ..Event::error(line, interrupt::exit_code())
            })
        },
        forced_exit,
    );
    // GDAL would print its errors on stderr itself; ours carry its message
    // already, and stderr is for one line per failure. The handler also
    // counts failures that no GDAL return value reports.
    crate::error::gdal_watch::install();
    // Before any input is read (a user's --config, applied later, wins).
    crate::io::gdal_config::strict_jpeg_reads();
    let result = match cli.command {
        cli::Command::Batch(args) => {
            let code = run_batch_cli(args);
            report_gdal_warnings();
            return code;
        }
        cli::Command::Eval(args) => {
            let (json, csv) = (args.json.clone(), args.csv.clone());
            args.into_config()
                .and_then(|cfg| run_eval(&cfg, json.as_deref(), csv.as_deref()))
        }
        cli::Command::Quality(args) => {
            let code = run_quality_cli(args);
            report_gdal_warnings();
            return code;
        }
        cli::Command::Models(args) => run_models_cli(args),
        cli::Command::S2(args) => run_s2_cli(args),
        cli::Command::Remove(args) => run_remove_cli(args),
    };
    report_gdal_warnings();
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            e.exit_code()
        }
    }
}

/// A second Ctrl-C: remove every partial output, then end by the signal.
fn forced_exit(code: i32) -> ! {
    crate::io::place::remove_temps_then(interrupt::die, code)
}

/// GDAL's warnings while it wrote outputs (`gdal_watch::KeepWarnings`),
/// and our own kept ones, one line each.
fn report_gdal_warnings() {
    for w in crate::error::gdal_watch::take_kept_warnings() {
        let line = crate::io::place::final_names_in(&w.line);
        let message = if w.own {
            line
        } else {
            format!("GDAL, writing {line}")
        };
        log::emit(&Event {
            path: w.path.map(|p| crate::io::place::final_names_in(&p)),
            ..Event::warning(message)
        });
    }
}

/// A clap usage error on one line, as every other error (a front end shows
/// stderr line by line): its message, tips and possible values kept, the
/// usage block and the "--help" footer replaced by one pointer.
fn clap_one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    let text = parts.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("{text} (see --help)")
}

/// The subcommand among the words after the program's name: the first
/// that is neither an option nor the value of the global `--log-format`
/// (`idfcr --log-format json remove --describe-json`).
fn subcommand_of<'a>(words: &[&'a str]) -> Option<&'a str> {
    let mut words = words.iter();
    while let Some(&w) = words.next() {
        if w == "--log-format" {
            words.next();
        } else if !w.starts_with('-') {
            return Some(w);
        }
    }
    None
}

/// `idfcr SUBCOMMAND --describe-json`: the subcommand's options as JSON for
/// QGIS and other front ends; exit 2 without a subcommand.
fn describe_json(args: &[std::ffi::OsString]) -> i32 {
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let sub = subcommand_of(&words).unwrap_or("");
    match crate::cli::describe::describe(sub) {
        Some(d) => match stdout_report(&json_text(&d)) {
            Ok(()) => 0,
            Err(e) => {
                report(&e);
                e.exit_code()
            }
        },
        None => {
            report(&Error::Usage(
                "--describe-json needs a subcommand before it (remove, batch, s2, eval, quality, models)"
                    .into(),
            ));
            2
        }
    }
}

/// `idfcr quality`: NIQE and BRISQUE per input, as text lines or JSON.
/// `idfcr quality`: the scores of every image that has them on stdout, one
/// line on stderr for each that has not, then exit 1 if any had not (as
/// `batch`: one bad image of many does not withhold the rest).
fn run_quality_cli(args: cli::QualityArgs) -> i32 {
    let json = args.json;
    let each = match args
        .into_config()
        .and_then(|cfg| crate::metrics::quality::quality_each(&cfg))
    {
        Ok(each) => each,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    let total = each.len();
    let mut results = Vec::with_capacity(total);
    let mut first_code = None;
    for (_, r) in each {
        match r {
            Ok(q) => results.push(q),
            Err(e) => {
                report(&e);
                first_code.get_or_insert(e.exit_code());
            }
        }
    }
    let failed = total - results.len();
    // Nothing scored: nothing on stdout (not an empty table or `[]`).
    let printed = if results.is_empty() && failed > 0 {
        Ok(())
    } else if json {
        stdout_report(&json_text(&results))
    } else {
        let lines: String = results
            .iter()
            .map(|r| {
                format!(
                    "{}: NIQE {:.4}  BRISQUE {:.4}\n",
                    r.input, r.niqe, r.brisque
                )
            })
            .collect();
        stdout_report(&lines)
    };
    if let Err(e) = printed {
        report(&e);
        return e.exit_code();
    }
    match first_code {
        Some(_) if total > 1 => {
            failed_inputs(failed, total);
            1
        }
        // One input: its own line said it all, with its own exit code.
        Some(code) => code,
        None => 0,
    }
}

/// The line that closes a run whose inputs partly failed (each failure had
/// its own line, with its own kind).
fn failed_inputs(failed: usize, total: usize) {
    log::emit(&Event {
        kind: Some("summary"),
        ..Event::error(format!("{failed} of {total} inputs failed"), 1)
    });
}

/// `idfcr models`: the listing on stdout; a bundled file that is not a
/// model is listed with its error and fails the run (exit 1).
fn run_models_cli(args: cli::ModelsArgs) -> Result<()> {
    let entries = args.run()?;
    if args.json {
        stdout_report(&json_text(&entries))?;
    } else {
        stdout_report(&crate::cli::models_args::table(&entries))?;
    }
    match entries.iter().find(|e| e.error.is_some()) {
        Some(e) => Err(Error::model(&e.path, e.error.clone().unwrap_or_default())),
        None => Ok(()),
    }
}

/// `idfcr s2`: one output per band group; on a terminal each group's
/// progress bar is introduced by its name.
fn run_s2_cli(args: cli::S2Args) -> Result<()> {
    let json = args.json;
    let cfg = args.into_config()?;
    let mode = cfg.options.progress;
    let mut line = progress::StagedLine::new(mode);
    let summary = crate::pipeline::s2::run_s2(&cfg, |group, total| {
        if progress::bar_on_stderr(mode) {
            device_note_on_terminal(mode);
            log::emit(&Event::info(format!("group {}", group.label)));
        }
        line.stage(group.from, group.to, group.last, total)
    })?;
    if json {
        let outputs: Vec<String> = summary
            .groups
            .iter()
            .flat_map(|g| std::iter::once(&g.run.output).chain(&g.run.mask))
            .chain(&summary.stack)
            .map(|p| p.display().to_string())
            .collect();
        let kept = match outputs.len() {
            1 => format!("{} is", outputs[0]),
            _ => format!("{} are", outputs.join(", ")),
        };
        crate::cli::stdout_report_after(&json_text(&summary), &kept)?;
    }
    Ok(())
}

/// `idfcr remove`: one input, one output (and mask); the summary as JSON
/// on request.
fn run_remove_cli(args: cli::RemoveArgs) -> Result<()> {
    let json = args.json;
    let cfg = args.into_config()?;
    let mode = cfg.opts.progress;
    let mut stages = progress::staged(mode, stage_shares(cfg.opts.refine.is_some()));
    let summary = pipeline::remove(&cfg, |total| {
        device_note_on_terminal(mode);
        stages(total)
    })?;
    // Not under -q or --progress none (cron): there the JSON summary's
    // cloud_cover carries it.
    if mode != crate::config::ProgressMode::None {
        if let Some(note) = summary.coverage_note() {
            log::emit(&Event::info(note));
        }
    }
    if json {
        let kept = match &cfg.job.mask {
            Some(m) => format!("{} and {} are", cfg.job.output.display(), m.display()),
            None => format!("{} is", cfg.job.output.display()),
        };
        crate::cli::stdout_report_after(&json_text(&summary), &kept)?;
    }
    Ok(())
}

/// Each stage's share of a run's progress line: with --refine, Pixel-CR
/// comes first and the diffusion (most of the time: every tile through the
/// sampler's steps) after it.
fn stage_shares(refine: bool) -> &'static [f64] {
    if refine {
        &[1.0, 9.0]
    } else {
        &[1.0]
    }
}

/// A report as pretty JSON with a final newline.
fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// The one stderr line of a failure (see `log::one_line`).
pub fn report(e: &Error) {
    log::emit(&Event::failure(e));
}

/// On a terminal with a progress bar, say once why `--device auto` runs on
/// CPU (the header of the progress display); never in cron or `-q` runs.
fn device_note_on_terminal(mode: crate::config::ProgressMode) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if progress::bar_on_stderr(mode) {
        if let Some(note) = crate::models::pixel_cr::device_note() {
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                log::emit(&Event::info(note));
            }
        }
    }
}

/// A report path that names a file (`-` is standard output).
fn report_file(p: Option<&std::path::Path>) -> Option<&std::path::Path> {
    p.filter(|p| p.as_os_str() != "-")
}

/// Run `eval` and print or write its report: a short table on stdout unless
/// a JSON or CSV report goes there.
fn run_eval(
    cfg: &evaluate::EvalConfig,
    json: Option<&std::path::Path>,
    csv: Option<&std::path::Path>,
) -> Result<()> {
    // Checked before the (possibly long) scoring: a report must not replace
    // one of the rasters it scores, nor the other report.
    if json.is_some_and(|p| p.as_os_str() == "-") && csv.is_some_and(|p| p.as_os_str() == "-") {
        return Err(Error::Usage(
            "--json - and --csv - would both go to standard output, one after the other; send one to a file".into(),
        ));
    }
    if let (Some(j), Some(c)) = (report_file(json), report_file(csv)) {
        if crate::io::names::same_target(j, c) {
            return Err(Error::Usage(format!(
                "--json and --csv both name {}; give each report its own file",
                j.display()
            )));
        }
    }
    let scored = evaluate::pairs(&cfg.pred, &cfg.reference)?;
    for (option, path) in [("--json", json), ("--csv", csv)] {
        if let Some(p) = report_file(path) {
            if scored
                .iter()
                .flat_map(|(a, b)| [a, b])
                .any(|r| crate::io::names::same_target(p, r))
            {
                return Err(Error::Usage(format!(
                    "{option} {}: that is a raster being scored; give the report its own file",
                    p.display()
                )));
            }
        }
    }
    // After the check above, whose message says more for those rasters.
    for p in [json, csv].into_iter().flatten() {
        crate::io::report::check_report_path(p)?;
    }
    let report = evaluate::evaluate(cfg)?;
    let emit = |path: &std::path::Path, text: String| -> Result<()> {
        if path.as_os_str() == "-" {
            stdout_report(&text)
        } else {
            crate::io::report::write_report(path, &text)
        }
    };
    let to_stdout = |p: Option<&std::path::Path>| p.is_some_and(|p| p.as_os_str() == "-");
    if let Some(p) = json {
        emit(p, json_text(&report))?;
    }
    if let Some(p) = csv {
        emit(p, evaluate::to_csv(&report))?;
    }
    if !to_stdout(json) && !to_stdout(csv) {
        let mut table = format!(
            "data range {} ({})\n",
            report.data_range, report.data_range_from
        );
        for img in &report.images {
            table += &format!(
                "{}: PSNR {:.3} dB  SSIM {:.4}  RMSE {:.4}\n",
                img.pred, img.mean.psnr, img.mean.ssim, img.mean.rmse
            );
        }
        if report.images.len() > 1 {
            table += &format!(
                "mean of {} images: PSNR {:.3} dB  SSIM {:.4}  RMSE {:.4}\n",
                report.images.len(),
                report.mean.psnr,
                report.mean.ssim,
                report.mean.rmse
            );
        }
        stdout_report(&table)?;
    }
    Ok(())
}

/// Warn that `own_outputs` (files an earlier run of this batch made among
/// its inputs) are left out.
fn warn_left_out(own_outputs: &[String]) {
    if !own_outputs.is_empty() {
        // Named in full in the summary's left_out; here the first few.
        let shown: Vec<&str> = own_outputs.iter().take(3).map(String::as_str).collect();
        let more = match own_outputs.len() - shown.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        log::emit(&Event::warning(format!(
            "left out {}{more}: outputs or masks of this batch's other inputs, made by idfcr, are not inputs",
            shown.join(", ")
        )));
    }
}

/// Run `batch`: exit code 0 when every input succeeded or was skipped, 1 when
/// any failed, 128 + the signal when interrupted (130 for Ctrl-C; the
/// process then ends by that signal), 2 for usage errors.
fn run_batch_cli(args: cli::BatchArgs) -> i32 {
    let summary_path = args.summary.clone();
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    let mode = cfg.options.progress;
    let shares = stage_shares(cfg.options.refine.is_some());
    let displays = || -> batch::StageDisplays { Box::new(progress::staged(mode, shares)) };
    let ready = || warn_left_out(&cfg.own_outputs);
    let summary = match batch::run_batch(&cfg, displays, ready, |input, e| {
        log::emit(&Event::failure(e).for_input(input))
    }) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    if let Some(p) = summary_path {
        let text = json_text(&summary);
        let written = if p.as_os_str() == "-" {
            crate::cli::stdout_report_after(&text, "the outputs of the inputs that succeeded are")
        } else {
            crate::io::report::write_report(&p, &text)
        };
        if let Err(e) = written {
            report(&e);
            return e.exit_code();
        }
    }
    if summary.interrupted {
        log::emit(&Event {
            kind: Some("interrupted"),
            ..Event::error(
                "interrupted; finished outputs are kept, rerun with --skip-existing to go on",
                interrupt::exit_code(),
            )
        });
        interrupt::exit_code()
    } else if summary.failed > 0 {
        failed_inputs(summary.failed, summary.inputs);
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subcommand_follows_global_options() {
        let cases: [(&[&str], Option<&str>); 5] = [
            (&["remove", "--describe-json"], Some("remove")),
            (
                &["--log-format", "json", "s2", "--describe-json"],
                Some("s2"),
            ),
            (
                &["--log-format=json", "batch", "--describe-json"],
                Some("batch"),
            ),
            (&["--describe-json"], None),
            (&["--log-format", "json", "--describe-json"], None),
        ];
        for (words, want) in cases {
            assert_eq!(subcommand_of(words), want, "{words:?}");
        }
    }

    #[test]
    fn clap_errors_become_one_line() {
        // (clap's rendering, our line)
        let table = [
            (
                "error: invalid value 'JPEG' for '--format <GTiff|COG>'\n  [possible values: GTiff, COG]\n\nFor more information, try '--help'.\n",
                "invalid value 'JPEG' for '--format <GTiff|COG>' [possible values: GTiff, COG] (see --help)",
            ),
            (
                "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: idfcr remove [OPTIONS] <INPUT> <OUTPUT>\n\nFor more information, try '--help'.\n",
                "unexpected argument '--bogus' found tip: to pass '--bogus' as a value, use '-- --bogus' (see --help)",
            ),
        ];
        for (clap, want) in table {
            assert_eq!(clap_one_line(clap), want);
        }
    }
}
