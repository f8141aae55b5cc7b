//! How long runs say how far they are. The library prints nothing: each
//! stage asks the caller for a `Progress` (a closure `total -> Box<dyn
//! Progress>`) and reports to it. The CLI provides a bar or GDAL's text
//! (`cli::progress::Display`); a library user can pass `Silent` or its own.

/// Receives `done` of `total` units (tiles, sampler steps) as they finish.
pub trait Progress: Send {
    fn update(&mut self, done: u64, total: u64);
    /// The stage is over; by default the last update.
    fn finish(&mut self, total: u64) {
        self.update(total, total);
    }
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn update(&mut self, _done: u64, _total: u64) {}
}

/// A factory for `remove` and friends that reports nothing.
pub fn silent(_total: u64) -> Box<dyn Progress> {
    Box::new(Silent)
}
