//! `eval`: score predictions against references (PSNR, SSIM, RMSE per band
//! and averaged), for one pair of rasters or two folders of them paired by
//! file name. GDAL reads the bands; `metrics::reference` does the arithmetic.

use std::path::{Path, PathBuf};

use crate::config::OutputType;
use crate::error::{Error, Result};
use crate::io::reader::{nodata_at, InputRaster};
use crate::metrics::reference::{band_scores, BandScores};

/// Settings of one `eval` run.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub pred: PathBuf,
    pub reference: PathBuf,
    /// None: the integer data type's full range (Byte 255, UInt16 65535, ...).
    pub data_range: Option<f64>,
    /// 0-based band indices; None: all.
    pub band_idx: Option<Vec<usize>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Mean {
    pub psnr: f64,
    pub ssim: f64,
    pub rmse: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BandResult {
    /// 1-based band number of the prediction, as in GDAL.
    pub band: usize,
    /// Its Sentinel-2 band name or colour, else the reference band's (None:
    /// neither has one), so that a report reads the same whichever file
    /// was the prediction.
    pub name: Option<String>,
    /// The reference's band it was scored against (paired by name or
    /// colour where both carry them, else by position).
    pub reference_band: usize,
    #[serde(flatten)]
    pub scores: BandScores,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageResult {
    pub pred: String,
    pub reference: String,
    pub bands: Vec<BandResult>,
    pub mean: Mean,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    pub data_range: f64,
    pub data_range_from: String,
    pub images: Vec<ImageResult>,
    /// Mean over images of the per-image band means.
    pub mean: Mean,
}

fn mean_of(items: impl Iterator<Item = (f64, f64, f64)>) -> Mean {
    let v: Vec<_> = items.collect();
    let n = v.len().max(1) as f64;
    Mean {
        psnr: v.iter().map(|x| x.0).sum::<f64>() / n,
        ssim: v.iter().map(|x| x.1).sum::<f64>() / n,
        rmse: v.iter().map(|x| x.2).sum::<f64>() / n,
    }
}

/// The (pred, reference) file pairs: the two paths themselves, or files of
/// the same name in two folders (every file needs its partner).
pub fn pairs(pred: &Path, reference: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    // One side a folder and the other missing: the missing one is the news,
    // not that it is no folder.
    if pred.is_dir() != reference.is_dir() {
        for p in [pred, reference] {
            if !p.exists() {
                return Err(Error::input(
                    p.display().to_string(),
                    "no such file or folder",
                ));
            }
        }
    }
    if !pred.is_dir() {
        if reference.is_dir() {
            return Err(Error::Usage(format!(
                "{} is a folder, so {} must be one too",
                reference.display(),
                pred.display()
            )));
        }
        return Ok(vec![(pred.to_path_buf(), reference.to_path_buf())]);
    }
    if !reference.is_dir() {
        return Err(Error::Usage(format!(
            "{} is a folder, so {} must be one too",
            pred.display(),
            reference.display()
        )));
    }
    let names = raster_files(pred)?;
    let refs = raster_files(reference)?;
    let has =
        |list: &[PathBuf], name: &std::ffi::OsStr| list.iter().any(|p| p.file_name() == Some(name));
    // A reference without its prediction (an input a batch failed on) would
    // leave the mean over fewer images than the user thinks.
    let unscored: Vec<String> = refs
        .iter()
        .filter_map(|r| r.file_name())
        .filter(|n| !has(&names, n))
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if !unscored.is_empty() {
        let more = if unscored.len() > 3 { ", ..." } else { "" };
        return Err(Error::input(
            reference.display().to_string(),
            format!(
                "{} reference(s) have no prediction of the same name in {}: {}{more}",
                unscored.len(),
                pred.display(),
                unscored[..unscored.len().min(3)].join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    for p in names {
        let name = p.file_name().expect("a listed file has a name").to_owned();
        if !has(&refs, &name) {
            return Err(Error::input(
                p.display().to_string(),
                format!("no reference of the same name in {}", reference.display()),
            ));
        }
        out.push((p, reference.join(name)));
    }
    if out.is_empty() {
        return Err(Error::input(
            pred.display().to_string(),
            "folder holds no rasters",
        ));
    }
    Ok(out)
}

/// The files of a folder `eval` pairs by name, sorted: no hidden files and
/// no GDAL side files (`.aux.xml`, `.ovr`).
fn raster_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::input(dir.display().to_string(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && !crate::io::names::is_side_file(p)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The data type every reference shares, which sets the default data
/// range. References of different types have no common range: one range
/// for all would score a Float32 pair against 255 (and its PSNR would be
/// some 50 dB too high).
/// Also whether the first pair is Sentinel-2 (the data range follows:
/// `default_range`): its reference's bands are named as Sentinel-2 bands,
/// or its prediction's are and the reference holds DNs wider than a byte.
fn reference_type(
    list: &[(PathBuf, PathBuf)],
    bands: Option<&[usize]>,
) -> Result<(OutputType, bool)> {
    let mut first: Option<(OutputType, &Path)> = None;
    let mut sentinel2 = false;
    for (p, r) in list {
        let opened = InputRaster::open(&r.display().to_string(), bands)?;
        let t = opened.data_type;
        match first {
            None => {
                first = Some((t, r));
                // An `s2` output against a reference with unnamed bands
                // scores as the cards do (no 8-bit reference holds DNs).
                sentinel2 = sentinel2_named(&opened.ds)
                    || (t != OutputType::Byte
                        && InputRaster::open(&p.display().to_string(), bands)
                            .is_ok_and(|pred| sentinel2_named(&pred.ds)));
            }
            Some((t0, r0)) if t0 != t => {
                return Err(Error::Usage(format!(
                    "the references differ in data type ({} is {t0:?}, {} is {t:?}): give --data-range, or score them separately",
                    r0.display(),
                    r.display()
                )))
            }
            Some(_) => {}
        }
    }
    Ok((
        first.expect("pairs() returns at least one pair").0,
        sentinel2,
    ))
}

/// Sentinel-2 DNs are reflectance x 10000 (`QUANTIFICATION_VALUE`): the
/// data range the model cards score in (reflectance 0..1).
pub const SENTINEL2_RANGE: f64 = 10000.0;

/// The values scores assume when the user gives no `--data-range`.
#[derive(Debug, PartialEq)]
pub struct DefaultRange {
    /// The lowest value (an Int16 image starts at -32768).
    pub lo: f64,
    /// The data range (PSNR's peak, SSIM's constants, grey's scale).
    pub span: f64,
    /// What it is, for the report.
    pub from: String,
}

/// The default data range: an integer type's full span, or for bands
/// named as Sentinel-2 bands (as `idfcr s2` writes them) the reflectance
/// scale from 0, not UInt16's 65535 (which would add 16 dB to every PSNR
/// and flatten SSIM's structure term). None for floating-point values.
pub fn default_range(t: OutputType, sentinel2: bool) -> Option<DefaultRange> {
    match t {
        OutputType::Float32 | OutputType::Float64 => None,
        _ if sentinel2 => Some(DefaultRange {
            lo: 0.0,
            span: SENTINEL2_RANGE,
            from: "Sentinel-2 reflectance x 10000".to_string(),
        }),
        other => {
            let (lo, hi) = other.range();
            Some(DefaultRange {
                lo,
                span: hi - lo,
                from: format!("full range of {other:?}"),
            })
        }
    }
}

/// Whether every band of `ds` has a Sentinel-2 band name.
pub fn sentinel2_named(ds: &gdal::Dataset) -> bool {
    let names = crate::sentinel2::input::stack_band_names(ds);
    !names.is_empty() && names.iter().all(Option::is_some)
}

/// The reference's bands (GDAL numbers) in the prediction's order, paired
/// by Sentinel-2 band name when both rasters name all of theirs: `idfcr s2`
/// writes each group in wavelength order, where GDAL's SENTINEL2 driver
/// lists the 10 m group as B4 B3 B2 B8, so pairing by position would score
/// B2 against B4. None: nothing to go by; bands pair by position.
fn reference_bands_by_name(
    p: &InputRaster,
    reference: &gdal::Dataset,
    rs: &str,
) -> Result<Option<Vec<usize>>> {
    use crate::sentinel2::input::{gdal_band_name, stack_band_names};
    let pred: Option<Vec<&str>> = p
        .band_nos
        .iter()
        .map(|&b| gdal_band_name(&p.ds, b))
        .collect();
    let names = stack_band_names(reference);
    let (Some(pred), true) = (pred, names.iter().all(Option::is_some)) else {
        return Ok(None);
    };
    pred.iter()
        .map(|&want| {
            names
                .iter()
                .position(|n| *n == Some(want))
                .map(|i| i + 1)
                .ok_or_else(|| {
                    Error::input(
                        rs,
                        format!("has no band {want}, which the prediction has (Sentinel-2 bands are paired by name)"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// A band's Sentinel-2 name, else its colour (Red, Green...), if any.
fn band_label(ds: &gdal::Dataset, band_no: usize) -> Option<String> {
    match crate::sentinel2::input::gdal_band_name(ds, band_no) {
        Some(name) => Some(name.to_string()),
        None => colour_tag(ds, band_no),
    }
}

/// A band's colour interpretation when it names a colour (not unset,
/// Undefined or Gray).
fn colour_tag(ds: &gdal::Dataset, band_no: usize) -> Option<String> {
    let band = ds.rasterband(band_no).ok()?;
    let colour = crate::io::mask::color_name(&band);
    (!matches!(colour.as_str(), "" | "Undefined" | "Gray")).then_some(colour)
}

/// The reference's bands in the prediction's order by colour
/// interpretation, when the prediction tags every selected band with a
/// distinct colour (Red, Green, Blue...) and the reference holds each of
/// them on exactly one of its bands (any of them: `-b 1` of an RGB raster
/// is paired with the red band of a BGR one): an RGB raster against a BGR
/// one would otherwise score red against blue. None (pair by position)
/// when a band is untagged, grey or repeated.
fn reference_bands_by_colour(p: &InputRaster, r: &InputRaster) -> Option<Vec<usize>> {
    use crate::io::mask::color_name;
    let colour = |ds: &gdal::Dataset, b: usize| ds.rasterband(b).ok().map(|band| color_name(&band));
    let pc: Vec<String> = p
        .band_nos
        .iter()
        .map(|&b| colour_tag(&p.ds, b))
        .collect::<Option<_>>()?;
    let mut seen = std::collections::HashSet::new();
    if !pc.iter().all(|n| seen.insert(n)) {
        return None;
    }
    let all: Vec<String> = (1..=r.ds.raster_count())
        .map(|b| colour(&r.ds, b))
        .collect::<Option<_>>()?;
    let order: Vec<usize> = pc
        .iter()
        .map(|c| {
            let mut at = all
                .iter()
                .enumerate()
                .filter(|(_, x)| *x == c)
                .map(|(i, _)| i + 1);
            match (at.next(), at.next()) {
                (Some(b), None) => Some(b),
                _ => None,
            }
        })
        .collect::<Option<_>>()?;
    (order != r.band_nos).then_some(order)
}

/// A raster's Sentinel-2 radiometry for scoring, its product metadata read
/// once: a product subdataset's bands that declare no nodata get the
/// metadata's nodata DN; returned, per selected band, what
/// turns a DN into reflectance x 10000: a product's offsets by band name,
/// -1000 for a raster whose metadata names baseline 04.00 or later (a stack
/// cut from a product, an `idfcr s2` output), else 0 (SEN12MS-CR, anything
/// not Sentinel-2).
fn s2_radiometry(raster: &mut InputRaster) -> Result<Vec<f64>> {
    use crate::sentinel2::input::{gdal_band_name, load_product_meta, stack_baseline};
    let names: Option<Vec<&str>> = raster
        .band_nos
        .iter()
        .map(|&b| gdal_band_name(&raster.ds, b))
        .collect();
    if let Some(sd) = crate::sentinel2::product::parse_subdataset(&raster.source) {
        let meta = load_product_meta(&sd.mtd)?;
        let offsets = match names {
            Some(n) => n.iter().map(|b| meta.offset(b)).collect(),
            None => vec![0.0; raster.bands()],
        };
        for nd in raster.nodata.iter_mut().filter(|nd| nd.is_none()) {
            *nd = Some(meta.nodata);
        }
        raster.nodata_per_band = true;
        return Ok(offsets);
    }
    let off = match names {
        Some(_) if stack_baseline(&raster.ds, &raster.source)?.is_some() => {
            crate::sentinel2::input::BASELINE_04_OFFSET
        }
        _ => 0.0,
    };
    Ok(vec![off; raster.bands()])
}

/// Score one pair.
fn eval_pair(
    pred: &Path,
    reference: &Path,
    band_idx: Option<&[usize]>,
    data_range: f64,
) -> Result<ImageResult> {
    let ps = pred.display().to_string();
    let rs = reference.display().to_string();
    let mut p = InputRaster::open(&ps, band_idx)?;
    let mut r = InputRaster::open(&rs, band_idx)?;
    let by_name = reference_bands_by_name(&p, &r.ds, &rs)?;
    if let Some(order) = by_name.or_else(|| reference_bands_by_colour(&p, &r)) {
        r.keep_bands(order)?;
    }
    // A Sentinel-2 product subdataset declares no GDAL nodata: its DN 0 is
    // nodata by the product's metadata, as `remove` and `s2` read it.
    // Scored as data, the swath edges' zeros matched themselves exactly and
    // favoured doing nothing over an `idfcr s2` output (nodata there).
    // Sentinel-2 DNs of different baselines differ by the offset for one
    // reflectance (a 2023 output against a 2021 reference: 1000 DN, 25 dB
    // for identical ground): both are scored as reflectance x 10000.
    let (off_p, off_r) = (s2_radiometry(&mut p)?, s2_radiometry(&mut r)?);
    if (p.width, p.height, p.bands()) != (r.width, r.height, r.bands()) {
        return Err(Error::input(
            &ps,
            format!(
                "is {} x {} x {} bands but the reference {rs} is {} x {} x {}",
                p.width,
                p.height,
                p.bands(),
                r.width,
                r.height,
                r.bands()
            ),
        ));
    }
    crate::io::same_grid::check(&p.ds, &ps, &r.ds, &rs)?;
    let (w, h) = (p.width, p.height);
    // Both images as float32, then per band float64 copies, the validity
    // flags and SSIM's filtered planes (about 88 bytes a pixel).
    crate::io::memory::ensure_fits(&ps, "scoring it whole", &[w, h], 8 * p.bands() + 88)?;
    let n = w * h;
    let pv = p.read_window(0, h, 0, w)?;
    let rv = r.read_window(0, h, 0, w)?;
    let valid: Vec<bool> = p
        .valid_mask(&pv, None, n)
        .iter()
        .zip(r.valid_mask(&rv, None, n))
        .map(|(a, b)| *a && b)
        .collect();
    let mut bands = Vec::new();
    for (i, &band_no) in p.band_nos.iter().enumerate() {
        let mut a: Vec<f64> = pv[i * n..(i + 1) * n].iter().map(|&v| v as f64).collect();
        let mut b: Vec<f64> = rv[i * n..(i + 1) * n].iter().map(|&v| v as f64).collect();
        let at_nodata = |x: f64, nd: Option<f64>| nd.is_some_and(|nd| nodata_at(x, nd, false));
        // Nodata band by band, as `remove` reads it (a band's swath ends
        // early; a VRT of one file per band): a hole in one band is left out
        // of that band's score only. Scored as data, a -9999 hole in band 1
        // gave it -25.9 dB.
        let band_valid: Vec<bool> = (0..n)
            .map(|q| valid[q] && !at_nodata(a[q], p.nodata[i]) && !at_nodata(b[q], r.nodata[i]))
            .collect();
        // Offsets after the nodata test, which is on the DNs as stored.
        a.iter_mut().for_each(|x| *x += off_p[i]);
        b.iter_mut().for_each(|x| *x += off_r[i]);
        let scores =
            band_scores(&a, &b, &band_valid, h, w, data_range).map_err(|e| Error::input(&ps, e))?;
        bands.push(BandResult {
            band: band_no,
            name: band_label(&p.ds, band_no).or_else(|| band_label(&r.ds, r.band_nos[i])),
            reference_band: r.band_nos[i],
            scores,
        });
    }
    let mean = mean_of(
        bands
            .iter()
            .map(|b| (b.scores.psnr, b.scores.ssim, b.scores.rmse)),
    );
    Ok(ImageResult {
        pred: ps,
        reference: rs,
        bands,
        mean,
    })
}

pub fn evaluate(cfg: &EvalConfig) -> Result<EvalReport> {
    crate::io::gdal_config::defaults();
    let list = pairs(&cfg.pred, &cfg.reference)?;
    let (data_range, from) = match cfg.data_range {
        Some(d) => (super::checked_data_range(d)?, "--data-range".to_string()),
        None => {
            let (t, sentinel2) = reference_type(&list, cfg.band_idx.as_deref())?;
            let d = default_range(t, sentinel2).ok_or_else(|| {
                // What the file holds decides it, as in `quality`: exit 1.
                Error::input(list[0].1.display().to_string(), format!("holds {t:?} values: give their range with --data-range (1 for reflectance 0..1)"))
            })?;
            (d.span, d.from)
        }
    };
    let images = list
        .iter()
        .map(|(p, r)| {
            // A scheduler's SIGTERM or Ctrl-C stops a long folder between pairs.
            crate::interrupt::check()?;
            eval_pair(p, r, cfg.band_idx.as_deref(), data_range)
        })
        .collect::<Result<Vec<_>>>()?;
    // And during the last (or only) pair: a stop asked for is a stop (130,
    // no report), not a full report and exit 0.
    crate::interrupt::check()?;
    let mean = mean_of(
        images
            .iter()
            .map(|i| (i.mean.psnr, i.mean.ssim, i.mean.rmse)),
    );
    Ok(EvalReport {
        data_range,
        data_range_from: from,
        images,
        mean,
    })
}

/// One CSV row per band plus one "mean" row per image.
pub fn to_csv(report: &EvalReport) -> String {
    // The band's name and the reference's band come last: older readers
    // of the first eight columns are not disturbed.
    let mut s = String::from(
        "pred,reference,band,psnr,ssim,rmse,pixels,data_range,band_name,reference_band\n",
    );
    for img in &report.images {
        for b in &img.bands {
            s += &format!(
                "{},{},{},{:.6},{:.6},{:.6},{},{},{},{}\n",
                csv_field(&img.pred),
                csv_field(&img.reference),
                b.band,
                b.scores.psnr,
                b.scores.ssim,
                b.scores.rmse,
                b.scores.pixels,
                report.data_range,
                csv_field(b.name.as_deref().unwrap_or("")),
                b.reference_band
            );
        }
        s += &format!(
            "{},{},mean,{:.6},{:.6},{:.6},,{},,\n",
            csv_field(&img.pred),
            csv_field(&img.reference),
            img.mean.psnr,
            img.mean.ssim,
            img.mean.rmse,
            report.data_range
        );
    }
    s
}

/// A file name as one CSV field (RFC 4180): quoted, with its quotes
/// doubled, where it holds a comma, a quote or a line break, so that a
/// name like `scene_1,2.tif` does not shift the row's columns.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_csv_fields() {
        let cases = [
            ("out.tif", "out.tif"),
            ("scene_1,2.tif", "\"scene_1,2.tif\""),
            ("a \"b\".tif", "\"a \"\"b\"\".tif\""),
            ("two\nlines.tif", "\"two\nlines.tif\""),
            ("", ""),
        ];
        for (name, want) in cases {
            assert_eq!(csv_field(name), want, "{name}");
        }
    }

    #[test]
    fn default_ranges() {
        // (type, Sentinel-2 band names) -> (lo, range)
        let cases = [
            (OutputType::Byte, false, Some((0.0, 255.0))),
            (OutputType::UInt16, false, Some((0.0, 65535.0))),
            (OutputType::Int16, false, Some((-32768.0, 65535.0))),
            (OutputType::UInt16, true, Some((0.0, 10000.0))),
            (OutputType::Float32, false, None),
            (OutputType::Float32, true, None),
        ];
        for (t, s2, want) in cases {
            assert_eq!(
                default_range(t, s2).map(|r| (r.lo, r.span)),
                want,
                "{t:?} {s2}"
            );
        }
    }
}
