//! Sentinel-2 products (`idfcr s2`, and `.SAFE` inputs to `remove`).
//!
//! - `bands`: pure band facts: band names, resolution groups, stack names;
//! - `product`: pure product parsing: metadata (level, baseline, offsets,
//!   nodata), subdataset names, output names;
//! - `input`: a product path (SAFE folder, zip, MTD file, subdataset, band
//!   stack) in -> the GDAL dataset of one group with its bands in order and
//!   its radiometry;
//! - `cloud_source`: which p each group blends by (`--cloud-mask`,
//!   s2cloudless, or the group model's own);
//! - `detector`: s2cloudless's cloud probability of an L1C scene, which
//!   every group blends by, calibrated as its model asks;
//! - `plan`: what a run will do, settled before any work: its settings
//!   (`S2RunConfig`), one job per group with its options, and every output
//!   path checked;
//! - `stack`: the 10 m stack of every cleaned band (`--stack`);
//! - `run`: one product in -> one output per resolution group (or a stack),
//!   each through `crate::pipeline`.

pub mod bands;
mod cloud_source;
pub mod detector;
pub mod input;
mod plan;
pub mod product;
pub mod run;
pub mod stack;
