//! Tiles: pure arithmetic, no I/O.
//!
//! - `grid`: scene size + tile size + the model's window and halo -> tile
//!   origins on one axis, placed so tiled results equal untiled ones;
//! - `blend`: tiles with their margins -> per-axis blend weights and the
//!   accumulator that sums weighted tiles and divides once;
//! - `probability`: a scene-wide cloud probability map from a separate
//!   detector, calibrated, and sampled on each group's grid.

pub mod blend;
pub mod grid;
pub mod probability;
