//! Ctrl-C and SIGTERM: set a flag that the pipeline checks between tiles.
//! The pipeline then returns `Error::Interrupted`, and the temp-file guards
//! remove every partial output on the way out; a second request exits at
//! once and removes them itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static FIRST: OnceLock<Instant> = OnceLock::new();

/// Signals this soon after the first are the same request: `timeout -s
/// INT` signals the process and its process group, so one request can
/// arrive twice microseconds apart (a deliberate second press comes later).
const SAME_REQUEST: Duration = Duration::from_secs(1);

/// Install the handler (once; later calls are no-ops). The first signal
/// sets the flag; a second one later means the user insists: the temp
/// files are removed and the process exits at once, after `insist_line`
/// says so on stderr (the caller's format; it must not panic on a closed
/// pipe, as `eprintln!` does).
pub fn install(insist_line: fn(&str)) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(move || {
            if !INTERRUPTED.swap(true, Ordering::SeqCst) {
                let _ = FIRST.set(Instant::now());
                return;
            }
            if FIRST.get().is_some_and(|t| t.elapsed() < SAME_REQUEST) {
                return;
            }
            insist_line("interrupted again: stopping now");
            crate::io::place::exit_removing_temps(130);
        });
    });
}

pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a signal arrived.
pub fn check() -> crate::error::Result<()> {
    if requested() {
        Err(crate::error::Error::Interrupted)
    } else {
        Ok(())
    }
}
