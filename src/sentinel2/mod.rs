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
//! - `stack`: the 10 m stack of every cleaned band (`--stack`).
//!
//! The run of `idfcr s2` itself (one product in, one output per group) is
//! `crate::pipeline::s2`: it drives the pipeline, which reads products
//! through this folder.

pub mod bands;
pub(crate) mod cloud_source;
pub mod detector;
pub mod input;
pub(crate) mod plan;
pub mod product;
pub mod stack;
