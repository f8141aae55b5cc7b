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

/// Where each of several stages starts and ends in a run's progress, from
/// their relative sizes: [0, w0 / sum, (w0 + w1) / sum, ..., 1], one bound
/// more than stages (the last pinned to 1, whatever the rounding). No
/// weights: one stage, [0, 1].
pub fn cumulative_shares(weights: &[f64]) -> Vec<f64> {
    if weights.is_empty() {
        return vec![0.0, 1.0];
    }
    let sum: f64 = weights.iter().sum();
    let mut bounds = vec![0.0];
    for w in weights {
        bounds.push(bounds.last().copied().unwrap_or(0.0) + w / sum);
    }
    if let Some(last) = bounds.last_mut() {
        *last = 1.0;
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_cumulative_and_end_at_one() {
        let cases: [(&[f64], &[f64]); 4] = [
            (&[], &[0.0, 1.0]),
            (&[1.0], &[0.0, 1.0]),
            (&[1.0, 9.0], &[0.0, 0.1, 1.0]),
            (&[36.0, 9.0, 1.0], &[0.0, 36.0 / 46.0, 45.0 / 46.0, 1.0]),
        ];
        for (weights, want) in cases {
            let got = cumulative_shares(weights);
            assert_eq!(got.len(), want.len(), "{weights:?}");
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{weights:?}: {got:?}");
            }
        }
    }
}
