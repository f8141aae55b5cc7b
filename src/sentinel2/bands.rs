//! Sentinel-2 band facts: the 13 band names with their native resolution,
//! the resolution groups each processed by its own model, and how a band
//! stack's names map onto them. Pure; the product metadata is in
//! `sentinel2::product`, GDAL access in `sentinel2::input`.

/// The 13 bands in the product metadata's `band_id` order, with their
/// native resolution in metres.
pub const BANDS: [(&str, u32); 13] = [
    ("B1", 60),
    ("B2", 10),
    ("B3", 10),
    ("B4", 10),
    ("B5", 20),
    ("B6", 20),
    ("B7", 20),
    ("B8", 10),
    ("B8A", 20),
    ("B9", 60),
    ("B10", 60),
    ("B11", 20),
    ("B12", 20),
];

/// A resolution group: processed on its own grid with its own model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// "10m", "20m", "60m": as in GDAL's subdataset names.
    pub name: &'static str,
    pub res_m: u32,
    /// Reflectance bands of the group, in wavelength order.
    pub bands: &'static [&'static str],
}

pub const GROUPS: [Group; 3] = [
    Group {
        name: "10m",
        res_m: 10,
        bands: &["B2", "B3", "B4", "B8"],
    },
    Group {
        name: "20m",
        res_m: 20,
        bands: &["B5", "B6", "B7", "B8A", "B11", "B12"],
    },
    Group {
        name: "60m",
        res_m: 60,
        bands: &["B1", "B9", "B10"],
    },
];

pub fn group_by_name(name: &str) -> Option<&'static Group> {
    // Spaces around a name (`--groups "10m, 20m"`) are no part of it, as
    // in --s2-bands.
    GROUPS
        .iter()
        .find(|g| g.name.eq_ignore_ascii_case(name.trim()))
}

/// `--groups`: each name one resolution group (case-insensitive), or a
/// usage error naming it. The one parser for both `s2` paths.
pub fn parse_groups(names: &[String]) -> crate::error::Result<Vec<&'static Group>> {
    names
        .iter()
        .map(|g| {
            group_by_name(g).ok_or_else(|| {
                crate::error::Error::Usage(format!("--groups {g}: expected 10m, 20m or 60m"))
            })
        })
        .collect()
}

/// `--groups` that the input has no bands of, refused (exit 2): a script
/// that asked for a group expects its output, and leaving it out quietly
/// would end the run with exit 0 and a file missing.
pub fn check_groups_present(
    wanted: Option<&[&Group]>,
    present: &[&str],
    input: &str,
) -> crate::error::Result<()> {
    let missing: Vec<&str> = wanted
        .unwrap_or_default()
        .iter()
        .map(|g| g.name)
        .filter(|n| !present.contains(n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::Usage(format!(
        "--groups {}: {input} has no {} bands",
        missing.join(","),
        missing.join(" or ")
    )))
}

/// The first band (1-based, with both names) where `--s2-bands` (`given`)
/// names a band the file itself names otherwise (`own`, from its BANDNAME
/// or description): a stack whose bands were listed in the wrong order.
/// Bands either side leaves unnamed do not count.
pub fn contradicted_name(
    given: &[Option<&'static str>],
    own: &[Option<&'static str>],
) -> Option<(usize, &'static str, &'static str)> {
    given
        .iter()
        .zip(own)
        .enumerate()
        .find_map(|(k, pair)| match pair {
            (Some(g), Some(o)) if g != o => Some((k + 1, *g, *o)),
            _ => None,
        })
}

/// `--s2-bands` against a raster with `count` bands: the canonical name of
/// every band (`None` for a band marked `-`, such as a stack's QA60 or SCL
/// band, which is left out), or a usage error (wrong count, a name that is
/// not a Sentinel-2 band, no band named). The one parser for `remove`/`batch`
/// and `s2`.
pub fn parse_stack_bands(
    list: &[String],
    count: usize,
    source: &str,
) -> crate::error::Result<Vec<Option<&'static str>>> {
    let n = list.len();
    if let Some(k) = list.iter().position(|s| s.trim().is_empty()) {
        let k = k + 1;
        return Err(crate::error::Error::Usage(format!(
            "--s2-bands: name {k} of {n} is empty (give one name per band, e.g. B2,B3,B4,B8, and - for a band to leave out)"
        )));
    }
    if list.len() != count {
        return Err(crate::error::Error::Usage(format!(
            "--s2-bands names {} band(s) but {source} has {count} (mark a band to leave out with -)",
            list.len()
        )));
    }
    let names = list
        .iter()
        .map(|s| {
            if s.trim() == SKIP_BAND {
                return Ok(None);
            }
            canonical_band(s).map(Some).ok_or_else(|| {
                crate::error::Error::Usage(format!(
                    "--s2-bands: {s:?} is not a Sentinel-2 reflectance band (B1..B12, B8A); mark a band to leave out (QA60, SCL, ...) with -"
                ))
            })
        })
        .collect::<crate::error::Result<Vec<_>>>()?;
    if names.iter().all(Option::is_none) {
        return Err(crate::error::Error::Usage(format!(
            "--s2-bands leaves out every band of {source}; name its Sentinel-2 bands (B1..B12, B8A)"
        )));
    }
    // A repeated name means another band is missing, and the groups would
    // be chosen (or the product typed L2A) from the wrong bands.
    for (k, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        if let Some(first) = names[..k].iter().position(|n| *n == Some(*name)) {
            let (a, b) = (first + 1, k + 1);
            return Err(crate::error::Error::Usage(format!(
                "--s2-bands names {name} twice (bands {a} and {b}); each band of {source} needs its own name"
            )));
        }
    }
    Ok(names)
}

/// The `--s2-bands` name of a band that is not a Sentinel-2 reflectance
/// band (a stack's QA60, SCL or cloud mask): left out of every group.
pub const SKIP_BAND: &str = "-";

/// The canonical spelling of a band name: "B01", "b1", "B1" -> "B1";
/// "B8A", "b8a" -> "B8A". None for anything that is not one of the 13.
pub fn canonical_band(s: &str) -> Option<&'static str> {
    let s = s.trim();
    let rest = s.strip_prefix('B').or_else(|| s.strip_prefix('b'))?;
    let key = if rest.eq_ignore_ascii_case("8a") || rest.eq_ignore_ascii_case("08a") {
        "B8A".to_string()
    } else {
        let n: u32 = rest.parse().ok()?;
        format!("B{n}")
    };
    BANDS.iter().map(|(b, _)| *b).find(|b| *b == key)
}

/// Index of a canonical band name in `BANDS` (the metadata's band_id).
pub fn band_id(band: &str) -> Option<usize> {
    BANDS.iter().position(|(b, _)| *b == band)
}

/// The group whose bands are `bands` (canonical names, any order), or
/// which holds all of them when `bands` is a subset (L2A has no B10).
pub fn group_of(bands: &[&str]) -> Option<&'static Group> {
    if bands.is_empty() {
        return None;
    }
    GROUPS
        .iter()
        .find(|g| bands.iter().all(|b| g.bands.contains(b)))
}

/// File name of the bundled model for a band list (canonical names in
/// wavelength order), if it is one we ship a model for.
pub fn model_file_for(bands: &[&str]) -> Option<&'static str> {
    match bands {
        ["B2", "B3", "B4", "B8"] => Some("s2_10m.onnx"),
        ["B5", "B6", "B7", "B8A", "B11", "B12"] => Some("s2_20m.onnx"),
        ["B1", "B9", "B10"] => Some("s2_60m.onnx"),
        // L2A products carry no cirrus band.
        ["B1", "B9"] => Some("s2_60m_l2a.onnx"),
        _ => None,
    }
}
/// A Sentinel-2 band name or GDAL colour tag as an RGB model's band name.
pub(crate) fn rgb_colour(name: &str) -> Option<&'static str> {
    match name {
        "B4" | "Red" => Some("red"),
        "B3" | "Green" => Some("green"),
        "B2" | "Blue" => Some("blue"),
        _ => None,
    }
}

#[cfg(test)]
// Case tables spell their tuple types out; a type alias per table would hide them.
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    #[test]
    fn given_names_that_contradict_the_files() {
        let b = |v: &[&'static str]| -> Vec<Option<&'static str>> {
            v.iter()
                .map(|s| if *s == "-" { None } else { Some(*s) })
                .collect()
        };
        // (--s2-bands, the file's own names, first contradiction)
        let cases = [
            (
                b(&["B2", "B3", "B4", "B8"]),
                b(&["B2", "B3", "B4", "B8"]),
                None,
            ),
            (b(&["B2", "B3", "B4", "B8"]), b(&["-", "-", "-", "-"]), None),
            (
                b(&["B2", "-", "B4", "B8"]),
                b(&["B2", "B3", "B4", "B8"]),
                None,
            ),
            (
                b(&["B2", "B3", "B4", "B8"]),
                b(&["B8", "B4", "B3", "B2"]),
                Some((1, "B2", "B8")),
            ),
            (
                b(&["B2", "B3", "B4", "B8"]),
                b(&["B2", "-", "B8", "B4"]),
                Some((3, "B4", "B8")),
            ),
        ];
        for (given, own, want) in cases {
            assert_eq!(contradicted_name(&given, &own), want, "{given:?} {own:?}");
        }
    }

    #[test]
    fn asked_groups_must_be_there() {
        let g = |n: &str| group_by_name(n).unwrap();
        // (--groups, groups the input has, refused naming)
        let cases: [(Option<Vec<&Group>>, &[&str], Option<&str>); 4] = [
            (None, &["10m"], None),
            (Some(vec![g("10m")]), &["10m", "20m"], None),
            (
                Some(vec![g("10m"), g("20m")]),
                &["10m"],
                Some("--groups 20m: s.tif has no 20m bands"),
            ),
            (
                Some(vec![g("20m"), g("60m")]),
                &["10m"],
                Some("--groups 20m,60m: s.tif has no 20m or 60m bands"),
            ),
        ];
        for (wanted, present, want) in cases {
            let got = check_groups_present(wanted.as_deref(), present, "s.tif");
            assert_eq!(
                got.err().map(|e| e.to_string()).as_deref(),
                want,
                "{present:?}"
            );
        }
    }

    #[test]
    fn stack_bands_and_groups_parse_one_way() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (names, band count, Ok(canonical) or Err(fragment))
        let cases: &[(&[&str], usize, Result<&[Option<&str>], &str>)] = &[
            (
                &["b2", "B03", "b4", "B8"],
                4,
                Ok(&[Some("B2"), Some("B3"), Some("B4"), Some("B8")]),
            ),
            (
                &["B2", "B3", "B4", "B8", " - "],
                5,
                Ok(&[Some("B2"), Some("B3"), Some("B4"), Some("B8"), None]),
            ),
            (&["-", "-"], 2, Err("leaves out every band of s.tif")),
            (&["-", "B9", "B9"], 3, Err("names B9 twice (bands 2 and 3)")),
            (
                &["B2", "QA60"],
                2,
                Err("mark a band to leave out (QA60, SCL, ...) with -"),
            ),
            (&["B2", "B3"], 3, Err("names 2 band(s) but s.tif has 3")),
            (
                &["B2", "NIR"],
                2,
                Err("\"NIR\" is not a Sentinel-2 reflectance band"),
            ),
            (&["B9", "b09"], 2, Err("names B9 twice (bands 1 and 2)")),
            (&["B2", "", "B4"], 3, Err("name 2 of 3 is empty")),
            (&[""], 1, Err("name 1 of 1 is empty")),
        ];
        for (names, count, want) in cases {
            let got = parse_stack_bands(&v(names), *count, "s.tif");
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(&g[..], *w),
                (Err(e), Err(frag)) => {
                    assert!(
                        matches!(e, crate::error::Error::Usage(_)) && e.to_string().contains(frag),
                        "{e}"
                    )
                }
                (g, w) => panic!("{names:?}: {g:?} vs {w:?}"),
            }
        }
        let g = parse_groups(&v(&["10M", " 60m"])).unwrap();
        assert_eq!(g.iter().map(|g| g.name).collect::<Vec<_>>(), ["10m", "60m"]);
        let e = parse_groups(&v(&["10m", "30m"])).unwrap_err();
        assert!(matches!(e, crate::error::Error::Usage(_)) && e.to_string().contains("30m"));
    }

    #[test]
    fn band_names() {
        let cases = [
            ("B1", Some("B1")),
            ("B01", Some("B1")),
            ("b8a", Some("B8A")),
            ("B08A", Some("B8A")),
            ("B08", Some("B8")),
            ("B12", Some("B12")),
            ("B13", None),
            ("AOT", None),
            ("SCL", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(canonical_band(s), want, "{s}");
        }
    }

    #[test]
    fn groups_and_models() {
        let cases: [(&[&str], Option<&str>, Option<&str>); 6] = [
            (&["B2", "B3", "B4", "B8"], Some("10m"), Some("s2_10m.onnx")),
            (&["B4", "B3"], Some("10m"), None),
            (
                &["B5", "B6", "B7", "B8A", "B11", "B12"],
                Some("20m"),
                Some("s2_20m.onnx"),
            ),
            (&["B1", "B9", "B10"], Some("60m"), Some("s2_60m.onnx")),
            (&["B1", "B9"], Some("60m"), Some("s2_60m_l2a.onnx")),
            (&["B2", "B5"], None, None),
        ];
        for (bands, group, model) in cases {
            assert_eq!(group_of(bands).map(|g| g.name), group, "{bands:?}");
            assert_eq!(model_file_for(bands), model, "{bands:?}");
        }
        // Every band is in exactly one group, at its native resolution.
        for (b, res) in BANDS {
            let gs: Vec<_> = GROUPS.iter().filter(|g| g.bands.contains(&b)).collect();
            assert_eq!(gs.len(), 1, "{b}");
            assert_eq!(gs[0].res_m, res, "{b}");
        }
    }
}
