//! The model contract: what an exported graph says about itself in its ONNX
//! metadata (`idfcr.*` keys), so that nothing about a model (bands, scaling,
//! window, halo, input range) is hard-coded at call sites.
//!
//! - one table of keys, `onnx/contract_keys.json`, embedded here and read by
//!   the Python exporters too (`onnx/idfcr_train/export/contract.py`): which graphs
//!   carry a key, which must, and what it means;
//! - one reader, `Metadata`, that parses every value by the same rules for
//!   Pixel-CR and IND graphs (a zero window or band count is an error in
//!   both; every error names the file and the key);
//! - one `Normaliser` (DN offset, the user's rescale, the graph's scale and
//!   offset) that turns raster values into model
//!   units and back, for both stages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const TABLE: &str = include_str!("../../onnx/contract_keys.json");

/// The largest count a model may state (`idfcr.halo_px`, `idfcr.window_px`,
/// band counts...): at most a tile's half (`tiling::grid::MAX_TILE_PX` is 8192).
pub const MAX_COUNT: usize = 4096;

/// Which family of graph a contract belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphKind {
    PixelCr,
    Ind,
}

impl GraphKind {
    fn tag(self) -> &'static str {
        match self {
            GraphKind::PixelCr => "pixel_cr",
            GraphKind::Ind => "ind",
        }
    }

    fn not_ours(self) -> &'static str {
        match self {
            GraphKind::PixelCr => {
                "not an idfcr model (export it with onnx/idfcr_train/export/pixel_cr.py)"
            }
            GraphKind::Ind => {
                "not an idfcr IND graph (export it with onnx/idfcr_train/export/ind.py)"
            }
        }
    }
}

/// One row of the key table.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct KeySpec {
    pub key: String,
    pub graphs: Vec<String>,
    pub required: Vec<String>,
    pub meaning: String,
}

/// The key table (parsed once; it is compiled in, and a unit test keeps it
/// valid).
pub fn key_table() -> &'static [KeySpec] {
    use std::sync::OnceLock;
    static KEYS: OnceLock<Vec<KeySpec>> = OnceLock::new();
    KEYS.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Table {
            keys: Vec<KeySpec>,
        }
        serde_json::from_str::<Table>(TABLE)
            .map(|t| t.keys)
            .unwrap_or_default()
    })
}

/// The `idfcr.*` values of one graph file, with typed accessors whose errors
/// name the file and the key.
#[derive(Debug, Clone)]
pub struct Metadata {
    path: PathBuf,
    kind: GraphKind,
    values: HashMap<String, String>,
}

impl Metadata {
    /// Read the table's keys for `kind` through `get` (an ONNX session's
    /// custom metadata, or a map in tests) and check the required ones.
    pub fn read(
        path: &Path,
        kind: GraphKind,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut values = HashMap::new();
        for spec in key_table()
            .iter()
            .filter(|s| s.graphs.iter().any(|g| g == kind.tag()))
        {
            match get(&spec.key) {
                Some(v) => {
                    values.insert(spec.key.clone(), v);
                }
                None if spec.required.iter().any(|g| g == kind.tag()) => {
                    return Err(Error::model(
                        path,
                        format!("metadata has no `{}`: {}", spec.key, kind.not_ours()),
                    ));
                }
                None => {}
            }
        }
        Ok(Metadata {
            path: path.to_path_buf(),
            kind,
            values,
        })
    }

    fn bad(&self, key: &str, what: impl std::fmt::Display) -> Error {
        Error::model(&self.path, format!("metadata `{key}` {what}"))
    }

    /// The raw text of `key`, if present.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The text of a key that must be present.
    pub fn required(&self, key: &str) -> Result<&str> {
        self.text(key).ok_or_else(|| {
            Error::model(
                &self.path,
                format!("metadata has no `{key}`: {}", self.kind.not_ours()),
            )
        })
    }

    /// A finite number; `default` when the key is absent (None: required).
    pub fn number(&self, key: &str, default: Option<f64>) -> Result<f64> {
        let v = match (self.text(key), default) {
            (None, Some(d)) => return Ok(d),
            (None, None) => self.required(key)?,
            (Some(v), _) => v,
        };
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.bad(key, format!("= {v:?} is not a number")))
    }

    /// A whole number >= 0 (required).
    pub fn count(&self, key: &str) -> Result<usize> {
        let v = self.number(key, None)?;
        if v < 0.0 || v.fract() != 0.0 {
            return Err(self.bad(key, format!("= {v} is not a whole number")));
        }
        // Every count a model states (bands, windows, halos, factors) is
        // small; a huge one is a broken file, and sizing tiles by it would
        // overflow or exhaust memory instead of saying so.
        if v > MAX_COUNT as f64 {
            return Err(self.bad(
                key,
                format!("= {v} is more than idfcr accepts ({MAX_COUNT})"),
            ));
        }
        Ok(v as usize)
    }

    /// A whole number > 0 (required): band counts, windows, factors.
    pub fn positive(&self, key: &str) -> Result<usize> {
        let n = self.count(key)?;
        if n == 0 {
            return Err(self.bad(key, "is zero"));
        }
        Ok(n)
    }

    /// A comma-separated list, empty items dropped (empty when absent).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.text(key)
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `lo,hi` with lo < hi; None when absent.
    pub fn range(&self, key: &str) -> Result<Option<(f64, f64)>> {
        let Some(v) = self.text(key) else {
            return Ok(None);
        };
        let parsed: Vec<f64> = v
            .split(',')
            .filter_map(|x| x.trim().parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .collect();
        match parsed[..] {
            [lo, hi] if lo < hi => Ok(Some((lo, hi))),
            _ => Err(self.bad(key, format!("= {v:?} is not `lo,hi` with lo < hi"))),
        }
    }
}

/// The graph's own units: model value = (raster units + offset) x scale,
/// from `idfcr.input_scale` and `idfcr.input_offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphScale {
    pub scale: f64,
    pub offset: f64,
}

impl GraphScale {
    /// From `idfcr.input_scale` (required, non-zero) and `idfcr.input_offset`
    /// (default 0).
    pub fn from_metadata(m: &Metadata) -> Result<Self> {
        let scale = m.number("idfcr.input_scale", None)?;
        if scale == 0.0 {
            return Err(m.bad("idfcr.input_scale", "is zero"));
        }
        // Conversions run in f32 both ways: a scale (or its inverse) that
        // f32 cannot hold turns every pixel into 0 or infinity.
        if !((scale as f32).is_normal() && ((1.0 / scale) as f32).is_normal()) {
            return Err(m.bad(
                "idfcr.input_scale",
                format!("= {scale:e} is outside what a pixel conversion can use"),
            ));
        }
        let offset = m.number("idfcr.input_offset", Some(0.0))?;
        // Graph values are of order 1: beyond 1e4 float32 cannot resolve a
        // thousandth of a unit on top of the offset (1e30 gave all zeros).
        if offset.abs() > 1e4 {
            return Err(m.bad(
                "idfcr.input_offset",
                format!("= {offset:e} is outside what a pixel conversion can use"),
            ));
        }
        Ok(GraphScale { scale, offset })
    }
}

/// Raster value <-> model value, per band: the one conversion both stages
/// use. Three steps, undone in reverse on output:
/// 1. the band's DN offset (Sentinel-2's radiometric offset, 0 elsewhere);
/// 2. the user's linear map onto the model's nominal range (`--rescale`,
///    `--stretch`; identity otherwise) — together the model's raster units;
/// 3. the graph's scale and offset ([`GraphScale`]).
///
/// Each step rounds to f32 as the stages always have, so outputs stay
/// bit-identical to the layered conversion this replaces.
///
/// On output, a model value below the band's floor is raised to it first
/// ([`Normaliser::floored`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Normaliser {
    pub dn_offset: Vec<f64>,
    /// `(gain, bias)` of step 2.
    pub rescale: (f64, f64),
    pub graph: GraphScale,
    /// Per band, the lowest value in the model's units an output takes
    /// (empty: none).
    pub floor: Vec<f32>,
}

impl Normaliser {
    pub fn new(dn_offset: &[f64], rescale: (f64, f64), graph: GraphScale) -> Self {
        Normaliser {
            dn_offset: dn_offset.to_vec(),
            rescale,
            graph,
            floor: Vec::new(),
        }
    }

    /// Outputs floored per band at no light (0 in the model's units, the
    /// bottom of `idfcr.input_range`), or at the band's lowest sampled
    /// input value (`lowest`, raster values) where that is lower. Every
    /// training loader clips its targets at no light, so an output below
    /// it is the global residual overshooting on a bright remnant, not
    /// ground: an integer output clipped it at the type's 0, but a Float32
    /// reflectance output came back negative on a tenth of the demo. The
    /// input's own minimum keeps values the model was fed (a `--stretch`
    /// maps the darkest 2 % below 0; L2A water can be slightly negative).
    /// In units, not graph values: a graph with an offset or a negative
    /// scale has its no light elsewhere.
    pub fn floored(mut self, lowest: &[Option<f64>]) -> Self {
        self.floor = lowest
            .iter()
            .enumerate()
            .map(|(b, lo)| lo.map_or(0.0, |lo| self.to_units(b, lo as f32).min(0.0)))
            .collect();
        self
    }

    /// Only the graph's scale (no DN offset, no rescale).
    pub fn graph_only(graph: GraphScale) -> Self {
        Normaliser::new(&[], (1.0, 0.0), graph)
    }

    /// Raster value of band `b` -> the model's units (`idfcr.input_range`'s,
    /// before the graph's own scale).
    pub fn to_units(&self, b: usize, v: f32) -> f32 {
        let off = self.dn_offset.get(b).copied().unwrap_or(0.0);
        let (gain, bias) = self.rescale;
        ((v as f64 + off) * gain + bias) as f32
    }

    /// Raster value of band `b` -> model value.
    pub fn to_model(&self, b: usize, v: f32) -> f32 {
        let units = self.to_units(b, v);
        ((units as f64 + self.graph.offset) * self.graph.scale) as f32
    }

    /// Model value of band `b` -> raster value.
    pub fn from_model(&self, b: usize, m: f32) -> f32 {
        let off = self.dn_offset.get(b).copied().unwrap_or(0.0);
        let (gain, bias) = self.rescale;
        let units = (m as f64 / self.graph.scale - self.graph.offset) as f32;
        let units = self.floor.get(b).map_or(units, |&f| units.max(f));
        ((units as f64 - bias) / gain - off) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_names_every_key_the_runtime_reads() {
        let keys: Vec<&str> = key_table().iter().map(|k| k.key.as_str()).collect();
        assert!(keys.len() >= 15, "{keys:?}");
        for k in [
            "idfcr.name",
            "idfcr.bands",
            "idfcr.input_scale",
            "idfcr.input_offset",
            "idfcr.input_range",
            "idfcr.window_px",
            "idfcr.halo_px",
            "idfcr.outputs",
            "idfcr.probability",
            "idfcr.kind",
            "idfcr.latent_channels",
            "idfcr.factor",
        ] {
            assert!(keys.contains(&k), "{k} missing from contract_keys.json");
        }
        for spec in key_table() {
            for g in spec.graphs.iter().chain(&spec.required) {
                assert!(g == "pixel_cr" || g == "ind", "{}: graph {g}", spec.key);
            }
            for g in &spec.required {
                assert!(
                    spec.graphs.contains(g),
                    "{} required but not carried",
                    spec.key
                );
            }
        }
    }

    #[test]
    fn values_parse_by_one_set_of_rules() {
        let m = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Metadata {
                path: PathBuf::from("g.onnx"),
                kind: GraphKind::Ind,
                values: map,
            }
        };
        // (key, value, accessor, Ok(number) or Err(fragment))
        type Case<'a> = (
            &'a str,
            &'a str,
            fn(&Metadata, &str) -> Result<f64>,
            std::result::Result<f64, &'a str>,
        );
        let count = |m: &Metadata, k: &str| m.count(k).map(|n| n as f64);
        let positive = |m: &Metadata, k: &str| m.positive(k).map(|n| n as f64);
        let number = |m: &Metadata, k: &str| m.number(k, None);
        let scale = |m: &Metadata, _: &str| GraphScale::from_metadata(m).map(|g| g.scale);
        // An offset read with a scale of 1 beside it.
        let offset = |m: &Metadata, k: &str| {
            let mut m = m.clone();
            m.values.insert("idfcr.input_scale".into(), "1".into());
            GraphScale::from_metadata(&m).map(|g| {
                assert!(m.values.contains_key(k));
                g.offset
            })
        };
        let cases: &[Case] = &[
            ("idfcr.halo_px", "40", count, Ok(40.0)),
            ("idfcr.halo_px", "0", count, Ok(0.0)),
            ("idfcr.halo_px", "1.5", count, Err("whole number")),
            ("idfcr.halo_px", "-2", count, Err("whole number")),
            ("idfcr.halo_px", "4096", count, Ok(4096.0)),
            (
                "idfcr.halo_px",
                "4097",
                count,
                Err("more than idfcr accepts"),
            ),
            (
                "idfcr.halo_px",
                "1e19",
                count,
                Err("more than idfcr accepts"),
            ),
            (
                "idfcr.window_px",
                "4611686018427387904",
                positive,
                Err("more than"),
            ),
            ("idfcr.window_px", "0", positive, Err("is zero")),
            ("idfcr.window_px", "16", positive, Ok(16.0)),
            ("idfcr.input_scale", "inf", number, Err("not a number")),
            ("idfcr.input_scale", "x", number, Err("not a number")),
            ("idfcr.input_scale", " 0.5 ", number, Ok(0.5)),
            (
                "idfcr.input_scale",
                "0.00392156862745098",
                scale,
                Ok(0.00392156862745098),
            ),
            (
                "idfcr.input_scale",
                "1e-300",
                scale,
                Err("outside what a pixel conversion"),
            ),
            (
                "idfcr.input_scale",
                "1e300",
                scale,
                Err("outside what a pixel conversion"),
            ),
            ("idfcr.input_scale", "0", scale, Err("is zero")),
            ("idfcr.input_offset", "-0.5", offset, Ok(-0.5)),
            (
                "idfcr.input_offset",
                "1e30",
                offset,
                Err("outside what a pixel conversion"),
            ),
            (
                "idfcr.input_offset",
                "1e300",
                offset,
                Err("outside what a pixel conversion"),
            ),
        ];
        for (key, value, get, want) in cases {
            let md = m(&[(key, value)]);
            match (get(&md, key), want) {
                (Ok(v), Ok(w)) => assert_eq!(v, *w, "{key}={value}"),
                (Err(e), Err(frag)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(frag) && e.contains("g.onnx") && e.contains(key),
                        "{e}"
                    );
                }
                (got, _) => panic!("{key}={value}: {got:?}"),
            }
        }
        let e = m(&[]).count("idfcr.halo_px").unwrap_err().to_string();
        assert!(e.contains("export/ind.py"), "{e}");
        assert_eq!(m(&[("k", "a, ,b")]).list("k"), ["a", "b"]);
        assert_eq!(m(&[("k", "0,255")]).range("k").unwrap(), Some((0.0, 255.0)));
        assert!(m(&[("k", "5,1")]).range("k").is_err());
        assert_eq!(m(&[]).range("k").unwrap(), None);
    }

    #[test]
    fn normaliser_applies_dn_offset_rescale_and_graph_scale_and_undoes_them() {
        // (dn offset, (gain, bias), graph scale, graph offset, raster, model)
        let cases = [
            (0.0, (1.0, 0.0), 1.0 / 255.0, 0.0, 255.0, 1.0),
            (0.0, (1.0, 0.0), 1e-4, -1000.0, 3000.0, 0.2),
            // Sentinel-2 L2A: DN 2000 with offset -1000 is reflectance 0.1.
            (-1000.0, (1.0, 0.0), 1e-4, 0.0, 2000.0, 0.1),
            // A UInt16 RGB stretched onto 0..255 by --rescale 0,25500.
            (0.0, (0.01, 0.0), 1.0 / 255.0, 0.0, 12750.0, 0.5),
        ];
        for (dn, rescale, scale, offset, raster, model) in cases {
            let n = Normaliser::new(&[dn], rescale, GraphScale { scale, offset });
            let got = n.to_model(0, raster);
            assert!(
                (got - model).abs() < 1e-6,
                "{dn} {rescale:?} {scale} {offset}: {got}"
            );
            let back = n.from_model(0, got);
            assert!(
                (back - raster).abs() < 1e-3 * raster.abs().max(1.0),
                "{back}"
            );
        }
        // Bands without a DN offset of their own take none.
        let n = Normaliser::new(
            &[-1000.0],
            (1.0, 0.0),
            GraphScale {
                scale: 1.0,
                offset: 0.0,
            },
        );
        assert_eq!(n.to_model(1, 5.0), 5.0);
    }

    #[test]
    fn outputs_are_floored_at_no_light_or_the_inputs_own_lowest_value() {
        let rgb = GraphScale {
            scale: 1.0 / 255.0,
            offset: 0.0,
        };
        // (rescale, the band's lowest input, model value, raster value out)
        let cases = [
            // Float reflectance 0..1 (--rescale 0,1): an overshoot to -0.1
            // comes back as 0, not as negative reflectance.
            ((255.0, 0.0), Some(0.02), -0.1, 0.0),
            ((255.0, 0.0), Some(0.02), 0.5, 0.5),
            // An input that itself goes below 0 keeps its own floor.
            ((255.0, 0.0), Some(-0.05), -0.1, -0.05),
            ((255.0, 0.0), Some(-0.05), -0.02, -0.02),
            // A band with no valid value: no light.
            ((1.0, 0.0), None, -0.3, 0.0),
        ];
        for (rescale, lowest, model, want) in cases {
            let n = Normaliser::new(&[], rescale, rgb).floored(&[lowest]);
            let got = n.from_model(0, model);
            assert!(
                (got - want).abs() < 1e-5,
                "{rescale:?} {lowest:?} {model}: {got}"
            );
        }
        // A graph centred on 0 (offset -127.5, scale 1/127.5): its no light
        // is the model value -1, not 0.
        let centred = GraphScale {
            scale: 1.0 / 127.5,
            offset: -127.5,
        };
        let n = Normaliser::graph_only(centred).floored(&[Some(40.0)]);
        assert!((n.from_model(0, -0.5) - 63.75).abs() < 1e-3);
        assert_eq!(n.from_model(0, -1.2), 0.0);
        // Not floored: no figures given.
        let n = Normaliser::graph_only(rgb);
        assert!(n.from_model(0, -0.1) < 0.0);
    }
}
