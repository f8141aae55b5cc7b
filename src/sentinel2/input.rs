//! Sentinel-2 inputs through GDAL: find the product metadata behind a
//! `.SAFE` folder, its `.zip`, the `MTD_MSIL*.xml` file or a `SENTINEL2_*:`
//! subdataset string; list the resolution groups; and adapt an opened
//! group (or a band-stacked GeoTIFF) for the pipeline: bands chosen by
//! name (BANDNAME metadata or band descriptions), never by position,
//! per-band radiometric offsets, DN 0 as nodata.

use std::path::Path;

use gdal::{Dataset, Metadata};

use crate::config::S2Options;
use crate::error::{gdal_message, Error, Result};
use crate::io::reader::InputRaster;
use crate::sentinel2::bands::{
    canonical_band, contradicted_name, group_by_name, parse_stack_bands, Group, GROUPS,
};
use crate::sentinel2::product::{
    parse_product_xml, parse_subdataset, product_name_from_path, ProductMeta,
};

/// Read a whole (small) file through GDAL's virtual file systems, so that
/// paths inside /vsizip/ work like plain ones.
pub fn read_vsi_text(path: &str) -> Result<String> {
    use std::ffi::CString;
    let c_path = CString::new(path).map_err(|_| Error::input(path, "path holds a NUL byte"))?;
    let mode = CString::new("rb").expect("static");
    // SAFETY: plain VSI calls on a handle we open and close here; the
    // buffer is sized by the caller-side loop.
    unsafe {
        let fp = gdal_sys::VSIFOpenL(c_path.as_ptr(), mode.as_ptr());
        if fp.is_null() {
            return Err(Error::input(path, "cannot open the product metadata"));
        }
        let mut bytes = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = gdal_sys::VSIFReadL(buf.as_mut_ptr().cast(), 1, buf.len(), fp);
            bytes.extend_from_slice(&buf[..n]);
            if n < buf.len() {
                break;
            }
            if bytes.len() > 64 << 20 {
                gdal_sys::VSIFCloseL(fp);
                return Err(Error::input(path, "product metadata is larger than 64 MB"));
            }
        }
        gdal_sys::VSIFCloseL(fp);
        String::from_utf8(bytes).map_err(|_| Error::input(path, "product metadata is not UTF-8"))
    }
}

pub fn load_product_meta(mtd: &str) -> Result<ProductMeta> {
    let text = read_vsi_text(mtd)?;
    parse_product_xml(&text).map_err(|e| Error::input(mtd, e))
}

/// Where the product metadata of `input` is, if `input` is a Sentinel-2
/// product (folder, zip, metadata file or subdataset string).
pub fn find_product_metadata(input: &str) -> Result<Option<String>> {
    if let Some(sd) = parse_subdataset(input) {
        return Ok(Some(sd.mtd));
    }
    let p = Path::new(input);
    let name = p
        .file_name()
        .map(|s| s.to_string_lossy().to_ascii_uppercase())
        .unwrap_or_default();
    let is_mtd = |n: &str| n == "MTD_MSIL1C.XML" || n == "MTD_MSIL2A.XML";
    if is_mtd(&name) {
        return Ok(Some(input.to_string()));
    }
    if p.is_dir() {
        for m in ["MTD_MSIL1C.xml", "MTD_MSIL2A.xml"] {
            if p.join(m).is_file() {
                return Ok(Some(p.join(m).to_string_lossy().into_owned()));
            }
        }
        if name.ends_with(".SAFE") {
            return Err(Error::input(
                input,
                "is a .SAFE folder without MTD_MSIL1C.xml or MTD_MSIL2A.xml",
            ));
        }
        return Ok(None);
    }
    if name.ends_with(".ZIP") && p.is_file() {
        let vsi = format!("/vsizip/{}", input.trim_start_matches("/vsizip/"));
        let entries = gdal::vsi::read_dir(&vsi, true).map_err(|e| {
            let why = gdal_message(&e);
            if crate::error::gdal_said_nothing(&why) {
                // GDAL says nothing useful: no cause to append.
                return Error::input(
                    input,
                    "cannot list the zip (GDAL cannot read it as a zip archive); is it a complete download?",
                );
            }
            Error::input(
                input,
                format!("cannot list the zip ({why}); is it a complete download?"),
            )
            .because_gdal(e)
        })?;
        let found = entries.iter().find(|e| {
            let depth = e.components().count();
            let n = e
                .file_name()
                .map(|s| s.to_string_lossy().to_ascii_uppercase())
                .unwrap_or_default();
            depth <= 2 && is_mtd(&n)
        });
        return Ok(found.map(|e| format!("{vsi}/{}", e.display())));
    }
    Ok(None)
}

/// One resolution group of a product: a GDAL subdataset.
#[derive(Debug, Clone)]
pub struct GroupSource {
    pub group: &'static Group,
    /// Subdataset name to open.
    pub dataset: String,
    /// "10m", or "10m_EPSG_32633" when the product spans several CRSs.
    pub label: String,
}

/// A Sentinel-2 product: its metadata and its groups.
#[derive(Debug, Clone)]
pub struct Product {
    pub mtd: String,
    pub meta: ProductMeta,
    /// Name for outputs (PRODUCT_URI without .SAFE, else from the path).
    pub name: String,
    pub groups: Vec<GroupSource>,
}

/// Open a product and list its groups; a subdataset string yields just
/// that group. `wanted`: group names to keep (None: all).
pub fn open_product(input: &str, mtd: &str, wanted: Option<&[&'static Group]>) -> Result<Product> {
    let meta = load_product_meta(mtd)?;
    let name = if meta.product.is_empty() {
        product_name_from_path(mtd)
    } else {
        meta.product.clone()
    };
    let mut names: Vec<String> = Vec::new();
    if parse_subdataset(input).is_some() {
        names.push(input.to_string());
    } else {
        let ds = Dataset::open(mtd).map_err(|e| {
            Error::input(
                input,
                format!(
                    "GDAL's SENTINEL2 driver cannot open the product ({})",
                    gdal_message(&e)
                ),
            )
        })?;
        let items = ds.metadata_domain("SUBDATASETS").unwrap_or_default();
        for kv in items {
            if let Some((k, v)) = kv.split_once('=') {
                if k.ends_with("_NAME") {
                    names.push(v.to_string());
                }
            }
        }
    }
    let mut groups = Vec::new();
    for n in &names {
        let Some(sd) = parse_subdataset(n) else {
            continue;
        };
        let Some(group) = group_by_name(&sd.kind) else {
            if parse_subdataset(input).is_some() {
                return Err(Error::input(
                    input,
                    format!("subdataset {} is not a 10m, 20m or 60m band group", sd.kind),
                ));
            }
            continue; // TCI, PREVIEW, ...
        };
        groups.push((group, n.clone(), sd.crs));
    }
    let crss: std::collections::BTreeSet<&String> = groups.iter().map(|g| &g.2).collect();
    let several = crss.len() > 1;
    let mut out: Vec<GroupSource> = groups
        .iter()
        .map(|(g, n, crs)| GroupSource {
            group: g,
            dataset: n.clone(),
            label: if several {
                format!("{}_{crs}", g.name)
            } else {
                g.name.to_string()
            },
        })
        .collect();
    let present: Vec<&str> = out.iter().map(|g| g.group.name).collect();
    crate::sentinel2::bands::check_groups_present(wanted, &present, input)?;
    if let Some(w) = wanted {
        out.retain(|g| w.iter().any(|n| n.name == g.group.name));
    }
    if out.is_empty() {
        return Err(Error::input(
            input,
            "has no 10m, 20m or 60m band group to process",
        ));
    }
    out.sort_by_key(|g| GROUPS.iter().position(|x| x == g.group));
    Ok(Product {
        mtd: mtd.to_string(),
        meta,
        name,
        groups: out,
    })
}

/// How an adapted input's DNs relate to reflectance, for the output tags.
pub fn radiometry_note(meta: &ProductMeta, names: &[&str], harmonized: bool) -> String {
    let item = meta.level.offset_item();
    let offs: Vec<String> = names
        .iter()
        .map(|b| format!("{b}={}", meta.offset(b)))
        .collect();
    let what = if harmonized {
        "archive declared harmonized (--s2-harmonized): no offset applied".to_string()
    } else if meta.offsets.is_empty() {
        format!(
            "baseline {} has no {item}: offset 0",
            if meta.baseline.is_empty() {
                "unknown"
            } else {
                &meta.baseline
            }
        )
    } else {
        format!("{item} applied: {}", offs.join(" "))
    };
    format!(
        "Sentinel-2 {} baseline {}: reflectance = (DN + offset) / {}; {what}; output DNs in the product's convention (same offset), DN 0 = nodata",
        meta.level.name(),
        meta.baseline,
        meta.quantification
    )
}

/// Band names of a raster from GDAL: BANDNAME metadata (SENTINEL2 driver)
/// or the band description, canonicalised; None where not a Sentinel-2 band.
pub fn gdal_band_name(ds: &Dataset, band_no: usize) -> Option<&'static str> {
    let band = ds.rasterband(band_no).ok()?;
    if let Some(n) = band.metadata_item("BANDNAME", "") {
        return canonical_band(&n);
    }
    let d = band.description().unwrap_or_default();
    // Descriptions such as "B4" or "B4, central wavelength 665 nm".
    canonical_band(d.split([',', ' ']).next().unwrap_or(""))
}

/// Sentinel-2 names of every band of `ds` (None where a band has none).
pub fn stack_band_names(ds: &Dataset) -> Vec<Option<&'static str>> {
    (1..=ds.raster_count())
        .map(|b| gdal_band_name(ds, b))
        .collect()
}

/// ESA's radiometric offset from processing baseline 04.00 on, the same for
/// every band (RADIO_ADD_OFFSET of L1C, BOA_ADD_OFFSET of L2A).
pub(crate) const BASELINE_04_OFFSET: f64 = -1000.0;

/// The processing baseline a band stack's metadata names when it is 04.00
/// or later (a `gdal_translate` of a product's subdataset keeps the
/// product's PROCESSING_BASELINE but not its per-band offsets, which are
/// then -1000 on every band). Read as no offset, such a stack was 1000 DN
/// too bright for the models and s2cloudless (p over most of a clear scene).
/// A stated quantification other than 10000 is refused, as for a product.
pub(crate) fn stack_baseline(ds: &gdal::Dataset, source: &str) -> Result<Option<String>> {
    use gdal::Metadata;
    if let Some(q) = ds.metadata_item("QUANTIFICATION_VALUE", "") {
        if q.trim().parse::<f64>().ok() != Some(10000.0) {
            return Err(Error::input(
                source,
                format!("its metadata's QUANTIFICATION_VALUE {q:?} is not 10000, which the models assume"),
            ));
        }
    }
    // An idfcr output made with --s2-harmonized keeps the product's
    // baseline in its metadata but its DNs carry no offset: its tag says so.
    if ds
        .metadata_item("IDFCR_S2_RADIOMETRY", "")
        .is_some_and(|t| t.contains("--s2-harmonized"))
    {
        return Ok(None);
    }
    Ok(ds
        .metadata_item("PROCESSING_BASELINE", "")
        .map(|b| b.trim().to_string())
        .filter(|b| b.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 4.0)))
}

/// Bands marked `-` in `--s2-bands` (a stack's QA60 or SCL) leave the
/// default selection; chosen with `-b`, they are refused, since the user
/// asked for a band that has no Sentinel-2 radiometry.
fn leave_out_marked(
    input: &mut InputRaster,
    names: &[Option<&'static str>],
    source: &str,
) -> Result<()> {
    let Some(&b) = input.band_nos.iter().find(|&&b| names[b - 1].is_none()) else {
        return Ok(());
    };
    if input.bands_chosen {
        return Err(Error::Usage(format!(
            "-b {b}: band {b} of {source} is marked - (left out) in --s2-bands; select Sentinel-2 bands only"
        )));
    }
    let kept: Vec<usize> = input
        .band_nos
        .iter()
        .copied()
        .filter(|&b| names[b - 1].is_some())
        .collect();
    input.keep_bands(kept)
}

/// Adapt an opened input for Sentinel-2 radiometry when it is a SENTINEL2
/// subdataset, or a band stack with `opts.stack`/`opts.stack_bands`.
/// Selects the group's reflectance bands by name (in wavelength order),
/// sets DN 0 as nodata and the per-band offsets. Returns the group.
pub fn adapt(input: &mut InputRaster, opts: &S2Options) -> Result<Option<&'static Group>> {
    let sd = parse_subdataset(&input.source);
    if sd.is_none() && !opts.stack && opts.stack_bands.is_none() {
        return Ok(None);
    }
    let source = input.source.clone();
    if sd.is_some() && opts.stack_bands.is_some() {
        return Err(Error::Usage(format!(
            "--s2-bands names the bands of a band stack; {source} is a Sentinel-2 product subdataset, whose bands the product names: drop --s2-bands"
        )));
    }
    // Names of every band of the dataset, by GDAL band number.
    let count = input.ds.raster_count();
    let names: Vec<Option<&'static str>> = match &opts.stack_bands {
        Some(list) => {
            let names = parse_stack_bands(list, count, &source)?;
            // A list in the wrong order would run B11 as B2 and name it so.
            let own = stack_band_names(&input.ds);
            if let Some((band, given, theirs)) = contradicted_name(&names, &own) {
                return Err(Error::Usage(format!(
                    "--s2-bands names band {band} {given}, but {source} names the same bands in another order (band {band} is {theirs}): drop --s2-bands (idfcr then takes the bands by their own names), or give them in the file's order"
                )));
            }
            leave_out_marked(input, &names, &source)?;
            names
        }
        _ => stack_band_names(&input.ds),
    };
    let (group, chosen) = chosen_bands(&input.band_nos, &names, sd.is_some())
        .map_err(|msg| Error::input(&source, msg))?;
    let meta = match &sd {
        Some(sd) => Some(load_product_meta(&sd.mtd)?),
        None => None,
    };
    if let Some(m) = &meta {
        if (m.quantification - 10000.0).abs() > 1e-9 {
            return Err(Error::input(
                &source,
                format!(
                    "quantification value {} is not 10000, which the models assume",
                    m.quantification
                ),
            ));
        }
    }
    // A stack cut from a product keeps its baseline in the metadata.
    let stack_baseline = match &meta {
        None => stack_baseline(&input.ds, &source)?,
        Some(_) => None,
    };
    let chosen_names: Vec<&str> = chosen.iter().map(|c| c.1).collect();
    input.keep_bands(chosen.iter().map(|c| c.0).collect())?;
    // A product's nodata is its metadata's (DN 0); a band stack keeps the
    // file's own value where it declares one (a NaN or -9999 is not data),
    // else DN 0 as in SEN12MS-CR.
    input.nodata = chosen
        .iter()
        .map(|&(b, _)| match &meta {
            Some(m) => Some(m.nodata),
            None => Some(
                input
                    .ds
                    .rasterband(b)
                    .ok()
                    .and_then(|band| band.no_data_value())
                    .unwrap_or(0.0),
            ),
        })
        .collect();
    input.nodata_per_band = true;
    input.band_names = chosen_names.iter().map(|s| s.to_string()).collect();
    input.dn_offset = chosen_names
        .iter()
        .map(|b| match (&meta, &stack_baseline) {
            _ if opts.harmonized => 0.0,
            (Some(m), _) => m.offset(b),
            (None, Some(_)) => BASELINE_04_OFFSET,
            (None, None) => 0.0,
        })
        .collect();
    input.radiometry_note = Some(match &meta {
        Some(m) => radiometry_note(m, &chosen_names, opts.harmonized),
        None => format!(
            "Sentinel-2 band stack: {}; nodata {}",
            match (&stack_baseline, opts.harmonized) {
                (Some(b), false) => format!("baseline {b} (its metadata): reflectance = (DN {BASELINE_04_OFFSET}) / 10000, the offset of every band since baseline 04.00"),
                (Some(b), true) => format!("baseline {b} (its metadata), declared harmonized (--s2-harmonized): reflectance = DN / 10000, no offset"),
                (None, _) => "reflectance = DN / 10000, no offset (SEN12MS-CR convention)".to_string(),
            },
            match input.nodata.first().copied().flatten() {
                Some(nd) if nd != 0.0 => format!("{nd} (the file's)"),
                _ => "DN 0".to_string(),
            }
        ),
    });
    Ok(Some(group))
}

/// GDAL band numbers with their Sentinel-2 names.
type ChosenBands = Vec<(usize, &'static str)>;

/// The bands a run takes (GDAL numbers with their Sentinel-2 names, in the
/// group's wavelength order) and their group: of the selected `band_nos`,
/// by `names` (one per GDAL band). `product`: a product subdataset, whose
/// unnamed bands (AOT, WVP, SCL) are left out rather than refused. Err: why
/// not, for the input's message.
fn chosen_bands(
    band_nos: &[usize],
    names: &[Option<&'static str>],
    product: bool,
) -> Result<(&'static Group, ChosenBands), String> {
    // The bands to process: the user's -b selection, else every
    // reflectance band, in wavelength order within the group.
    let mut chosen: Vec<(usize, &'static str)> = band_nos
        .iter()
        .filter_map(|&b| {
            names
                .get(b.wrapping_sub(1))
                .copied()
                .flatten()
                .map(|n| (b, n))
        })
        .collect();
    if chosen.len() != band_nos.len() && !product {
        return Err("some bands have no Sentinel-2 band name (BANDNAME metadata or a description like B4); name them with --s2-bands".into());
    }
    if chosen.is_empty() {
        // A product subdataset's -b picked only its AOT, WVP or SCL bands.
        let numbers: Vec<String> = band_nos.iter().map(|b| b.to_string()).collect();
        return Err(format!(
            "band(s) {} are not Sentinel-2 reflectance bands (B1 ... B12); select reflectance bands with -b (see gdalinfo)",
            numbers.join(" ")
        ));
    }
    let all: Vec<&str> = chosen.iter().map(|c| c.1).collect();
    let Some(group) = crate::sentinel2::bands::group_of(&all) else {
        return Err(format!(
            "bands {} are not one Sentinel-2 resolution group (10m: B2 B3 B4 B8; 20m: B5 B6 B7 B8A B11 B12; 60m: B1 B9 B10); select one group with -b",
            all.join(" ")
        ));
    };
    chosen.sort_by_key(|c| group.bands.iter().position(|b| *b == c.1));
    if let Some(w) = chosen.windows(2).find(|w| w[0].1 == w[1].1) {
        let what = if w[0].0 == w[1].0 {
            format!(
                "band {} ({}) is selected twice (-b); select each band once",
                w[0].0, w[0].1
            )
        } else {
            format!(
                "bands {} and {} are both named {}; name them with --s2-bands",
                w[0].0, w[1].0, w[0].1
            )
        };
        return Err(what);
    }
    Ok((group, chosen))
}

/// What a band says it is, as an RGB model's band name ("red", "green",
/// "blue") or a Sentinel-2 name ("B8"): its Sentinel-2 name (BANDNAME or
/// description, as `idfcr s2` writes them), else GDAL's colour tag. None:
/// nothing says.
pub(crate) fn band_colour(ds: &gdal::Dataset, band_no: usize) -> Option<&'static str> {
    if let Some(s2) = gdal_band_name(ds, band_no) {
        return super::bands::rgb_colour(s2).or(Some(s2));
    }
    let band = ds.rasterband(band_no).ok()?;
    super::bands::rgb_colour(&crate::io::mask::color_name(&band))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_chosen_by_name() {
        // A product's 10 m subdataset as GDAL lists it (B4 B3 B2 B8), and a
        // 20 m one with its AOT band unnamed.
        let p10 = [Some("B4"), Some("B3"), Some("B2"), Some("B8")];
        let p20 = [
            Some("B5"),
            None,
            Some("B12"),
            Some("B6"),
            Some("B7"),
            Some("B8A"),
            Some("B11"),
        ];
        let twice = [Some("B2"), Some("B3"), Some("B2"), Some("B8")];
        type Want = Result<(&'static str, Vec<usize>), &'static str>;
        // (selected band numbers, names, a product?, group and bands in wavelength order, or a word of the refusal)
        type Case<'a> = (Vec<usize>, &'a [Option<&'static str>], bool, Want);
        let cases: Vec<Case> = vec![
            (vec![1, 2, 3, 4], &p10, true, Ok(("10m", vec![3, 2, 1, 4]))),
            (vec![1, 2, 3, 4], &p10, false, Ok(("10m", vec![3, 2, 1, 4]))),
            // -b 2: one band of the group.
            (vec![2], &p10, false, Ok(("10m", vec![2]))),
            (
                vec![1, 2, 3, 4, 5, 6, 7],
                &p20,
                true,
                Ok(("20m", vec![1, 4, 5, 6, 7, 3])),
            ),
            (
                vec![1, 2, 3, 4, 5, 6, 7],
                &p20,
                false,
                Err("no Sentinel-2 band name"),
            ),
            (vec![2], &p20, true, Err("not Sentinel-2 reflectance bands")),
            (
                vec![1, 2],
                &[Some("B2"), Some("B5"), Some("B3"), Some("B8")],
                false,
                Err("not one Sentinel-2 resolution group"),
            ),
            (vec![1, 3], &twice, false, Err("both named B2")),
            (vec![1, 1], &p10, false, Err("selected twice")),
            // A band number beyond the names: no name, not a panic.
            (vec![9], &p10, false, Err("no Sentinel-2 band name")),
        ];
        for (k, (nos, names, product, want)) in cases.into_iter().enumerate() {
            match (chosen_bands(&nos, names, product), want) {
                (Ok((g, chosen)), Ok((wg, wnos))) => {
                    assert_eq!(g.name, wg, "case {k}");
                    assert_eq!(
                        chosen.iter().map(|c| c.0).collect::<Vec<_>>(),
                        wnos,
                        "case {k}"
                    );
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "case {k}: {e}"),
                (got, want) => panic!(
                    "case {k}: {:?}, wanted {want:?}",
                    got.map(|(g, c)| (g.name, c))
                ),
            }
        }
    }
}
