//! Scene-wide figures of an input from a subsample of its valid pixels
//! (cheap on a whole scene): the value range the model contract checks,
//! the percentiles `--stretch` maps, and each band's mean, which nodata
//! pixels stand in as for the model.

use crate::error::{gdal_message, Error, Result};
use crate::io::reader::{is_nodata, InputRaster};

impl InputRaster {
    /// Approximate (min, max) over the selected bands, with each band's
    /// `dn_offset` added (what the user's rescale maps from), on a subsample
    /// (overviews when present): enough to tell 8-bit from 16-bit from
    /// reflectance, cheap on a whole scene.
    pub fn approx_range(&self) -> Result<(f64, f64)> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in self.sample_with_offsets()? {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        Ok((lo, hi))
    }

    /// Per-band percentiles `(p_lo, p_hi)` of all selected bands together
    /// (one map for all bands keeps the colour balance), on a subsample.
    pub fn percentiles(&self, p_lo: f64, p_hi: f64) -> Result<(f64, f64)> {
        let mut all = self.sample_with_offsets()?;
        if all.is_empty() {
            return Err(Error::input(&self.source, "has no valid pixels"));
        }
        all.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| all[((p / 100.0) * (all.len() - 1) as f64).round() as usize];
        Ok((at(p_lo), at(p_hi)))
    }

    /// Each selected band's mean over the valid pixels of the subsample, as
    /// stored (None for a band without any): what a nodata pixel holds for
    /// the model. One value for the whole scene, so that a tile's input
    /// does not depend on where the tile lies (the tiled output stays the
    /// whole-image output), and ground-like, where 0 was black and a warped
    /// scene's black border read as the edge of a cloud.
    pub fn band_means(&self) -> Result<Vec<Option<f64>>> {
        Ok(self
            .sample()?
            .iter()
            .map(|v| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64))
            .collect())
    }

    /// Every band's sampled values with its `dn_offset` added, together.
    fn sample_with_offsets(&self) -> Result<Vec<f64>> {
        Ok(self
            .sample()?
            .into_iter()
            .zip(&self.dn_offset)
            .flat_map(|(v, off)| v.into_iter().map(move |x| x + off))
            .collect())
    }

    /// Valid values (nodata and non-finite values left out) of each
    /// selected band, as stored, on a subsample of up to 1024 x 1024
    /// pixels, read through GDAL's nearest resampling.
    fn sample(&self) -> Result<Vec<Vec<f64>>> {
        let (w, h) = (self.width.min(1024), self.height.min(1024));
        let all = self.sample_window((0, 0), (self.width, self.height), (w, h))?;
        let found = |a: &[Vec<f64>]| a.iter().any(|v| !v.is_empty());
        if found(&all) || (w, h) == (self.width, self.height) {
            return Ok(all);
        }
        // The grid found no valid pixel in a raster bigger than it: a thin
        // valid area (a 40 px corridor in a 50 000 px nodata canvas) falls
        // between its points, and the range check would be skipped. Every
        // pixel is read then, in strips of about a million, until enough
        // values are found.
        let rows = ((1usize << 20) / self.width.max(1)).clamp(1, self.height);
        let mut all = vec![Vec::new(); self.band_nos.len()];
        for row0 in (0..self.height).step_by(rows) {
            let n = rows.min(self.height - row0);
            let part = self.sample_window((0, row0), (self.width, n), (self.width, n))?;
            for (a, p) in all.iter_mut().zip(part) {
                a.extend(p);
            }
            if all.iter().map(Vec::len).sum::<usize>() >= 1 << 22 {
                break;
            }
        }
        Ok(all)
    }

    /// Valid values of each selected band in the window at `(col0, row0)`
    /// of `size`, read into a `buf` grid (smaller than `size`: subsampled).
    fn sample_window(
        &self,
        (col0, row0): (usize, usize),
        size: (usize, usize),
        (w, h): (usize, usize),
    ) -> Result<Vec<Vec<f64>>> {
        // Pixels the dataset mask hides are nodata here too: a warped
        // scene's fill (-9999 under an alpha band) is no value of its own.
        let hidden = self
            .dataset_mask
            .map(|src| crate::io::mask::hidden(&self.ds, src, (col0, row0), size, (w, h)))
            .transpose()
            .map_err(|e| {
                Error::input(
                    &self.source,
                    format!("cannot read the mask: {}", self.read_failure(&e)),
                )
            })?;
        let mut all = Vec::with_capacity(self.band_nos.len());
        for (i, &b) in self.band_nos.iter().enumerate() {
            let band = self
                .ds
                .rasterband(b)
                .map_err(|e| Error::input(&self.source, gdal_message(&e)).because_gdal(e))?;
            let buf = band
                .read_as::<f64>((col0 as isize, row0 as isize), size, (w, h), None)
                .map_err(|e| {
                    Error::input(
                        &self.source,
                        format!(
                            "cannot read (the file may be truncated or corrupt): {}",
                            self.read_failure(&e)
                        ),
                    )
                })?;
            let nd = self.nodata[i];
            all.push(
                buf.data()
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| !hidden.as_ref().is_some_and(|h| h[*p]))
                    .map(|(_, v)| *v)
                    .filter(|v| v.is_finite() && nd.is_none_or(|n| !is_nodata(*v, n)))
                    .collect(),
            );
        }
        Ok(all)
    }
}
