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
    // SSIM squares (0.03 x range)^2 next to squared pixel values: far past
    // any pixel type's span (Float64 data in 0..1e30, say) it overflows and
    // every score became NaN with exit 0.
    const MOST: f64 = 1e100;
    if d > 0.0 && d <= MOST {
        Ok(d)
    } else {
        let shown = if d.abs() >= 1e15 {
            format!("{d:e}")
        } else {
            d.to_string()
        };
        Err(crate::error::Error::Usage(format!(
            "--data-range {shown} must be a positive number, at most {MOST:e}"
        )))
    }
}

pub mod evaluate;
pub mod noref;
pub mod quality;
pub mod reference;
