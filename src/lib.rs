//! idfcr: cloud removal for satellite rasters with IDF-CR.
//!
//! `app` runs the subcommands (`remove`, `batch`, `eval`). The pipeline of a
//! `remove` run, module by module:
//! `cli` -> `config` -> `pipeline` { `raster_in` -> `tiling`/`blend` +
//! `model` (ONNX Runtime via `runtime`) -> `raster_out` }, with `progress`
//! and `interrupt` alongside. Pure modules (`tiling`, `blend`, `config`)
//! carry table-driven unit tests; GDAL and ORT stay in `raster_*`,
//! `model` and `runtime`.

pub mod app;
pub mod batch;
pub mod blend;
pub mod cli;
pub mod colorfix;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod ind_model;
pub mod interrupt;
pub mod metrics;
pub mod model;
pub mod names;
pub mod noref;
pub mod pipeline;
pub mod progress;
pub mod quality;
pub mod raster_in;
pub mod raster_out;
pub mod refine;
pub mod runtime;
pub mod sampler;
pub mod schedule;
pub mod sentinel2;
pub mod sentinel2_input;
pub mod sentinel2_run;
pub mod tiling;
pub mod units;

pub use app::{run_cli, stdout_line, stdout_text};
pub use error::{Error, Result};
