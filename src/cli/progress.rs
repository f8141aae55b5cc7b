//! The CLI's progress display: a bar on a terminal, GDAL's `0...10...20` on
//! stdout for QGIS, or nothing. Errors and warnings alone go to stderr.

use std::io::{IsTerminal, Write};

use crate::config::ProgressMode;
use crate::progress::Progress;

pub enum Display {
    Bar(indicatif::ProgressBar),
    /// GDAL's text progress: a tick every 2.5 %, the number every 10 %.
    Gdal {
        ticks_done: u32,
        finished: bool,
    },
    Silent,
}

impl Display {
    pub fn new(mode: ProgressMode, total: u64) -> Self {
        match mode {
            ProgressMode::Gdal => {
                // GDAL prints its "0" as the work starts: a front end shows
                // the run as started even when the first tile row is slow.
                let mut d = Display::Gdal {
                    ticks_done: 0,
                    finished: false,
                };
                d.update(0, total);
                d
            }
            ProgressMode::None => Display::Silent,
            ProgressMode::Auto if bar_on_stderr(mode) => {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:40}] {pos}/{len} tiles, eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                Display::Bar(bar)
            }
            ProgressMode::Auto => Display::Silent,
        }
    }
}

/// Units of the one GDAL line that `staged` shares between stages.
const STAGED_UNITS: u64 = 10_000;

/// One progress display for a run of several stages, one after another.
/// GDAL's text progress is one `0...100 - done.` line per command, as QGIS
/// reads it: each stage fills its share [from, to) of one line and only the
/// last ends it. Bars and silence stay one per stage.
pub struct StagedLine {
    mode: ProgressMode,
    line: Option<std::sync::Arc<std::sync::Mutex<Display>>>,
}

impl StagedLine {
    pub fn new(mode: ProgressMode) -> Self {
        StagedLine { mode, line: None }
    }

    /// The display of a stage of `total` units filling [from, to) of the run.
    pub fn stage(&mut self, from: f64, to: f64, last: bool, total: u64) -> Box<dyn Progress> {
        if self.mode != ProgressMode::Gdal {
            return Box::new(Display::new(self.mode, total));
        }
        let mode = self.mode;
        let line = self
            .line
            .get_or_insert_with(|| {
                std::sync::Arc::new(std::sync::Mutex::new(Display::new(mode, STAGED_UNITS)))
            })
            .clone();
        Box::new(Part {
            line,
            from,
            to,
            last,
        })
    }
}

/// A factory for stages whose shares of the work are `shares` (their sum is
/// the whole), called once per stage in order: see `StagedLine`.
pub fn staged(mode: ProgressMode, shares: &[f64]) -> impl FnMut(u64) -> Box<dyn Progress> {
    let bounds = crate::progress::cumulative_shares(shares);
    let mut line = StagedLine::new(mode);
    let mut stage = 0;
    move |total| {
        let i = stage.min(bounds.len() - 2);
        stage += 1;
        line.stage(bounds[i], bounds[i + 1], i + 2 == bounds.len(), total)
    }
}

/// One stage's share [from, to) of a line that several stages fill.
struct Part {
    line: std::sync::Arc<std::sync::Mutex<Display>>,
    from: f64,
    to: f64,
    last: bool,
}

impl Part {
    fn units(&self, done: u64, total: u64) -> u64 {
        let f = if total == 0 {
            1.0
        } else {
            done.min(total) as f64 / total as f64
        };
        ((self.from + (self.to - self.from) * f) * STAGED_UNITS as f64).round() as u64
    }
}

impl Progress for Part {
    fn update(&mut self, done: u64, total: u64) {
        let u = self.units(done, total);
        if let Ok(mut d) = self.line.lock() {
            d.update(u, STAGED_UNITS);
        }
    }

    fn finish(&mut self, total: u64) {
        let u = self.units(total, total);
        if let Ok(mut d) = self.line.lock() {
            if self.last {
                d.finish(STAGED_UNITS);
            } else {
                d.update(u, STAGED_UNITS);
            }
        }
    }
}

/// Whether this run draws a bar on stderr: `--progress auto` on a terminal,
/// unless stderr carries JSON log lines, which a bar would break.
pub fn bar_on_stderr(mode: ProgressMode) -> bool {
    mode == ProgressMode::Auto
        && std::io::stderr().is_terminal()
        && super::log::format() == super::log::LogFormat::Text
}

impl Progress for Display {
    /// Report that `done` of `total` units are finished.
    fn update(&mut self, done: u64, total: u64) {
        match self {
            Display::Bar(bar) => bar.set_position(done),
            Display::Gdal { ticks_done, .. } => {
                let target = gdal_ticks(done, total);
                let mut out = std::io::stdout().lock();
                while *ticks_done < target {
                    *ticks_done += 1;
                    let _ = write!(out, "{}", gdal_tick_text(*ticks_done));
                }
                let _ = out.flush();
            }
            Display::Silent => {}
        }
    }

    fn finish(&mut self, total: u64) {
        self.update(total, total);
        match self {
            Display::Bar(bar) => bar.finish_and_clear(),
            Display::Gdal { finished, .. } => {
                *finished = true;
                super::stdout_line(" - done.")
            }
            Display::Silent => {}
        }
    }
}

impl Drop for Display {
    /// A stage that failed mid-line ends its line, so that the next
    /// input's progress (`batch`) starts on a line of its own.
    fn drop(&mut self) {
        if let Display::Gdal {
            ticks_done,
            finished: false,
        } = self
        {
            if *ticks_done > 0 {
                super::stdout_line("");
            }
        }
    }
}

/// Number of 2.5 % ticks (0..=40, tick 0 being the leading "0") reached.
pub fn gdal_ticks(done: u64, total: u64) -> u32 {
    if total == 0 {
        return 41;
    }
    1 + ((done.min(total) as f64 / total as f64) * 40.0 + 1e-9).floor() as u32
}

/// Text GDAL prints for tick `t` (1-based): "0" first, then "." or the
/// percentage every fourth tick.
pub fn gdal_tick_text(t: u32) -> String {
    let pct = (t - 1) as f64 * 2.5;
    if t == 1 {
        "0".into()
    } else if (t - 1) % 4 == 0 {
        format!("{}", pct as u32)
    } else {
        ".".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_fill_their_share_of_one_line() {
        // Two stages, 10 % and 90 %: the first ends where the second starts.
        let part = |stage: usize| Part {
            line: std::sync::Arc::new(std::sync::Mutex::new(Display::Silent)),
            from: [0.0, 0.1][stage],
            to: [0.1, 1.0][stage],
            last: stage == 1,
        };
        let cases = [
            // (stage, done, total, units of the shared line)
            (0, 0, 4, 0),
            (0, 2, 4, 500),
            (0, 4, 4, 1000),
            (0, 9, 4, 1000), // overshoot is clamped
            (1, 0, 50, 1000),
            (1, 25, 50, 5500),
            (1, 50, 50, STAGED_UNITS),
            (1, 0, 0, STAGED_UNITS), // a stage with no work is done
        ];
        for (stage, done, total, want) in cases {
            assert_eq!(
                part(stage).units(done, total),
                want,
                "stage {stage} {done}/{total}"
            );
        }
    }

    #[test]
    fn gdal_text_matches_gdal() {
        let full: String = (1..=gdal_ticks(10, 10)).map(gdal_tick_text).collect();
        assert_eq!(full, "0...10...20...30...40...50...60...70...80...90...100");
        let cases = [
            (0, 10, 1),
            (1, 10, 5),
            (5, 10, 21),
            (10, 10, 41),
            (3, 0, 41),
        ];
        for (done, total, want) in cases {
            assert_eq!(gdal_ticks(done, total), want, "{done}/{total}");
        }
    }
}
