//! Running the subcommands: parse, dispatch, report. Errors are printed
//! once on stderr as `idfcr: error: ...` and mapped to the exit code;
//! data (JSON, CSV, GDAL progress) goes to stdout.

use crate::error::{Error, Result};
use crate::{batch, cli, evaluate, interrupt, pipeline, progress};

/// Parse arguments, run the command, return the process exit code. Errors
/// are printed once, on stderr, prefixed with the program name.
pub fn run_cli(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    use clap::Parser;
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    // `idfcr SUBCOMMAND --describe-json`: describe instead of run, so the
    // required positionals need not be given.
    if args.iter().any(|a| a == "--describe-json") {
        let sub = args.get(1).and_then(|s| s.to_str()).unwrap_or("");
        return match cli::describe(sub) {
            Some(d) => {
                stdout_line(&serde_json::to_string_pretty(&d).unwrap_or_default());
                0
            }
            None => {
                eprintln!(
                    "idfcr: error: --describe-json needs a subcommand before it (remove, batch, s2, eval)"
                );
                2
            }
        };
    }
    let cli = match cli::Cli::try_parse_from(cli::gdal_style_args(args)) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    interrupt::install();
    // GDAL would print its errors on stderr itself; ours carry its message
    // already, and stderr is for one line per failure. The handler also
    // counts failures that no GDAL return value reports.
    crate::error::gdal_watch::install();
    let result = match cli.command {
        cli::Command::Batch(args) => return run_batch_cli(args),
        cli::Command::Eval(args) => {
            let (json, csv) = (args.json.clone(), args.csv.clone());
            args.into_config()
                .and_then(|cfg| run_eval(&cfg, json.as_deref(), csv.as_deref()))
        }
        cli::Command::Quality(args) => {
            let json = args.json;
            args.into_config().and_then(|cfg| {
                let results = crate::quality::quality(&cfg)?;
                if json {
                    stdout_line(&serde_json::to_string_pretty(&results).unwrap_or_default());
                } else {
                    for r in &results {
                        stdout_line(&format!(
                            "{}: NIQE {:.4}  BRISQUE {:.4}",
                            r.input, r.niqe, r.brisque
                        ));
                    }
                }
                Ok(())
            })
        }
        cli::Command::S2(args) => {
            let json = args.json;
            args.into_config().and_then(|cfg| {
                let mode = cfg.template.progress;
                let summary = crate::sentinel2_run::run_s2(&cfg, |group, total| {
                    use std::io::IsTerminal;
                    if mode == crate::config::ProgressMode::Auto && std::io::stderr().is_terminal()
                    {
                        device_note_on_terminal(mode);
                        eprintln!("idfcr: group {group}");
                    }
                    progress::Progress::new(mode, total)
                })?;
                if json {
                    stdout_line(&serde_json::to_string_pretty(&summary).unwrap_or_default());
                }
                Ok(())
            })
        }
        cli::Command::Remove(args) => {
            let json = args.json;
            args.into_config().and_then(|cfg| {
                let mode = cfg.progress;
                let summary = pipeline::remove(&cfg, |total| {
                    device_note_on_terminal(mode);
                    progress::Progress::new(mode, total)
                })?;
                if json {
                    stdout_line(&serde_json::to_string_pretty(&summary).unwrap_or_default());
                }
                Ok(())
            })
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("idfcr: error: {e}");
            e.exit_code()
        }
    }
}

/// On a terminal with a progress bar, say once why `--device auto` runs on
/// CPU (the header of the progress display); never in cron or `-q` runs.
fn device_note_on_terminal(mode: crate::config::ProgressMode) {
    use std::io::IsTerminal;
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if mode == crate::config::ProgressMode::Auto && std::io::stderr().is_terminal() {
        if let Some(note) = crate::model::device_note() {
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!("idfcr: {note}");
            }
        }
    }
}

/// Run `eval` and print or write its report: a short table on stdout unless
/// a JSON or CSV report goes there.
fn run_eval(
    cfg: &evaluate::EvalConfig,
    json: Option<&std::path::Path>,
    csv: Option<&std::path::Path>,
) -> Result<()> {
    let report = evaluate::evaluate(cfg)?;
    let emit = |path: &std::path::Path, text: String| -> Result<()> {
        if path.as_os_str() == "-" {
            stdout_text(&text);
            Ok(())
        } else {
            std::fs::write(path, text)
                .map_err(|e| Error::output(path, format!("cannot write: {e}")))
        }
    };
    let to_stdout = |p: Option<&std::path::Path>| p.is_some_and(|p| p.as_os_str() == "-");
    if let Some(p) = json {
        emit(
            p,
            serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        )?;
    }
    if let Some(p) = csv {
        emit(p, evaluate::to_csv(&report))?;
    }
    if !to_stdout(json) && !to_stdout(csv) {
        stdout_line(&format!(
            "data range {} ({})",
            report.data_range, report.data_range_from
        ));
        for img in &report.images {
            stdout_line(&format!(
                "{}: PSNR {:.3} dB  SSIM {:.4}  RMSE {:.4}",
                img.pred, img.mean.psnr, img.mean.ssim, img.mean.rmse
            ));
        }
        if report.images.len() > 1 {
            stdout_line(&format!(
                "mean of {} images: PSNR {:.3} dB  SSIM {:.4}  RMSE {:.4}",
                report.images.len(),
                report.mean.psnr,
                report.mean.ssim,
                report.mean.rmse
            ));
        }
    }
    Ok(())
}

/// Write to stdout, ignoring a closed pipe (`idfcr ... | head` must not
/// panic); other write errors are ignored too, as there is nowhere to report them.
pub fn stdout_text(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// `stdout_text` with a newline.
pub fn stdout_line(text: &str) {
    stdout_text(&format!("{text}\n"));
}

/// Run `batch`: exit code 0 when every input succeeded or was skipped, 1 when
/// any failed, 130 when interrupted, 2 for usage errors.
fn run_batch_cli(args: cli::BatchArgs) -> i32 {
    let summary_path = args.summary.clone();
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("idfcr: error: {e}");
            return e.exit_code();
        }
    };
    let mode = cfg.template.progress;
    let summary = match batch::run_batch(&cfg, |total| progress::Progress::new(mode, total)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("idfcr: error: {e}");
            return e.exit_code();
        }
    };
    if let Some(p) = summary_path {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n";
        if p.as_os_str() == "-" {
            stdout_text(&text);
        } else if let Err(e) = std::fs::write(&p, text) {
            eprintln!(
                "idfcr: error: {}: cannot write the summary: {e}",
                p.display()
            );
            return 1;
        }
    }
    if summary.interrupted {
        eprintln!("idfcr: error: interrupted; finished outputs are kept, rerun with --skip-existing to go on");
        130
    } else if summary.failed > 0 {
        eprintln!(
            "idfcr: error: {} of {} inputs failed",
            summary.failed, summary.inputs
        );
        1
    } else {
        0
    }
}
