//! The ONNX models and ONNX Runtime: everything that knows about `ort`.
//!
//! - `contract`: the `idfcr.*` metadata keys (one table shared with the
//!   Python exporters), one reader for them, one raster <-> model normaliser;
//! - `runtime`: finds and loads the ONNX Runtime library once per process;
//! - `pixel_cr`: a Pixel-CR graph in -> its contract (bands, scaling,
//!   window, halo, input range, probability) and a pool of sessions that
//!   turn tiles of model units into (clear, probability) tiles;
//! - `registry`: which model file a run uses (bundled models by bands);
//! - `pixel_classifier`: a per-pixel classifier graph (s2cloudless) run
//!   on the CPU, for `sentinel2::detector`;
//! - `ind`: the three IND graphs (encoder, denoiser, decoder) and their
//!   contract, for the diffusion stage.

pub mod contract;
pub mod ind;
pub mod pixel_classifier;
pub mod pixel_cr;
pub mod registry;
pub mod runtime;
