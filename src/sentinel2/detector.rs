//! s2cloudless as the cloud probability of Sentinel-2 L1C scenes.
//!
//! The group models' own cloudy-attention maps miss haze that the models
//! do remove, so the default blend gave away 2 dB on the 10 m validation
//! images. Sentinel Hub's s2cloudless pixel classifier (LightGBM on ten L1C
//! bands, CC BY-SA 4.0, converted to ONNX by
//! `onnx/idfcr_train/export/s2cloudless.py`; card: onnx/models/s2cloudless.md)
//! finds those pixels from all bands at once. It runs once per scene on a
//! 60 m grid (every band block-averaged onto it: for a whole tile a 13 MB
//! map from about 140 MB of bands); each group calibrates that map as its
//! model asks (`tiling::probability`; a model that removes thin cloud well
//! wants a lower threshold) and samples it on its own grid.
//!
//! It needs L1C top-of-atmosphere reflectance with B10; L2A products (no
//! B10, surface reflectance) keep each model's own p.

use std::path::{Path, PathBuf};

use gdal::raster::ResampleAlg;
use gdal::Dataset;
use ndarray::{Array2, Array4, Axis};

use crate::error::{gdal_message, Error, Result};
use crate::models::pixel_classifier::PixelClassifier;
use crate::tiling::probability::{calibrate, Calibration, ProbabilityMap};

/// Where the cloud probability p that the groups blend by comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloudDetector {
    /// s2cloudless when the input has its ten L1C bands, else each model's own.
    #[default]
    Auto,
    /// s2cloudless, or an error when the input cannot feed it.
    S2cloudless,
    /// Each group model's own calibrated probability.
    Model,
}

/// A stack's pixel size in metres: from its geotransform when its CRS is
/// projected; in a geographic CRS (an Earth Engine export in EPSG:4326) its
/// north-south step in metres along the meridian, which does not shrink
/// with latitude as the east-west step does; else 10 m (SEN12MS-CR and
/// `--stack` outputs are 10 m stacks without a CRS).
pub fn stack_pixel_m(ds: &gdal::Dataset) -> f64 {
    let (Ok(srs), Ok(g)) = (ds.spatial_ref(), ds.geo_transform()) else {
        return 10.0;
    };
    let per_unit_m = if srs.is_projected() {
        1.0
    } else if srs.is_geographic() {
        // Radians per unit (degrees: pi / 180) times the Earth's radius.
        srs.angular_units() * srs.semi_major().unwrap_or(6_378_137.0)
    } else {
        return 10.0;
    };
    let step = if srs.is_projected() { g[1] } else { g[5] };
    if step.abs() > 0.0 {
        // To the centimetre: an export "at 60 m" in degrees comes back as
        // 60.0000x m and must still count as 60.
        (step.abs() * per_unit_m * 100.0).round() / 100.0
    } else {
        10.0
    }
}

pub const DETECTOR_FILE: &str = "s2cloudless.onnx";
/// The classifier's features, in its order.
pub const BANDS: [&str; 10] = [
    "B1", "B2", "B4", "B5", "B8", "B8A", "B9", "B10", "B11", "B12",
];
/// The map's pixel size.
pub const MAP_RES_M: f64 = 60.0;
/// For group models that do not carry their own
/// `idfcr.detector_calibration`. Chosen by hand from the three groups'
/// `python -m idfcr_train.reports.s2_detectors` results (see the card):
/// the best summed gain among those that give every clear reference back
/// at >= 50 dB in every group (a 10 dB margin over the target, the choice
/// resting on 8 images).
pub const DEFAULT_CALIBRATION: Calibration = Calibration {
    t0: 0.6,
    t1: 0.9,
    dilate_px: 4,
    blur_px: 2,
};
const INPUT: &str = "l1c";
const OUTPUT: &str = "cloud_probability";
/// Pixels per inference call (the classifier works per pixel, so rows can
/// be cut anywhere).
const CHUNK_PX: usize = 1 << 20;

/// One of the ten bands: where to read it and how to make reflectance.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorBand {
    pub name: &'static str,
    pub source: String,
    /// GDAL band number in `source`.
    pub band_no: usize,
    /// Reflectance = (DN + dn_offset) / 10000.
    pub dn_offset: f64,
    /// The source's pixel size in metres.
    pub px_m: f64,
}

/// The map grid for a source of `size` (width, height) pixels of `px_m`
/// metres: (map size, source window it averages). Whole map pixels only,
/// as the measurement did (a 256 px patch at 10 m: 42 map px from the
/// first 252 source px); the few source pixels beyond the last map pixel
/// sample its edge.
pub fn map_grid(size: (usize, usize), px_m: f64) -> ((usize, usize), (usize, usize)) {
    let f = MAP_RES_M / px_m;
    let axis = |n: usize| {
        let m = ((n as f64 / f).floor() as usize).max(1);
        (m, ((m as f64 * f).round() as usize).clamp(1, n.max(1)))
    };
    let ((mw, ww), (mh, wh)) = (axis(size.0), axis(size.1));
    ((mw, mh), (ww, wh))
}

/// The detector's file among the model folders.
pub fn find_model(dirs: &[PathBuf]) -> Result<PathBuf> {
    crate::models::registry::find_bundled(DETECTOR_FILE, dirs, "pass --cloud-detector model")
}

/// The ten bands on the map grid: its size (width, height), reflectance
/// band-major, and how many bands are nodata at each map pixel.
struct MapBands {
    size: (usize, usize),
    data: Vec<f32>,
    /// Per map pixel, how many of the bands have no data there.
    missing: Vec<u8>,
}

/// Read the ten bands onto the map grid as reflectance: the exact mean of
/// each f x f block of source pixels when the map pixel is a whole number
/// f of source pixels (10, 20, 60 m: what the calibration was measured
/// with), read in strips; GDAL's average resampling otherwise.
fn read_bands(bands: &[DetectorBand]) -> Result<MapBands> {
    let mut open: Vec<(String, Dataset)> = Vec::new();
    let mut grids = Vec::with_capacity(bands.len());
    for b in bands {
        if !open.iter().any(|(s, _)| *s == b.source) {
            let watch = crate::error::gdal_watch::GdalWatch::start();
            let ds = Dataset::open(&b.source).map_err(|e| {
                Error::input(&b.source, format!("cannot open: {}", gdal_message(&e)))
                    .because_gdal(e)
            })?;
            crate::io::open::check_complete(&b.source, &watch)?;
            open.push((b.source.clone(), ds));
        }
        let ds = &open.iter().find(|(s, _)| *s == b.source).expect("opened").1;
        grids.push(map_grid(ds.raster_size(), b.px_m));
    }
    let (w, h) = grids[0].0;
    if let Some((b, g)) = bands.iter().zip(&grids).find(|(_, g)| g.0 != (w, h)) {
        return Err(Error::input(
            &b.source,
            format!(
                "{} gives a {} x {} cloud map, {} a {w} x {h} one: the bands do not cover the same ground",
                b.name, g.0 .0, g.0 .1, bands[0].name
            ),
        ));
    }
    // The whole map is held (1830 x 1830 for a product's 10980 px): ten
    // float32 bands, one band's block means being read, the nodata flags
    // and the probability.
    crate::io::memory::ensure_fits(
        &bands[0].source,
        "the cloud detector's map of it",
        &[w, h],
        4 * bands.len() + 17,
    )?;
    let n = w * h;
    let mut data = vec![0f32; bands.len() * n];
    let mut missing = vec![0u8; n];
    for (i, (b, g)) in bands.iter().zip(&grids).enumerate() {
        let ds = &open.iter().find(|(s, _)| *s == b.source).expect("opened").1;
        let band = ds.rasterband(b.band_no).map_err(|e| {
            Error::input(
                &b.source,
                format!("band {}: {}", b.band_no, gdal_message(&e)),
            )
            .because_gdal(e)
        })?;
        let means = band_means(&band, b, g.1, (w, h))?;
        for (k, m) in means.into_iter().enumerate() {
            match m {
                Some(v) => data[i * n + k] = ((v as f64 + b.dn_offset) / 10000.0) as f32,
                None => missing[k] += 1,
            }
        }
    }
    Ok(MapBands {
        size: (w, h),
        data,
        missing,
    })
}

/// One band's means on the map grid of `size` map pixels, read from the
/// `window` of its raster the grid covers (`map_grid`): the exact mean of
/// each f x f block where a map pixel is a whole number f of the band's
/// pixels, GDAL's average resampling otherwise. None where a map pixel
/// holds no data (DN 0, or not a number).
fn band_means(
    band: &gdal::raster::RasterBand,
    b: &DetectorBand,
    window: (usize, usize),
    (w, h): (usize, usize),
) -> Result<Vec<Option<f32>>> {
    let read_err = |e: gdal::errors::GdalError| {
        // Name the band's own file where the source is a product's group:
        // that file is the one to check or fetch again.
        let file = crate::io::open::files_read_by(&b.source)
            .into_iter()
            .find(|f| band_of_file(f).as_deref() == Some(b.name));
        let what = format!(
            "cannot read {} (the file may be truncated or corrupt): {}",
            b.name,
            gdal_message(&e)
        );
        match file {
            Some(f) => Error::input(
                f.to_string_lossy(),
                format!("{what} (read for {})", b.source),
            ),
            None => Error::input(&b.source, what),
        }
        .because_gdal(e)
    };
    // (A raster smaller than one map pixel has a partial window.)
    let Some(f) = whole_factor(b.px_m).filter(|&f| window == (w * f, h * f)) else {
        let means = band
            .read_as::<f32>((0, 0), window, (w, h), Some(ResampleAlg::Average))
            .map_err(read_err)?;
        return Ok(means
            .data()
            .iter()
            .map(|&v| (v.is_finite() && v > 0.0).then_some(v))
            .collect());
    };
    let mut out = Vec::with_capacity(w * h);
    let rows_per = (STRIP_ROWS / f).max(1); // map rows per read
    for r0 in (0..h).step_by(rows_per) {
        let nr = rows_per.min(h - r0);
        let strip = band
            .read_as::<f32>(
                (0, (r0 * f) as isize),
                (w * f, nr * f),
                (w * f, nr * f),
                None,
            )
            .map_err(read_err)?;
        out.extend(block_means(strip.data(), w * f, f));
    }
    Ok(out)
}

/// Source rows read at a time (a 10980 px band: 4 MB per 96 rows).
const STRIP_ROWS: usize = 96;

/// f when a map pixel is a whole number f of `px_m` pixels.
fn whole_factor(px_m: f64) -> Option<usize> {
    let f = MAP_RES_M / px_m;
    (f >= 1.0 && (f - f.round()).abs() < 1e-6).then_some(f.round() as usize)
}

/// Means of the f x f blocks of a strip (`width` wide, a whole number of
/// block rows), row by row; None where a block holds nodata (DN 0,
/// Sentinel-2's nodata, or a non-finite value).
pub fn block_means(strip: &[f32], width: usize, f: usize) -> Vec<Option<f32>> {
    let (cols, rows) = (width / f, strip.len() / width / f);
    let mut out = Vec::with_capacity(cols * rows);
    for br in 0..rows {
        for bc in 0..cols {
            let mut sum = 0f64;
            let mut ok = true;
            for y in br * f..(br + 1) * f {
                for &v in &strip[y * width + bc * f..y * width + (bc + 1) * f] {
                    ok &= v.is_finite() && v > 0.0;
                    sum += v as f64;
                }
            }
            out.push(ok.then_some((sum / (f * f) as f64) as f32));
        }
    }
    out
}

/// s2cloudless's raw cloud probability of a scene on the map grid (0 on
/// nodata), before any calibration, and where it could not see: a map
/// pixel where one of its ten bands has no data (a band's swath ends
/// early; a stack padded with a zero B10).
pub struct SceneDetection {
    pub prob: Array2<f32>,
    pub blind: Array2<bool>,
    /// Map pixels where any of its bands has data.
    pub scene: usize,
    /// What decides `prob` (`identity`): an output's settings line names it.
    pub identity: String,
}

impl SceneDetection {
    /// The map a group blends by: calibrated as its model asks (its
    /// `idfcr.detector_calibration`), else by `DEFAULT_CALIBRATION`.
    /// Where it could not see, p is NaN: the group's model's own p stands
    /// in there (`pipeline::stage1`), so that a band the detector lacks
    /// does not leave the other bands' clouds in place.
    pub fn calibrated(&self, cal: Option<Calibration>) -> ProbabilityMap {
        let cal = cal.unwrap_or(DEFAULT_CALIBRATION);
        let mut source = format!("s2cloudless on a {MAP_RES_M} m grid ({})", cal.describe());
        let blind = self.blind.iter().filter(|&&b| b).count();
        if blind > 0 {
            source.push_str(&format!(
                "; the model's own p where s2cloudless lacks a band ({:.1} % of the scene)",
                100.0 * blind as f64 / self.scene.max(1) as f64
            ));
        }
        let mut p = calibrate(&self.prob, cal);
        p.zip_mut_with(&self.blind, |v, &b| {
            if b {
                *v = f32::NAN;
            }
        });
        ProbabilityMap {
            p,
            settings: map_settings(&self.identity, Some(cal)),
            source,
        }
    }
}

/// The settings-line words for s2cloudless's map calibrated by `cal`: what
/// the pixels of a run blended by it depend on, knowable without running
/// the detector (`batch --skip-existing` checks it against an output's
/// line; the share of the scene it could not see is a function of the
/// files it names).
pub fn map_settings(identity: &str, cal: Option<Calibration>) -> String {
    // No ';': it separates the settings line's fields.
    format!(
        "s2cloudless calibrated ({}) {identity}",
        cal.unwrap_or(DEFAULT_CALIBRATION).describe()
    )
}

/// The Sentinel-2 band a product's image file holds, by the end of its
/// name (`T33TUG_20230823T095559_B01.jp2`, `..._B8A_20m.jp2` in L2A: "B1",
/// "B8A"); None for any other file.
fn band_of_file(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?.to_ascii_uppercase();
    // A band's masks (`MSK_DETFOO_B01.jp2`) are not its image: named as
    // no band, they always count (and an error never names them).
    if stem.starts_with("MSK_") {
        return None;
    }
    let mut parts = stem.rsplit('_');
    let last = parts.next()?;
    // L2A names end in the resolution: `_B02_10m`.
    let token = if last.ends_with('M') && last[..last.len() - 1].parse::<u32>().is_ok() {
        parts.next()?
    } else {
        last
    };
    let rest = token.strip_prefix('B')?;
    if rest == "8A" {
        return Some("B8A".into());
    }
    let n: u32 = rest
        .parse()
        .ok()
        .filter(|_| (1..=2).contains(&rest.len()))?;
    Some(format!("B{n}"))
}

/// What decides s2cloudless's raw map of a scene: its graph (SHA-256) and
/// every file its ten bands read (`names::source_identity`: name, size,
/// modification time).
pub fn identity(bands: &[DetectorBand], model: &Path) -> Result<String> {
    let bytes =
        std::fs::read(model).map_err(|e| Error::model(model, format!("cannot read it: {e}")))?;
    let sha = crate::models::pixel_cr::sha256_hex(&bytes);
    let mut sources: Vec<&str> = bands.iter().map(|b| b.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    // A product's band files that none of the ten bands is (B03 of the
    // 10 m group) do not decide the map: changing one redid every output.
    let used = |f: &Path| band_of_file(f).is_none_or(|b| BANDS.contains(&b.as_str()));
    let mut files: Vec<String> = sources
        .into_iter()
        .flat_map(|source| {
            let read = crate::io::open::files_read_by(source);
            std::iter::once(crate::io::names::source_identity(source)).chain(
                read.into_iter()
                    .filter(|f| f.is_file() && used(f))
                    .map(|f| crate::io::names::source_identity(&f.to_string_lossy())),
            )
        })
        .collect();
    files.sort();
    files.dedup();
    Ok(format!("graph {sha} reading {}", files.join(", ")))
}

/// s2cloudless's cloud probability of the scene on the map grid, raw:
/// each group calibrates it for its own model.
pub fn scene_probability(
    bands: &[DetectorBand],
    model: &Path,
    threads: usize,
    ort_lib: Option<&Path>,
) -> Result<SceneDetection> {
    let names: Vec<&str> = bands.iter().map(|b| b.name).collect();
    if names != BANDS {
        return Err(Error::model(
            model,
            format!(
                "needs bands {} in that order, got {}",
                BANDS.join(","),
                names.join(",")
            ),
        ));
    }
    // Before the read: a band file replaced during it leaves an output
    // that names the older file, which a rerun then redoes.
    let identity = identity(bands, model)?;
    let MapBands {
        size: (w, h),
        data,
        missing,
    } = read_bands(bands)?;

    let mut classifier = PixelClassifier::load(model, INPUT, OUTPUT, threads, ort_lib)?;
    let mut prob = Array2::<f32>::zeros((h, w));
    let rows_per = (CHUNK_PX / w.max(1)).max(1);
    let n = w * h;
    for r0 in (0..h).step_by(rows_per) {
        crate::interrupt::check()?;
        let nr = rows_per.min(h - r0);
        let mut x = Array4::<f32>::zeros((1, BANDS.len(), nr, w));
        for (b, mut plane) in x.index_axis_mut(Axis(0), 0).outer_iter_mut().enumerate() {
            let from = &data[b * n + r0 * w..b * n + (r0 + nr) * w];
            plane.iter_mut().zip(from).for_each(|(o, v)| *o = *v);
        }
        let p = classifier.run(x)?;
        for (k, &v) in p.iter().enumerate() {
            let at = r0 * w + k;
            prob[[at / w, at % w]] = if missing[at] > 0 { 0.0 } else { v };
        }
    }
    // Blind where some of its bands have data and some not; where none
    // has (beyond the swath), no group has data either.
    let all = bands.len() as u8;
    let scene = missing.iter().filter(|&&m| m < all).count();
    let blind = missing.iter().map(|&m| m > 0 && m < all).collect();
    let blind = Array2::from_shape_vec((h, w), blind).expect("one flag per map pixel");
    Ok(SceneDetection {
        prob,
        blind,
        scene,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_files_by_name() {
        // (file, the band it holds)
        let cases = [
            ("T33TUG_20230823T095559_B01.jp2", Some("B1")),
            ("T33TUG_20230823T095559_B8A.jp2", Some("B8A")),
            ("T33TUG_20230823T095559_B10.jp2", Some("B10")),
            ("T33TUG_20230823T095559_B02_10m.jp2", Some("B2")),
            ("t33tug_20230823t095559_b12_20m.jp2", Some("B12")),
            ("T33TUG_20230823T095559_TCI.jp2", None),
            ("T33TUG_20230823T095559_AOT_20m.jp2", None),
            ("MTD_TL.xml", None),
            ("MSK_DETFOO_B01.jp2", None),
            ("stack_B123.tif", None),
            ("B04", Some("B4")),
        ];
        for (file, want) in cases {
            assert_eq!(band_of_file(Path::new(file)).as_deref(), want, "{file}");
        }
    }

    #[test]
    fn stack_pixel_size_in_metres() {
        use gdal::spatial_ref::SpatialRef;
        // (EPSG code or 0 for none, geotransform's x and y steps, metres)
        let cases = [
            (32633, 20.0, -20.0, 20.0),
            // Earth Engine's 10 m in EPSG:4326: 10 m / 111.32 km per degree,
            // east-west the same number of degrees at any latitude.
            (4326, 8.983e-5, -8.983e-5, 10.0),
            (4326, 60.0 / 111_319.49, -60.0 / 111_319.49, 60.0),
            (0, 1.0, -1.0, 10.0),
        ];
        for (epsg, dx, dy, want) in cases {
            let mut ds = gdal::DriverManager::get_driver_by_name("MEM")
                .unwrap()
                .create("", 4, 4, 1)
                .unwrap();
            ds.set_geo_transform(&[10.0, dx, 0.0, 45.0, 0.0, dy])
                .unwrap();
            if epsg != 0 {
                ds.set_spatial_ref(&SpatialRef::from_epsg(epsg).unwrap())
                    .unwrap();
            }
            let got = stack_pixel_m(&ds);
            assert!((got - want).abs() < 0.01 * want, "EPSG {epsg}: {got} m");
            assert!(got <= MAP_RES_M || want > MAP_RES_M, "EPSG {epsg}: {got} m");
        }
    }

    #[test]
    fn block_means_average_whole_blocks_and_flag_nodata() {
        // A 2-row strip, 6 wide, blocks of 2: three blocks; the middle one
        // holds a DN 0 (nodata), the last a NaN.
        let strip = [
            1.0,
            3.0,
            5.0,
            0.0,
            9.0,
            f32::NAN, //
            5.0,
            7.0,
            5.0,
            5.0,
            9.0,
            9.0,
        ];
        assert_eq!(block_means(&strip, 6, 2), vec![Some(4.0), None, None]);
        // f = 1 is the strip itself.
        assert_eq!(block_means(&[2.0, 4.0], 2, 1), vec![Some(2.0), Some(4.0)]);
        // (pixel size, whole factor)
        for (px, want) in [
            (10.0, Some(6)),
            (20.0, Some(3)),
            (60.0, Some(1)),
            (25.0, None),
            (120.0, None),
        ] {
            assert_eq!(whole_factor(px), want, "{px} m");
        }
    }

    #[test]
    fn map_grid_takes_whole_map_pixels() {
        // (source size, pixel size) -> (60 m map size, source window)
        let cases = [
            ((10980, 10980), 10.0, ((1830, 1830), (10980, 10980))),
            ((5490, 5490), 20.0, ((1830, 1830), (5490, 5490))),
            ((1830, 1830), 60.0, ((1830, 1830), (1830, 1830))),
            ((256, 128), 10.0, ((42, 21), (252, 126))),
            ((4, 7), 10.0, ((1, 1), (4, 6))),
            ((0, 0), 10.0, ((1, 1), (1, 1))),
        ];
        for (size, px, want) in cases {
            assert_eq!(map_grid(size, px), want, "{size:?} at {px} m");
        }
    }
}
