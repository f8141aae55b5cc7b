//! Scene-wide figures of an input from a subsample of its valid pixels
//! (cheap on a whole scene): the value range the model contract checks,
//! the percentiles `--stretch` maps, and each band's mean, which nodata
//! pixels stand in as for the model.

use crate::error::{gdal_message, Error, Result};
// Where they lived before `reader` kept them (library paths).
pub use crate::io::reader::BandStats;
use crate::io::reader::{is_nodata, InputRaster, SampleFigures, QUANTILE_STEPS};

/// The largest raster the fallback of `sample` reads whole (about 5 s of a
/// Byte raster here); a larger one gets a denser grid instead.
const SCAN_MAX_PX: usize = 1 << 28;

/// Sentinel-2's DN for a saturated pixel.
const S2_SATURATED: f64 = 65535.0;

/// Entry i: the value of `sorted` at i / QUANTILE_STEPS, by the rounding
/// `percentiles` used on the whole sample (so a table entry is the exact
/// percentile of the sample); empty for no values.
fn quantile_table(sorted: &[f64]) -> Vec<f64> {
    if sorted.is_empty() {
        return Vec::new();
    }
    (0..=QUANTILE_STEPS)
        .map(|i| {
            let p = i as f64 * 100.0 / QUANTILE_STEPS as f64;
            sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
        })
        .collect()
}

/// The quantile table's entry for percentile `p`, when it has one.
fn table_index(p: f64) -> Option<usize> {
    // p x steps / 100: exact for the percentiles users give (2, 98, 0.5).
    let i = p * QUANTILE_STEPS as f64 / 100.0;
    (i.fract() == 0.0 && (0.0..=QUANTILE_STEPS as f64).contains(&i)).then_some(i as usize)
}

impl InputRaster {
    /// Approximate (min, max) over the selected bands, with each band's
    /// `dn_offset` added (what the user's rescale maps from), on a subsample
    /// (overviews when present): enough to tell 8-bit from 16-bit from
    /// reflectance, cheap on a whole scene.
    pub fn approx_range(&self) -> Result<(f64, f64)> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (s, off) in self.band_stats()?.iter().zip(&self.dn_offset) {
            if let Some(s) = s {
                lo = lo.min(s.min + off);
                hi = hi.max(s.max + off);
            }
        }
        Ok((lo, hi))
    }

    /// Per-band percentiles `(p_lo, p_hi)` of all selected bands together
    /// (one map for all bands keeps the colour balance), on a subsample.
    /// Percentiles on the 0.1 % grid (2 and 98 for `--stretch`) come from
    /// the table `figures(true)` keeps; others read the subsample again.
    pub fn percentiles(&self, p_lo: f64, p_hi: f64) -> Result<(f64, f64)> {
        let table = self.figures(true)?.quantiles.unwrap_or_default();
        if table.is_empty() {
            return Err(Error::input(&self.source, "has no valid pixels"));
        }
        if let (Some(lo), Some(hi)) = (table_index(p_lo), table_index(p_hi)) {
            return Ok((table[lo], table[hi]));
        }
        let mut all = self.sample_with_offsets()?;
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
            .band_stats()?
            .iter()
            .map(|s| s.map(|s| s.mean))
            .collect())
    }

    /// Per selected band, the subsample's statistics, computed once per
    /// band selection (the range check and the nodata fill both ask).
    pub(crate) fn band_stats(&self) -> Result<Vec<Option<BandStats>>> {
        Ok(self.figures(false)?.bands)
    }

    /// The subsample's figures, taken once per band selection; with
    /// `quantiles`, also the joint quantile table (a sort of the whole
    /// subsample, so only when `--stretch` asks or a `--rescale` is judged
    /// on the percentiles, and first: `set_input_map` runs before the tiles).
    fn figures(&self, quantiles: bool) -> Result<SampleFigures> {
        // What decides which values count: the bands, their nodata and
        // whether the input is Sentinel-2's (which gets DN 0 as nodata,
        // and its saturated DN left out, after opening); the offsets move
        // the joint quantiles.
        let key = (
            self.nodata_per_band,
            self.band_nos
                .iter()
                .zip(&self.nodata)
                .map(|(&b, nd)| (b, nd.map(f64::to_bits)))
                .collect::<Vec<_>>(),
            self.dn_offset
                .iter()
                .map(|o| o.to_bits())
                .collect::<Vec<_>>(),
        );
        let mut cache = self.sample_stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, figures)) = cache.as_ref() {
            if *k == key && (figures.quantiles.is_some() || !quantiles) {
                return Ok(figures.clone());
            }
        }
        let sample = self.sample()?;
        let bands: Vec<Option<BandStats>> = sample
            .iter()
            .map(|v| {
                (!v.is_empty()).then(|| BandStats {
                    min: v.iter().copied().fold(f64::INFINITY, f64::min),
                    max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    mean: v.iter().sum::<f64>() / v.len() as f64,
                })
            })
            .collect();
        let quantiles = quantiles.then(|| {
            let mut all: Vec<f64> = sample
                .into_iter()
                .zip(&self.dn_offset)
                .flat_map(|(v, off)| v.into_iter().map(move |x| x + off))
                .collect();
            all.sort_by(|a, b| a.total_cmp(b));
            quantile_table(&all)
        });
        let figures = SampleFigures { bands, quantiles };
        *cache = Some((key, figures.clone()));
        Ok(figures)
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
        // between its points, and the range check would be skipped.
        if self.width.saturating_mul(self.height) > SCAN_MAX_PX {
            // Too big to read whole (a sparse 300 000 px scene would take
            // hours): a denser grid, then a refusal, since a scene whose
            // values cannot be checked must not run unchecked.
            let (w, h) = (self.width.min(4096), self.height.min(4096));
            crate::interrupt::check()?;
            let dense = self.sample_window((0, 0), (self.width, self.height), (w, h))?;
            if found(&dense) {
                return Ok(dense);
            }
            return Err(Error::input(
                &self.source,
                format!(
                    "no valid pixel in a {w} x {h} sample of its {} x {} pixels, so its values cannot be checked against the model's range; crop it to where it has data (gdal_translate -projwin or -srcwin) first",
                    self.width, self.height
                ),
            ));
        }
        // Every pixel is read then, in blocks of about a million (not whole
        // rows: a row of a VRT 2^31 px wide is 17 GB), until enough values
        // are found; a stop asked for is a stop.
        let cols = self.width.min(1 << 20);
        let rows = ((1usize << 20) / cols.max(1)).clamp(1, self.height);
        let mut all = vec![Vec::new(); self.band_nos.len()];
        'scan: for row0 in (0..self.height).step_by(rows) {
            let n = rows.min(self.height - row0);
            for col0 in (0..self.width).step_by(cols) {
                crate::interrupt::check()?;
                let m = cols.min(self.width - col0);
                let part = self.sample_window((col0, row0), (m, n), (m, n))?;
                for (a, p) in all.iter_mut().zip(part) {
                    a.extend(p);
                }
                if all.iter().map(Vec::len).sum::<usize>() >= 1 << 22 {
                    break 'scan;
                }
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
                    // Sentinel-2's saturated DN (SPECIAL_VALUE_SATURATED) is
                    // no reflectance: one such pixel must not fail the range
                    // check of a whole product.
                    .filter(|v| !(self.nodata_per_band && *v >= S2_SATURATED))
                    .collect(),
            );
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_quantile_table_holds_the_exact_percentiles() {
        let sorted: Vec<f64> = (0..4097).map(|i| (i * i) as f64 / 7.0).collect();
        let table = super::quantile_table(&sorted);
        let direct = |p: f64| sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize];
        for p in [0.0, 0.5, 2.0, 50.0, 98.0, 99.9, 100.0] {
            let i = super::table_index(p).unwrap_or_else(|| panic!("{p} is on the grid"));
            assert_eq!(table[i], direct(p), "{p}");
        }
        for p in [0.05, 2.25, -1.0, 100.1, f64::NAN] {
            assert_eq!(super::table_index(p), None, "{p}");
        }
        assert!(super::quantile_table(&[]).is_empty());
    }

    use super::*;

    #[test]
    fn band_means_and_range_leave_nodata_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tif");
        let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        let ds = driver
            .create_with_band_type::<f32, _>(&path, 4, 2, 2)
            .unwrap();
        // Band values; nodata -9999 (one per GeoTIFF), only band 1 holds it.
        let bands: [([f32; 8], Option<f64>); 2] = [
            ([1., 2., 3., 4., 5., 6., 7., -9999.], Some(-9999.0)),
            ([10., 10., 10., 10., 20., 20., 20., 20.], Some(-9999.0)),
        ];
        for (i, (v, nd)) in bands.iter().enumerate() {
            let mut b = ds.rasterband(i + 1).unwrap();
            b.write(
                (0, 0),
                (4, 2),
                &mut gdal::raster::Buffer::new((4, 2), v.to_vec()),
            )
            .unwrap();
            b.set_no_data_value(*nd).unwrap();
        }
        ds.close().unwrap();
        let input = InputRaster::open(&path.display().to_string(), None).unwrap();
        assert_eq!(input.band_means().unwrap(), [Some(4.0), Some(15.0)]);
        assert_eq!(input.approx_range().unwrap(), (1.0, 20.0));
        // Band 2 alone: the statistics follow the selection.
        let band2 = InputRaster::open(&path.display().to_string(), Some(&[1])).unwrap();
        assert_eq!(band2.band_means().unwrap(), [Some(15.0)]);
        assert_eq!(band2.approx_range().unwrap(), (10.0, 20.0));
        // A Sentinel-2 input's saturated DN is no value of the range.
        let s2 = dir.path().join("s2.tif");
        let ds = driver
            .create_with_band_type::<u16, _>(&s2, 2, 1, 1)
            .unwrap();
        ds.rasterband(1)
            .unwrap()
            .write(
                (0, 0),
                (2, 1),
                &mut gdal::raster::Buffer::new((2, 1), vec![1200u16, 65535]),
            )
            .unwrap();
        ds.close().unwrap();
        let mut s2 = InputRaster::open(&s2.display().to_string(), None).unwrap();
        assert_eq!(s2.approx_range().unwrap(), (1200.0, 65535.0));
        s2.nodata_per_band = true;
        assert_eq!(s2.approx_range().unwrap(), (1200.0, 1200.0));
    }
}
