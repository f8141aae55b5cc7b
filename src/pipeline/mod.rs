//! What a run does, stage by stage.
//!
//! - `run`: one `remove` job: a validated `RemoveConfig` in -> the output
//!   raster (and optional probability mask) written, a `RemoveSummary` out.
//!   Stage 1 (Pixel-CR, tiled and blended) runs here; with `--refine` its
//!   result goes through `crate::diffusion` before the final blend;
//! - `stage1`: Pixel-CR over one input, tiled, blended, written (`strip`:
//!   the pixels one strip of tiles reads; `outputs`: the output and mask
//!   files, created as the input is described and placed as one result);
//! - `fit`: which model the input gets, and the input checked against it
//!   (bands, names, colour order, value range) before any tile runs;
//! - `cache`: models loaded once per process; `provenance`: the tags and
//!   settings line every output carries;
//! - `batch`: a list of inputs and an output folder in -> one `run` per
//!   input, models loaded once, outputs named without collisions
//!   (`inputs`: the list expanded from folders, patterns and list files,
//!   and its `--shard`; `names`: each input's output, mask and cloud mask
//!   names, and the named files that are not inputs);
//! - `s2`: a Sentinel-2 product (or band stack) in -> one `run` per
//!   resolution group, each with its own model, and the `--stack`.

pub mod batch;
pub mod cache;
pub mod fit;
pub mod inputs;
pub mod names;
pub mod outputs;
pub mod provenance;
pub mod run;
pub mod s2;
pub mod stage1;
pub mod strip;
pub mod summary;

pub use cache::ModelCache;
pub use run::{remove, remove_cached};
pub use summary::{RefineSummary, RemoveSummary};
