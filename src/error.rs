//! One error type for the library, with enough context to print a single
//! useful line: which file, and what is wrong with it. The underlying error
//! (GDAL's, with its class and number; an I/O error; ONNX Runtime's) is kept
//! as the `source`, for library users and for the CLI's context chain.

use std::path::PathBuf;

/// Everything that can go wrong in `idfcr`. Each variant names the thing it
/// is about (a path, a model, a setting) so the message stands on its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the settings do not make sense (exit code 2).
    #[error("{0}")]
    Usage(String),

    /// The input raster cannot be used.
    #[error("{path}: {msg}")]
    Input {
        path: String,
        msg: String,
        #[source]
        source: Option<Source>,
    },

    /// The model file is missing, corrupt, or does not fit the input.
    #[error("model {path}: {msg}")]
    Model {
        path: PathBuf,
        msg: String,
        #[source]
        source: Option<Source>,
    },

    /// No usable ONNX Runtime shared library.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// The output cannot be written.
    #[error("{path}: {msg}")]
    Output {
        path: PathBuf,
        msg: String,
        #[source]
        source: Option<Source>,
    },

    /// The machine refused a resource (threads, memory) (exit code 1).
    #[error("{0}")]
    System(String),

    /// Ctrl-C or SIGTERM arrived; partial outputs were removed (exit code 128
    /// + the signal: 130, 143).
    #[error("interrupted; no output was left behind")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error underneath one of ours.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    pub fn input(path: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Input {
            path: path.into(),
            msg: msg.to_string(),
            source: None,
        }
    }

    pub fn model(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::Model {
            path: path.into(),
            msg: msg.to_string(),
            source: None,
        }
    }

    pub fn output(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::Output {
            path: path.into(),
            msg: msg.to_string(),
            source: None,
        }
    }

    /// Keep `cause` as this error's source (input, model and output errors;
    /// others are returned unchanged).
    pub fn because(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Error::Input { source, .. }
        | Error::Model { source, .. }
        | Error::Output { source, .. } = &mut self
        {
            *source = Some(Box::new(cause));
        }
        self
    }

    /// This error as a problem of `input` ("PATH: WHAT ERROR"), for a step
    /// that reads another file on the input's behalf (a batch item's
    /// `--cloud-mask`). An interrupt stays an interrupt: it must end the
    /// run by its signal, not count as one input's failure.
    pub fn for_input(self, input: impl Into<String>, what: &str) -> Self {
        match self {
            Error::Interrupted => Error::Interrupted,
            e => Error::input(input, format!("{what} {e}")).because(e),
        }
    }

    /// `because` for a GDAL error: kept with its class and number.
    pub fn because_gdal(self, e: gdal::errors::GdalError) -> Self {
        self.because(GdalFailure::from(e))
    }

    /// The process exit code that conventions assign to this error: 2 for
    /// usage errors, 128 + the signal for interruption (130 for Ctrl-C), 1
    /// for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Interrupted => crate::interrupt::exit_code(),
            _ => 1,
        }
    }
}

impl From<crate::interrupt::Interrupted> for Error {
    fn from(_: crate::interrupt::Interrupted) -> Self {
        Error::Interrupted
    }
}

/// A GDAL error kept as the source of one of ours: its class and number
/// (for library users who act on them) and its message, cleaned as
/// `gdal_message` cleans it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GdalFailure {
    /// `CPLErr` class (`Failure`, `Fatal`, ...) when GDAL raised one.
    pub class: Option<String>,
    /// `CPLErrorNum` when GDAL raised one.
    pub number: Option<i32>,
    pub message: String,
}

impl From<gdal::errors::GdalError> for GdalFailure {
    fn from(e: gdal::errors::GdalError) -> Self {
        let message = gdal_message(&e);
        match e {
            gdal::errors::GdalError::CplError { class, number, .. } => GdalFailure {
                class: Some(format!("{class:?}")),
                number: Some(number),
                message,
            },
            _ => GdalFailure {
                class: None,
                number: None,
                message,
            },
        }
    }
}

/// GDAL's own message from one of its errors, without the crate's wrapping
/// ("CPL error class ...", "returned a NULL pointer"), on one line.
pub fn gdal_message(e: &gdal::errors::GdalError) -> String {
    use gdal::errors::GdalError;
    let msg = match e {
        GdalError::CplError { msg, .. } => msg.clone(),
        GdalError::NullPointer { msg, .. } if !msg.is_empty() => msg.clone(),
        other => other.to_string(),
    };
    msg.lines().next().unwrap_or("").trim().to_string()
}

/// Whether GDAL's message (from `gdal_message`) says nothing a user can
/// act on: empty, or the crate's "NULL pointer" for a call GDAL failed
/// without a word (no driver recognises a file, a zip it cannot list).
pub fn gdal_said_nothing(why: &str) -> bool {
    why.is_empty() || why.contains("NULL pointer")
}

/// GDAL errors that no return value reports.
///
/// GDAL before 3.7 cannot say that closing a dataset failed (`GDALClose`
/// returns nothing), and errors raised while a driver flushes compressed
/// blocks, possibly on its worker threads, reach only the error handler. So
/// the handler counts every failure, and a `GdalWatch` taken around an
/// operation tells whether any happened meanwhile. The count is
/// process-wide: a failure on another thread during the watch also counts,
/// which errs on the side of refusing an output.
pub mod gdal_watch {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, Once};

    static FAILURES: AtomicU64 = AtomicU64::new(0);
    static LAST: Mutex<String> = Mutex::new(String::new());
    /// Warnings that GDAL left data out: the SENTINEL2 driver only warns
    /// "Tile ... not found on filesystem. Skipping it" for a missing or
    /// unreadable band file and then reads that band as zeros.
    static SKIPS: AtomicU64 = AtomicU64::new(0);
    static LAST_SKIP: Mutex<String> = Mutex::new(String::new());
    static LAST_WARNING: Mutex<String> = Mutex::new(String::new());
    /// Live `KeepWarnings` guards, the file the latest is about, and the
    /// warnings kept meanwhile (each with the file it is about).
    static KEEPING: AtomicU64 = AtomicU64::new(0);
    static KEEP_PATH: Mutex<Option<String>> = Mutex::new(None);
    static KEPT: Mutex<Vec<KeptWarning>> = Mutex::new(Vec::new());
    static INSTALL: Once = Once::new();

    /// Install the counting handler (once). It prints nothing: our errors
    /// carry GDAL's message, and stderr is for one line per failure.
    pub fn install() {
        INSTALL.call_once(|| {
            gdal::config::set_error_handler(|class, _no, msg| {
                use gdal::errors::CplErrType;
                if class == CplErrType::Warning {
                    let line = msg.lines().next().unwrap_or("").trim().to_string();
                    if line.to_ascii_lowercase().contains("skipping it") {
                        if let Ok(mut last) = LAST_SKIP.lock() {
                            *last = line.clone();
                        }
                        SKIPS.fetch_add(1, Ordering::SeqCst);
                    }
                    if KEEPING.load(Ordering::SeqCst) > 0 {
                        let path = KEEP_PATH.lock().ok().and_then(|p| p.clone());
                        keep(
                            KeptWarning {
                                path,
                                line: line.clone(),
                                own: false,
                            },
                            16,
                        );
                    }
                    if let Ok(mut last) = LAST_WARNING.lock() {
                        *last = line;
                    }
                }
                if matches!(class, CplErrType::Failure | CplErrType::Fatal) {
                    if let Ok(mut last) = LAST.lock() {
                        *last = msg.lines().next().unwrap_or("").trim().to_string();
                    }
                    FAILURES.fetch_add(1, Ordering::SeqCst);
                }
            });
        });
    }

    /// A warning shown at the end of the run: GDAL's, raised while it wrote
    /// `path`, or our own (`own`: what an output cannot hold, which model
    /// file runs), about `path` where it names one file.
    #[derive(Debug, Clone, PartialEq)]
    pub struct KeptWarning {
        pub path: Option<String>,
        pub line: String,
        pub own: bool,
    }

    /// Keep `w` unless it is kept already (or `limit` are).
    fn keep(w: KeptWarning, limit: usize) {
        if let Ok(mut kept) = KEPT.lock() {
            if kept.len() < limit && !kept.contains(&w) {
                kept.push(w);
            }
        }
    }

    /// While one lives, GDAL's warnings are kept for the user
    /// (`take_kept_warnings`), with the file being written: one raised
    /// while an output is created or copied into its format says GDAL
    /// changed what was written (a `--co NBITS=4` that clips the values),
    /// which must not pass in silence.
    pub struct KeepWarnings(Option<String>);

    impl KeepWarnings {
        pub fn start(path: &std::path::Path) -> Self {
            install();
            KEEPING.fetch_add(1, Ordering::SeqCst);
            let path = Some(path.display().to_string());
            let before = KEEP_PATH
                .lock()
                .map(|mut p| std::mem::replace(&mut *p, path))
                .unwrap_or_default();
            KeepWarnings(before)
        }
    }

    impl Drop for KeepWarnings {
        fn drop(&mut self) {
            if let Ok(mut p) = KEEP_PATH.lock() {
                *p = self.0.take();
            }
            KEEPING.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Keep a warning of our own about `path` (the file it names, if one),
    /// shown once with GDAL's at the end.
    pub fn keep_own_warning(path: Option<&str>, line: String) {
        let path = path.map(str::to_string);
        keep(
            KeptWarning {
                path,
                line,
                own: true,
            },
            usize::MAX,
        );
    }

    /// The warnings kept so far (each once), and none kept after.
    pub fn take_kept_warnings() -> Vec<KeptWarning> {
        KEPT.lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default()
    }

    /// GDAL's last warning (validation of creation options reports there).
    pub fn last_warning() -> String {
        LAST_WARNING.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A point in GDAL's failure count (and count of skipped sources).
    pub struct GdalWatch(u64, u64);

    impl GdalWatch {
        pub fn start() -> Self {
            install();
            GdalWatch(
                FAILURES.load(Ordering::SeqCst),
                SKIPS.load(Ordering::SeqCst),
            )
        }

        /// Err(GDAL's warning) if GDAL skipped a source (a band file) since
        /// `start`: what it opened is missing data it will read as zeros.
        pub fn check_nothing_skipped(&self) -> Result<(), String> {
            if SKIPS.load(Ordering::SeqCst) == self.1 {
                return Ok(());
            }
            Err(LAST_SKIP.lock().map(|s| s.clone()).unwrap_or_default())
        }

        /// Err(GDAL's last failure message) if any failure was raised since
        /// `start`.
        pub fn check(&self) -> Result<(), String> {
            if FAILURES.load(Ordering::SeqCst) == self.0 {
                return Ok(());
            }
            let last = LAST.lock().map(|s| s.clone()).unwrap_or_default();
            Err(if last.is_empty() {
                "GDAL reported an error".to_string()
            } else {
                last
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let cases = [
            (Error::Usage("x".into()), 2),
            (Error::input("a.tif", "x"), 1),
            (Error::output("b.tif", "x"), 1),
            (Error::Runtime("x".into()), 1),
            // A worker pool that cannot start is the machine's fault, not a usage error.
            (Error::System("cannot start 4 worker threads".into()), 1),
            (Error::Interrupted, 130),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e}");
        }
    }

    #[test]
    fn errors_on_an_inputs_behalf_name_it_and_keep_interrupts() {
        // (error, its message and exit code as an input's)
        let cases = [
            (
                Error::input("m.tif", "cannot open"),
                "a.tif: its --cloud-mask m.tif: cannot open",
                1,
            ),
            (
                Error::Interrupted,
                "interrupted; no output was left behind",
                130,
            ),
            (Error::Usage("bad".into()), "a.tif: its --cloud-mask bad", 1),
        ];
        for (e, want, code) in cases {
            let got = e.for_input("a.tif", "its --cloud-mask");
            assert_eq!((got.to_string().as_str(), got.exit_code()), (want, code));
        }
    }
}
