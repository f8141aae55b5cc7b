//! The pure parts of reading a Sentinel-2 product: its metadata (level,
//! processing baseline, quantification, per-band radiometric offsets,
//! nodata), GDAL's subdataset names, and the names outputs take from the
//! product. GDAL access lives in `sentinel2::input`.
//!
//! Radiometry (processing baseline 04.00 and later): reflectance =
//! (DN + offset) / quantification, with the per-band RADIO_ADD_OFFSET (L1C)
//! or BOA_ADD_OFFSET (L2A) from the product metadata, usually -1000; older
//! products have no offset. DN 0 is nodata. GDAL applies none of this.

use std::collections::BTreeMap;

use crate::sentinel2::bands::BANDS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    L1C,
    L2A,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::L1C => "L1C",
            Level::L2A => "L2A",
        }
    }

    /// Name of the offset item in the product metadata.
    pub fn offset_item(self) -> &'static str {
        match self {
            Level::L1C => "RADIO_ADD_OFFSET",
            Level::L2A => "BOA_ADD_OFFSET",
        }
    }
}

/// What the product metadata (MTD_MSIL1C.xml / MTD_MSIL2A.xml) says about
/// radiometry.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductMeta {
    pub level: Level,
    /// PRODUCT_URI without ".SAFE", or empty.
    pub product: String,
    /// As written, e.g. "05.09".
    pub baseline: String,
    /// Reflectance = (DN + offset) / quantification.
    pub quantification: f64,
    /// Per band (canonical name); absent bands have no offset.
    pub offsets: BTreeMap<String, f64>,
    pub nodata: f64,
}

impl ProductMeta {
    pub fn offset(&self, band: &str) -> f64 {
        self.offsets.get(band).copied().unwrap_or(0.0)
    }

    /// Whether the baseline is 04.00 or later (offsets expected).
    pub fn baseline_has_offsets(&self) -> bool {
        self.baseline.trim().parse::<f64>().is_ok_and(|b| b >= 4.0)
    }
}

/// Parse the product metadata. Errors are short phrases for
/// "<file>: <phrase>".
pub fn parse_product_xml(text: &str) -> Result<ProductMeta, String> {
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| format!("product metadata is not valid XML ({e})"))?;
    let root = doc.root_element();
    let level = match root.tag_name().name() {
        "Level-1C_User_Product" => Level::L1C,
        "Level-2A_User_Product" => Level::L2A,
        other => {
            return Err(format!(
                "is not Sentinel-2 L1C or L2A product metadata (root element {other})"
            ))
        }
    };
    let find = |name: &str| {
        root.descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string())
    };
    let baseline = find("PROCESSING_BASELINE").unwrap_or_default();
    let product = find("PRODUCT_URI")
        .or_else(|| find("PRODUCT_URI_2A"))
        .unwrap_or_default();
    let product = product
        .strip_suffix(".SAFE")
        .unwrap_or(&product)
        .to_string();
    let quant_item = match level {
        Level::L1C => "QUANTIFICATION_VALUE",
        Level::L2A => "BOA_QUANTIFICATION_VALUE",
    };
    let quantification = match find(quant_item) {
        Some(q) => q
            .parse::<f64>()
            .ok()
            .filter(|q| q.is_finite() && *q > 0.0)
            .ok_or_else(|| format!("{quant_item} {q:?} is not a positive number"))?,
        None => 10000.0,
    };
    let offsets = radiometric_offsets(root, level)?;
    let nodata = nodata_index(root);
    Ok(ProductMeta {
        level,
        product,
        baseline,
        quantification,
        offsets,
        nodata,
    })
}

/// The per-band radiometric offsets (`RADIO_ADD_OFFSET` for L1C,
/// `BOA_ADD_OFFSET` for L2A; none before baseline 04.00) by band name.
fn radiometric_offsets(
    root: roxmltree::Node,
    level: Level,
) -> Result<BTreeMap<String, f64>, String> {
    let mut offsets = BTreeMap::new();
    for n in root
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == level.offset_item())
    {
        let id = n.attribute("band_id").unwrap_or("");
        let band = id
            .parse::<usize>()
            .ok()
            .and_then(|i| BANDS.get(i))
            .map(|(b, _)| b.to_string())
            .ok_or_else(|| format!("{} has an unknown band_id {id:?}", level.offset_item()))?;
        let v = n.text().unwrap_or("").trim();
        // Rust parses "NaN" and "inf" as numbers; as an offset they would
        // reach the model as NaN pixels (blamed on the model's graph).
        let v: f64 = v
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("{} for {band} is {v:?}, not a number", level.offset_item()))?;
        offsets.insert(band, v);
    }
    Ok(offsets)
}

/// The digital number that marks no data (the `NODATA` special value; 0 in
/// every product so far, and 0 when the metadata does not say).
fn nodata_index(root: roxmltree::Node) -> f64 {
    let mut nodata = 0.0;
    for sv in root
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "Special_Values")
    {
        let child = |name: &str| {
            sv.children()
                .find(|c| c.tag_name().name() == name)
                .and_then(|c| c.text())
                .map(str::trim)
        };
        if child("SPECIAL_VALUE_TEXT") == Some("NODATA") {
            if let Some(v) = child("SPECIAL_VALUE_INDEX")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
            {
                nodata = v;
            }
        }
    }
    nodata
}

/// A GDAL SENTINEL2 subdataset name, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subdataset {
    pub level: Level,
    /// Path of the product metadata file (may be a /vsizip/ path).
    pub mtd: String,
    /// "10m", "20m", "60m", "TCI", ...
    pub kind: String,
    /// "EPSG_32633" etc.
    pub crs: String,
}

/// Parse `SENTINEL2_L1C:<mtd path>:10m:EPSG_32633` (the path may itself
/// hold colons, so split from the right).
pub fn parse_subdataset(s: &str) -> Option<Subdataset> {
    let (level, rest) = if let Some(r) = s.strip_prefix("SENTINEL2_L1C:") {
        (Level::L1C, r)
    } else if let Some(r) = s.strip_prefix("SENTINEL2_L2A:") {
        (Level::L2A, r)
    } else {
        return None;
    };
    let mut parts = rest.rsplitn(3, ':');
    let crs = parts.next()?.to_string();
    let kind = parts.next()?.to_string();
    let mtd = parts.next()?.to_string();
    if mtd.is_empty() || kind.is_empty() || crs.is_empty() {
        return None;
    }
    Some(Subdataset {
        level,
        mtd,
        kind,
        crs,
    })
}

/// The output path for `template` in `dir`, with `{product}` and `{group}`
/// made safe for one file name: a product name comes from metadata anyone
/// can write (`PRODUCT_URI` of `../../x`), and must not leave the folder.
pub fn output_path(
    dir: &std::path::Path,
    template: &str,
    product: &str,
    group: &str,
) -> crate::error::Result<std::path::PathBuf> {
    crate::io::names::output_path(dir, template, &[("product", product), ("group", group)])
        .map_err(|e| crate::error::Error::Usage(format!("name pattern '{template}' {e}")))
}

/// The product name from a path the user gave (SAFE folder, zip, or the
/// metadata file inside a SAFE folder), for output names when the metadata
/// has no PRODUCT_URI.
pub fn product_name_from_path(path: &str) -> String {
    let p = std::path::Path::new(path.trim_end_matches('/'));
    let pick = |p: &std::path::Path| {
        p.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut name = pick(p);
    if name.to_ascii_uppercase().starts_with("MTD_") {
        name = p.parent().map(pick).unwrap_or_default();
    }
    for suffix in [".zip", ".ZIP", ".SAFE", ".safe"] {
        if let Some(s) = name.strip_suffix(suffix) {
            name = s.to_string();
        }
    }
    name
}
#[cfg(test)]
mod tests {
    use super::*;

    const L1C_NEW: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
 <n1:General_Info><Product_Info>
  <PRODUCT_URI>S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234.SAFE</PRODUCT_URI>
  <PROCESSING_BASELINE>05.09</PROCESSING_BASELINE></Product_Info>
 <Product_Image_Characteristics>
  <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
  <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
  <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
  <Radiometric_Offset_List>
   <RADIO_ADD_OFFSET band_id="0">-1000</RADIO_ADD_OFFSET>
   <RADIO_ADD_OFFSET band_id="8">-1000</RADIO_ADD_OFFSET>
   <RADIO_ADD_OFFSET band_id="12">-999</RADIO_ADD_OFFSET>
  </Radiometric_Offset_List>
 </Product_Image_Characteristics></n1:General_Info>
</n1:Level-1C_User_Product>"#;

    const L2A_OLD: &str = r#"<n1:Level-2A_User_Product xmlns:n1="x">
 <n1:General_Info><Product_Info><PRODUCT_URI>S2A_MSIL2A_X.SAFE</PRODUCT_URI>
  <PROCESSING_BASELINE>02.14</PROCESSING_BASELINE></Product_Info>
  <Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST>
   <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
   <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
  </QUANTIFICATION_VALUES_LIST></Product_Image_Characteristics>
 </n1:General_Info></n1:Level-2A_User_Product>"#;

    const L2A_NEW: &str = r#"<n1:Level-2A_User_Product xmlns:n1="x">
 <n1:General_Info><Product_Info><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE></Product_Info>
  <Product_Image_Characteristics>
   <QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE>10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>
   <BOA_ADD_OFFSET_VALUES_LIST><BOA_ADD_OFFSET band_id="1">-1000</BOA_ADD_OFFSET></BOA_ADD_OFFSET_VALUES_LIST>
  </Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>"#;

    #[test]
    fn product_metadata() {
        // (xml, level, baseline, offsets expected, offset of B1, B2, B8A, B12)
        let cases = [
            (
                L1C_NEW,
                Level::L1C,
                "05.09",
                true,
                [-1000.0, 0.0, -1000.0, -999.0],
            ),
            (L2A_OLD, Level::L2A, "02.14", false, [0.0, 0.0, 0.0, 0.0]),
            (L2A_NEW, Level::L2A, "04.00", true, [0.0, -1000.0, 0.0, 0.0]),
        ];
        for (xml, level, baseline, has, offs) in cases {
            let m = parse_product_xml(xml).unwrap();
            assert_eq!(m.level, level);
            assert_eq!(m.baseline, baseline);
            assert_eq!(m.baseline_has_offsets(), has);
            assert_eq!(m.quantification, 10000.0);
            assert_eq!(m.nodata, 0.0);
            for (b, want) in ["B1", "B2", "B8A", "B12"].iter().zip(offs) {
                assert_eq!(m.offset(b), want, "{baseline} {b}");
            }
        }
        assert_eq!(
            parse_product_xml(L1C_NEW).unwrap().product,
            "S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234"
        );
        // Wrong documents say what is wrong.
        for (xml, needle) in [
            ("<a>", "not valid XML"),
            ("<Level-1C_Tile_ID/>", "root element Level-1C_Tile_ID"),
            (
                "<Level-1C_User_Product><RADIO_ADD_OFFSET band_id=\"13\">-1</RADIO_ADD_OFFSET></Level-1C_User_Product>",
                "unknown band_id",
            ),
            (
                "<Level-1C_User_Product><RADIO_ADD_OFFSET band_id=\"0\">x</RADIO_ADD_OFFSET></Level-1C_User_Product>",
                "not a number",
            ),
            (
                "<Level-1C_User_Product><RADIO_ADD_OFFSET band_id=\"1\">NaN</RADIO_ADD_OFFSET></Level-1C_User_Product>",
                "RADIO_ADD_OFFSET for B2 is \"NaN\", not a number",
            ),
            (
                "<Level-1C_User_Product><RADIO_ADD_OFFSET band_id=\"2\">-inf</RADIO_ADD_OFFSET></Level-1C_User_Product>",
                "not a number",
            ),
            (
                "<Level-1C_User_Product><QUANTIFICATION_VALUE>inf</QUANTIFICATION_VALUE></Level-1C_User_Product>",
                "not a positive number",
            ),
        ] {
            let e = parse_product_xml(xml).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn subdataset_names() {
        let s =
            parse_subdataset("SENTINEL2_L2A:/vsizip/a.zip/P.SAFE/MTD_MSIL2A.xml:20m:EPSG_32633")
                .unwrap();
        assert_eq!(s.level, Level::L2A);
        assert_eq!(s.mtd, "/vsizip/a.zip/P.SAFE/MTD_MSIL2A.xml");
        assert_eq!((s.kind.as_str(), s.crs.as_str()), ("20m", "EPSG_32633"));
        let s =
            parse_subdataset("SENTINEL2_L1C:C:/data/P.SAFE/MTD_MSIL1C.xml:10m:EPSG_32632").unwrap();
        assert_eq!(s.mtd, "C:/data/P.SAFE/MTD_MSIL1C.xml");
        for bad in [
            "SENTINEL2_L1C:x.xml",
            "HDF5:x",
            "/tmp/a.tif",
            "SENTINEL2_L1C::10m:E",
        ] {
            assert_eq!(parse_subdataset(bad), None, "{bad}");
        }
    }

    #[test]
    fn names() {
        for (p, want) in [
            ("/d/S2B_MSIL1C_X.SAFE", "S2B_MSIL1C_X"),
            ("/d/S2B_MSIL1C_X.SAFE/", "S2B_MSIL1C_X"),
            ("/d/S2B_MSIL1C_X.SAFE/MTD_MSIL1C.xml", "S2B_MSIL1C_X"),
            ("/d/S2B_MSIL2A_X.zip", "S2B_MSIL2A_X"),
            ("/d/S2B_MSIL2A_X.SAFE.zip", "S2B_MSIL2A_X"),
            ("stack.tif", "stack.tif"),
        ] {
            assert_eq!(product_name_from_path(p), want, "{p}");
        }
        let d = std::path::Path::new("/o");
        // (template, product, Some(file name) or None: refused)
        let cases = [
            ("{product}_{group}.tif", "P", Some("P_20m.tif")),
            ("{product}_{group}.tif", "../../X", Some(".._.._X_20m.tif")),
            ("{product}_{group}.tif", "/abs/X", Some("_abs_X_20m.tif")),
            ("../{product}.tif", "P", None),
        ];
        for (t, p, want) in cases {
            let got = output_path(d, t, p, "20m").ok();
            assert_eq!(got, want.map(|n| d.join(n)), "{t} {p}");
        }
    }
}
