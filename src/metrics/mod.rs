//! Image quality, and the `eval` and `quality` commands.
//!
//! - `reference`: full-reference PSNR, SSIM, RMSE on one band (pure);
//! - `noref`: no-reference NIQE and BRISQUE (pure, the paper's metrics for
//!   the diffusion stage);
//! - `evaluate`: `idfcr eval`: prediction and reference rasters in -> scores
//!   per band and file;
//! - `quality`: `idfcr quality`: rasters in -> NIQE and BRISQUE.

/// A user's `--data-range`: a positive, finite number, else a usage error.
pub fn checked_data_range(d: f64) -> crate::error::Result<f64> {
    if d > 0.0 && d.is_finite() {
        Ok(d)
    } else {
        Err(crate::error::Error::Usage(format!(
            "--data-range {d} must be a positive number"
        )))
    }
}

pub mod evaluate;
pub mod noref;
pub mod quality;
pub mod reference;
