//! idfcr: cloud removal for satellite rasters with IDF-CR.
//!
//! The data flow of `idfcr remove IN OUT`, folder by folder:
//!
//! ```text
//! cli::args ──> config::RemoveConfig (validated once)
//!                 │
//!                 ▼
//! pipeline::run ─ io::reader (GDAL) ─> input raster, io::units (into model units)
//!   │             models::pixel_cr (ONNX Runtime via models::runtime)
//!   │             tiling::grid + tiling::weights (tiles in, seamless scene out)
//!   │  --refine:  diffusion::refine (encode, sampler, decode, colour fix)
//!   ▼
//! blend by the cloud probability: p x model + (1 - p) x input (tiling::cloud_blend)
//!   ▼
//! io::writer (temp file, checked writes, read back, no-replace move) ─> OUT
//! ```
//!
//! `pipeline::batch` and `pipeline::s2` make many such runs (a folder, a
//! Sentinel-2 product's resolution groups); `metrics` scores results
//! (`eval`, `quality`). Pure modules (`tiling`, `io::units`,
//! `diffusion::schedule`, `metrics::reference`, `sentinel2::bands`,
//! `sentinel2::product`) carry table-driven unit tests. ONNX Runtime is
//! called only in `models`. GDAL is called in `io`, in `sentinel2` (its
//! products, stacks and the detector's band reads), in `metrics` (the
//! rasters `eval` and `quality` score), and in `pipeline` only where an open
//! input's band metadata is read (`provenance::band_specs`, `fit`'s hint).

pub mod cli;
pub mod config;
pub mod diffusion;
pub mod error;
pub mod interrupt;
pub mod io;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod sentinel2;
pub mod tiling;

pub use cli::app::run_cli;
pub use cli::{stdout_line, stdout_report, stdout_text};
pub use error::{Error, Result};
