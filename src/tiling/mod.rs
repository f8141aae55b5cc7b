//! Tiles: pure arithmetic, no I/O.
//!
//! - `grid`: scene size + tile size + the model's window and halo -> tile
//!   origins on one axis, placed so tiled results equal untiled ones;
//! - `blend`: tiles with their margins -> per-axis blend weights and the
//!   accumulator that sums weighted tiles and divides once.

pub mod blend;
pub mod grid;
