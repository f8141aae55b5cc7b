//! The 10 m stack of every cleaned band (`idfcr s2 --stack`): a GDAL VRT
//! that puts the group outputs on the 10 m grid by nearest neighbour (so
//! every value is a cleaned value, unchanged), copied into the output
//! format.

use std::path::{Path, PathBuf};

use crate::config::RemoveOptions;
use crate::error::{Error, Result};

/// One band of the 10 m stack: where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct StackBand {
    pub name: String,
    pub path: String,
    pub band_no: usize,
    /// Source size in pixels (its grid covers the same ground as the stack's).
    pub src_size: (usize, usize),
    /// What the group output's band says of itself, carried to the stack:
    /// its metadata (BANDNAME, WAVELENGTH, ...), nodata, unit, scale/offset.
    pub metadata: Vec<(String, String)>,
    pub nodata: Option<f64>,
    pub unit: String,
    pub scale_offset: Option<(f64, f64)>,
    /// GDAL's colour interpretation name ("Blue"), kept where it says more
    /// than "Gray"/"Undefined".
    pub color: Option<String>,
}

/// The stack's dataset tags from each group output's (resolution, tags):
/// a tag every group gives the same value stays as it is; one that differs
/// (each group's model, its hash, its settings) is written once per group
/// with the group in its name (`IDFCR_MODEL_20m`), so that no group's tag
/// speaks for bands another group's model made.
pub fn stack_tags(groups: &[(u32, Vec<(String, String)>)]) -> Vec<(String, String)> {
    let mut keys: Vec<&str> = Vec::new();
    for (_, tags) in groups {
        for (k, _) in tags {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    let value = |tags: &[(String, String)], k: &str| {
        tags.iter().find(|(t, _)| t == k).map(|(_, v)| v.clone())
    };
    let mut out = Vec::new();
    for k in keys {
        let values: Vec<Option<String>> = groups.iter().map(|(_, t)| value(t, k)).collect();
        if values.windows(2).all(|w| w[0] == w[1]) {
            if let Some(v) = values[0].clone() {
                out.push((k.to_string(), v));
            }
            continue;
        }
        for ((res, _), v) in groups.iter().zip(values) {
            if let Some(v) = v {
                out.push((format!("{k}_{res}m"), v));
            }
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A GDAL VRT that puts `bands` (from rasters of any of the group
/// resolutions over the same ground) on a `size` grid, nearest neighbour,
/// so every value is a cleaned value, unchanged.
pub fn stack_vrt_xml(
    bands: &[StackBand],
    size: (usize, usize),
    geo: Option<&[f64; 6]>,
    srs_wkt: &str,
    data_type: &str,
    metadata: &[(String, String)],
) -> String {
    let (w, h) = size;
    let mut x = format!("<VRTDataset rasterXSize=\"{w}\" rasterYSize=\"{h}\">\n");
    x += &format!("  <SRS>{}</SRS>\n", xml_escape(srs_wkt));
    // A stack of rasters without georeferencing has none either: the bands
    // still line up by their pixel rectangles.
    if let Some(geo) = geo {
        x += &format!(
            "  <GeoTransform>{:.17e}, {:.17e}, {:.17e}, {:.17e}, {:.17e}, {:.17e}</GeoTransform>\n",
            geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
        );
    }
    x += "  <Metadata>\n";
    for (k, v) in metadata {
        x += &format!(
            "    <MDI key=\"{}\">{}</MDI>\n",
            xml_escape(k),
            xml_escape(v)
        );
    }
    x += "  </Metadata>\n";
    for (i, b) in bands.iter().enumerate() {
        x += &format!(
            "  <VRTRasterBand dataType=\"{data_type}\" band=\"{}\">\n",
            i + 1
        );
        x += &format!("    <Description>{}</Description>\n", xml_escape(&b.name));
        x += "    <Metadata>";
        if !b.metadata.iter().any(|(k, _)| k == "BANDNAME") {
            x += &format!("<MDI key=\"BANDNAME\">{}</MDI>", xml_escape(&b.name));
        }
        for (k, v) in &b.metadata {
            x += &format!("<MDI key=\"{}\">{}</MDI>", xml_escape(k), xml_escape(v));
        }
        x += "</Metadata>\n";
        if let Some(c) = &b.color {
            x += &format!("    <ColorInterp>{}</ColorInterp>\n", xml_escape(c));
        }
        if let Some(nd) = b.nodata {
            x += &format!("    <NoDataValue>{nd:?}</NoDataValue>\n");
        }
        if !b.unit.is_empty() {
            x += &format!("    <UnitType>{}</UnitType>\n", xml_escape(&b.unit));
        }
        if let Some((scale, offset)) = b.scale_offset {
            x += &format!("    <Offset>{offset:?}</Offset>\n    <Scale>{scale:?}</Scale>\n");
        }
        x += "    <SimpleSource resampling=\"nearest\">\n";
        x += &format!(
            "      <SourceFilename relativeToVRT=\"0\">{}</SourceFilename>\n",
            xml_escape(&b.path)
        );
        x += &format!("      <SourceBand>{}</SourceBand>\n", b.band_no);
        x += &format!(
            "      <SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{}\" ySize=\"{}\"/>\n",
            b.src_size.0, b.src_size.1
        );
        x += &format!("      <DstRect xOff=\"0\" yOff=\"0\" xSize=\"{w}\" ySize=\"{h}\"/>\n");
        x += "    </SimpleSource>\n  </VRTRasterBand>\n";
    }
    x += "</VRTDataset>\n";
    x
}

/// Write the 10 m stack of every band of the group `outputs` (path,
/// resolution), bands in the SEN12MS/L1C order B1..B12 with B8A after B8.
pub(crate) fn write_stack(
    outputs: &[(PathBuf, u32)],
    path: &Path,
    t: &RemoveOptions,
) -> Result<()> {
    use gdal::Dataset;
    let (p10, _) = outputs
        .iter()
        .find(|(_, r)| *r == 10)
        .ok_or_else(|| Error::Usage("--stack needs the 10m group".into()))?;
    let base = reopen(p10)?;
    let size = base.raster_size();
    let geo = base.geo_transform().ok();
    let wkt = base
        .spatial_ref()
        .and_then(|s| s.to_wkt())
        .unwrap_or_default();
    let b1 = base.rasterband(1).map_err(|e| {
        Error::output(p10, "cannot read its first band for the stack").because_gdal(e)
    })?;
    let data_type = crate::io::reader::map_data_type(b1.band_type())
        .ok_or_else(|| Error::output(p10, "unexpected data type"))?;
    let (bands, groups) = stack_bands(outputs)?;
    let xml = stack_vrt_xml(
        &bands,
        size,
        geo.as_ref(),
        &wkt,
        &format!("{data_type:?}"),
        &stack_tags(&groups),
    );
    let built = |e: gdal::errors::GdalError| {
        Error::output(
            path,
            format!("cannot build the stack: {}", crate::error::gdal_message(&e)),
        )
    };
    let mut vrt = Dataset::open(&xml).map_err(built)?;
    // What the XML's WKT1 and geotransform cannot say: a dynamic CRS's
    // epoch, ground control points, RPCs (as the group outputs carry them).
    crate::io::options::copy_georeferencing(&base, &mut vrt).map_err(built)?;
    crate::io::writer::copy_into_place(
        &vrt,
        path,
        t.format,
        data_type,
        &t.creation_options,
        t.overwrite,
    )
}

/// A group output just written, opened again to stack its bands.
fn reopen(p: &Path) -> Result<gdal::Dataset> {
    gdal::Dataset::open(p).map_err(|e| {
        Error::output(
            p,
            format!(
                "cannot reopen for the stack: {}",
                crate::error::gdal_message(&e)
            ),
        )
    })
}

/// The default metadata domain as (key, value) pairs.
fn default_domain(md: &impl gdal::Metadata) -> Vec<(String, String)> {
    md.metadata()
        .filter(|e| e.domain.is_empty())
        .map(|e| (e.key, e.value))
        .collect()
}

/// Each group output's resolution and dataset tags (for `stack_tags`).
type GroupTags = Vec<(u32, Vec<(String, String)>)>;

/// Every band of the group outputs, named by their BANDNAME, in band
/// order (B1..B12 with B8A after B8; unknown names last), and the group
/// outputs' tags: each output is opened once for both.
fn stack_bands(outputs: &[(PathBuf, u32)]) -> Result<(Vec<StackBand>, GroupTags)> {
    use gdal::Metadata;
    let mut bands = Vec::new();
    let mut groups = Vec::new();
    for (p, res) in outputs {
        let ds = reopen(p)?;
        groups.push((*res, default_domain(&ds)));
        for b in 1..=ds.raster_count() {
            let band = ds.rasterband(b).map_err(|e| {
                Error::output(p, format!("cannot read band {b} for the stack")).because_gdal(e)
            })?;
            let name = band.metadata_item("BANDNAME", "").unwrap_or_default();
            bands.push(StackBand {
                name,
                path: std::fs::canonicalize(p)
                    .unwrap_or_else(|_| p.clone())
                    .to_string_lossy()
                    .into_owned(),
                band_no: b,
                src_size: ds.raster_size(),
                metadata: default_domain(&band),
                nodata: band.no_data_value(),
                unit: band.unit(),
                scale_offset: crate::io::units::scale_offset(band.scale(), band.offset()),
                color: Some(band.color_interpretation().name())
                    .filter(|c| !matches!(c.as_str(), "Gray" | "Undefined")),
            });
        }
    }
    bands.sort_by_key(|b| crate::sentinel2::bands::band_id(&b.name).unwrap_or(usize::MAX));
    Ok((bands, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_vrt_puts_every_band_on_the_10m_grid() {
        let band = |name: &str, path: &str, band_no, side| StackBand {
            name: name.into(),
            path: path.into(),
            band_no,
            src_size: (side, side),
            metadata: vec![("BANDNAME".into(), name.into())],
            nodata: Some(0.0),
            unit: String::new(),
            scale_offset: None,
            color: None,
        };
        let mut b8a = band("B8A", "/o/a&b_20m.tif", 4, 96);
        b8a.metadata.push(("WAVELENGTH".into(), "864.7".into()));
        b8a.unit = "DN".into();
        b8a.scale_offset = Some((1e-4, -0.1));
        b8a.nodata = Some(65535.0);
        let bands = [
            band("B1", "/o/p_60m.tif", 1, 32),
            band("B2", "/o/p_10m.tif", 1, 192),
            b8a,
        ];
        let geo = [399960.0, 10.0, 0.0, 5000040.0, 0.0, -10.0];
        let md = [("IDFCR_MODEL".to_string(), "s2 <1>".to_string())];
        let x = stack_vrt_xml(
            &bands,
            (192, 192),
            Some(&geo),
            "PROJCS[\"x\"]",
            "UInt16",
            &md,
        );
        assert_eq!(x.matches("<VRTRasterBand").count(), 3);
        assert!(x.contains("<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"32\" ySize=\"32\"/>"));
        assert_eq!(
            x.matches("<DstRect xOff=\"0\" yOff=\"0\" xSize=\"192\" ySize=\"192\"/>")
                .count(),
            3
        );
        assert!(
            x.contains("a&amp;b_20m.tif")
                && x.contains("s2 &lt;1&gt;")
                && x.contains("PROJCS[&quot;x&quot;]")
        );
        assert!(
            x.contains("<SourceBand>4</SourceBand>")
                && x.contains("<NoDataValue>0.0</NoDataValue>")
        );
        // Each band keeps its own metadata, nodata, unit and scale/offset.
        assert_eq!(x.matches("<MDI key=\"BANDNAME\">").count(), 3);
        assert!(x.contains("<MDI key=\"WAVELENGTH\">864.7</MDI>"));
        assert!(
            x.contains("<NoDataValue>65535.0</NoDataValue>")
                && x.contains("<UnitType>DN</UnitType>")
        );
        assert!(x.contains("<Offset>-0.1</Offset>") && x.contains("<Scale>0.0001</Scale>"));
        assert!(x.find(">B1<").unwrap() < x.find(">B2<").unwrap());
        assert!(x.contains("<GeoTransform>"));
        let bare = stack_vrt_xml(&bands, (192, 192), None, "", "UInt16", &md);
        assert!(!bare.contains("<GeoTransform>"));
    }

    #[test]
    fn stack_tags_keep_shared_values_once_and_name_the_group_of_the_others() {
        let t = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let groups = [
            (
                10,
                t(&[
                    ("IDFCR_VERSION", "1"),
                    ("IDFCR_MODEL", "s2_10m"),
                    ("SITE", "x"),
                ]),
            ),
            (
                20,
                t(&[
                    ("IDFCR_VERSION", "1"),
                    ("IDFCR_MODEL", "s2_20m"),
                    ("SITE", "x"),
                ]),
            ),
            (
                60,
                t(&[
                    ("IDFCR_VERSION", "1"),
                    ("IDFCR_MODEL", "s2_60m"),
                    ("SITE", "x"),
                    ("ONLY", "60"),
                ]),
            ),
        ];
        let want = t(&[
            ("IDFCR_VERSION", "1"),
            ("IDFCR_MODEL_10m", "s2_10m"),
            ("IDFCR_MODEL_20m", "s2_20m"),
            ("IDFCR_MODEL_60m", "s2_60m"),
            ("SITE", "x"),
            ("ONLY_60m", "60"),
        ]);
        assert_eq!(stack_tags(&groups), want);
        assert_eq!(stack_tags(&groups[..1]), groups[0].1);
        assert!(stack_tags(&[]).is_empty());
    }
}
