//! Ctrl-C, SIGTERM and SIGHUP: set a flag that the pipeline checks between
//! tiles. The pipeline then returns `Error::Interrupted`, and the temp-file
//! guards remove every partial output on the way out; a second request
//! exits at once, through the clean-up the caller handed to `install`.
//!
//! Either way the process ends by the signal it got (the default action,
//! re-raised), not by `exit(130)`: a shell loop (`for f in *.tif; do idfcr
//! ...; done`) stops on Ctrl-C only when its child died of SIGINT, and a
//! supervisor reads SIGTERM as 143. Dying by the signal also skips the C++
//! static destructors that `exit` runs, which crashed ONNX Runtime while a
//! worker thread was still inside a kernel.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The first signal's number (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static FIRST: OnceLock<Instant> = OnceLock::new();

/// Signals this soon after the first are the same request: `timeout -s
/// INT` signals the process and its process group, so one request can
/// arrive twice microseconds apart (a deliberate second press comes later).
const SAME_REQUEST: Duration = Duration::from_secs(1);

/// Install the handler (once; later calls are no-ops). The first signal
/// sets the flag; a second one later means the user insists: after
/// `insist_line` says so on stderr (the caller's format; it must not panic
/// on a closed pipe, as `eprintln!` does), `forced_exit(exit_code())` ends
/// the process at once (the caller's: it removes the temp files, which
/// this module knows nothing of, then calls `die`).
pub fn install(insist_line: fn(&str), forced_exit: fn(i32) -> !) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // A signal the process was started ignoring stays ignored: `nohup`
        // (SIGHUP) and a script's `cmd &` (SIGINT) mean the caller wants
        // the run to outlive it.
        let wanted: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
            .into_iter()
            .filter(|&s| !ignored(s))
            .collect();
        let Ok(mut signals) = signal_hook::iterator::Signals::new(&wanted) else {
            return;
        };
        // Signals arrive on this thread, where any code may run (the
        // handler proper only wakes it).
        let started = std::thread::Builder::new()
            .name("idfcr-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    // The number first: whoever sees the flag may read it.
                    let first = SIGNAL
                        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                    if first {
                        let _ = FIRST.set(Instant::now());
                        INTERRUPTED.store(true, Ordering::SeqCst);
                        continue;
                    }
                    if FIRST.get().is_some_and(|t| t.elapsed() < SAME_REQUEST) {
                        continue;
                    }
                    insist_line("interrupted again: stopping now");
                    forced_exit(exit_code());
                }
            });
        if started.is_err() {
            // Without the thread, signal-hook's handler would swallow every
            // signal: the default actions are better than none.
            for s in wanted {
                // SAFETY: setting a signal's disposition to the default.
                unsafe { libc::signal(s, libc::SIG_DFL) };
            }
        }
    });
}

/// Whether `sig`'s disposition is "ignore" (inherited from the caller).
fn ignored(sig: i32) -> bool {
    // SAFETY: a query only (no new action); `old` is written by the call.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A signal arrived: the run stops. `?` turns it into `Error::Interrupted`
/// (this module stands below the error type, which asks it for the exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// `Err(Interrupted)` once a signal arrived.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}

/// The shell's code for the signal that interrupted the run: 128 + its
/// number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
pub fn exit_code() -> i32 {
    128 + match SIGNAL.load(Ordering::SeqCst) {
        0 => SIGINT,
        s => s,
    }
}

/// End the process: by the signal that interrupted the run if one came
/// (see the module note; also when the run finished first, so that a shell
/// loop stops), else `exit(code)`. It takes no lock (stdout's may be held
/// by a thread stuck writing to a full pipe): `main` flushes stdout first.
pub fn die(code: i32) -> ! {
    let sig = SIGNAL.load(Ordering::SeqCst);
    if sig != 0 {
        // Resets the default action and raises the signal; returns only if
        // that failed.
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        std::process::exit(128 + sig);
    }
    std::process::exit(code)
}
