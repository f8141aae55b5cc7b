//! Tiles: pure arithmetic, no I/O.
//!
//! - `grid`: scene size + tile size + the model's window and halo -> tile
//!   origins on one axis, placed so tiled results equal untiled ones;
//! - `weights`: tiles with their margins -> per-axis blend weights and the
//!   accumulator that sums weighted tiles and divides once;
//! - `cloud_blend`: the output pixel from the input, the model's output and
//!   the cloud probability p (p x model + (1 - p) x input; the input as it
//!   was where p is 0);
//! - `probability`: a scene-wide cloud probability map from a separate
//!   detector, calibrated, and sampled on each group's grid.

pub mod cloud_blend;
pub mod grid;
pub mod probability;
pub mod weights;
