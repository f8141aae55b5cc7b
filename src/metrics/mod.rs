//! Image quality, and the `eval` and `quality` commands.
//!
//! - `reference`: full-reference PSNR, SSIM, RMSE on one band (pure);
//! - `noref`: no-reference NIQE and BRISQUE (pure, the paper's metrics for
//!   the diffusion stage);
//! - `evaluate`: `idfcr eval`: prediction and reference rasters in -> scores
//!   per band and file;
//! - `quality`: `idfcr quality`: rasters in -> NIQE and BRISQUE.

pub mod evaluate;
pub mod noref;
pub mod quality;
pub mod reference;
