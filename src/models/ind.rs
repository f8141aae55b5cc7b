//! The IND stage's three ONNX graphs (encoder, decoder, fused denoiser),
//! each with its contract in the metadata (written by
//! `onnx/idfcr_train/export/ind.py`), as session pools that run tiles.
//!
//! The contract keys (`idfcr.kind`, `idfcr.latent_channels`, `idfcr.factor`,
//! and the image side as for Pixel-CR) are in `onnx/contract_keys.json`,
//! read by `contract`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;

use crate::error::{Error, Result};
use crate::models::contract::{GraphKind, GraphScale, Metadata};
use crate::models::pixel_cr::{open_graph, Provider};
use crate::models::runtime::Device;

/// What one IND graph is and expects.
#[derive(Debug, Clone, PartialEq)]
pub struct IndContract {
    pub kind: String,
    /// `idfcr.name` and `idfcr.version` (empty when absent), for provenance.
    pub name: String,
    pub version: String,
    pub bands: usize,
    pub latent_channels: usize,
    pub factor: usize,
    pub window_px: usize,
    pub halo_px: usize,
    /// The graph's units (see `Normaliser` for the whole conversion).
    pub graph_scale: GraphScale,
    pub inputs: Vec<String>,
}

impl IndContract {
    pub fn from_lookup(
        path: &Path,
        inputs: Vec<String>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        Self::from_metadata(path, inputs, &Metadata::read(path, GraphKind::Ind, get)?)
    }

    /// The contract from a graph's read metadata and input names.
    pub fn from_metadata(path: &Path, inputs: Vec<String>, m: &Metadata) -> Result<Self> {
        let c = IndContract {
            kind: m.required("idfcr.kind")?.to_string(),
            name: m.text("idfcr.name").unwrap_or_default().to_string(),
            version: m.text("idfcr.version").unwrap_or_default().to_string(),
            bands: m.positive("idfcr.bands")?,
            latent_channels: m.positive("idfcr.latent_channels")?,
            factor: m.positive("idfcr.factor")?,
            window_px: m.positive("idfcr.window_px")?,
            halo_px: m.count("idfcr.halo_px")?,
            graph_scale: GraphScale::from_metadata(m)?,
            inputs,
        };
        let want: &[&str] = match c.kind.as_str() {
            "ind_encoder" => &["image"],
            "ind_decoder" => &["latent"],
            "ind_denoiser" => &["z_t", "t", "cond"],
            other => return Err(Error::model(path, format!("unknown idfcr.kind {other:?}"))),
        };
        if c.inputs != want {
            return Err(Error::model(
                path,
                format!(
                    "a {} must have inputs {want:?}, this one has {:?}",
                    c.kind, c.inputs
                ),
            ));
        }
        Ok(c)
    }
}

/// Which graph of a set a problem is with (`Mismatch`: the graphs do not
/// make one model; the one that differs from the other two, when two agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Encoder,
    Denoiser,
    Mismatch(Option<Graph>),
}

/// One graph of an IND set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graph {
    Encoder,
    Decoder,
    Denoiser,
}

/// Whether three graphs make one IND model the sampler can run; the graph
/// at fault and what is wrong otherwise.
pub fn set_problem(e: &IndContract, d: &IndContract, n: &IndContract) -> Option<(Part, String)> {
    let same = |a: &IndContract, b: &IndContract| {
        a.bands == b.bands
            && a.latent_channels == b.latent_channels
            && a.factor == b.factor
            && a.graph_scale == b.graph_scale
            && a.version == b.version
    };
    if !same(e, d) || !same(e, n) {
        // The odd one out is the graph that does not belong (a decoder of
        // another set copied in); with all three apart, none is named.
        let odd = if same(d, n) {
            Some(Graph::Encoder)
        } else if same(e, n) {
            Some(Graph::Decoder)
        } else if same(e, d) {
            Some(Graph::Denoiser)
        } else {
            None
        };
        return Some((
            Part::Mismatch(odd),
            "bands, latent, factor, scaling or version differ".into(),
        ));
    }
    // The encoder's tiles are cut in image px and cropped in latent px: a
    // window that is not whole latent pixels misaligns the crop.
    if e.window_px % e.factor != 0 {
        return Some((
            Part::Encoder,
            format!(
                "idfcr.window_px {} is not a multiple of idfcr.factor {}",
                e.window_px, e.factor
            ),
        ));
    }
    // The sampler's latent tiles are at least four margins and four windows
    // wide (`diffusion::refine`); bounded as stage 1's tiles are, or a
    // denoiser stating a huge halo would have every tile allocate gigabytes
    // (even for a 1 px scene).
    let min_tile = 4 * (crate::tiling::grid::round_up(n.halo_px, n.window_px) + n.window_px);
    let max = crate::tiling::grid::MAX_TILE_PX;
    if min_tile * n.factor > max {
        return Some((
            Part::Denoiser,
            format!(
                "idfcr.halo_px {} and idfcr.window_px {} need latent tiles of {min_tile} px ({} image px), more than {max}",
                n.halo_px,
                n.window_px,
                min_tile * n.factor
            ),
        ));
    }
    None
}

/// One IND graph as a pool of sessions (one per worker).
pub struct IndGraph {
    pub path: PathBuf,
    pub contract: IndContract,
    pub sha256: String,
    pub provider: Provider,
    sessions: Vec<Mutex<Session>>,
}

impl IndGraph {
    /// Load `path`, which must be a graph of `kind`.
    pub fn load(
        path: &Path,
        kind: &str,
        device: Device,
        workers: usize,
        intra_threads: usize,
        ort_lib: Option<&Path>,
    ) -> Result<IndGraph> {
        let g = open_graph(
            path,
            GraphKind::Ind,
            device,
            workers,
            intra_threads,
            ort_lib,
        )?;
        let contract = IndContract::from_metadata(path, g.inputs, &g.meta)?;
        if contract.kind != kind {
            return Err(Error::model(
                path,
                format!("is a {}, not a {kind}", contract.kind),
            ));
        }
        Ok(IndGraph {
            path: path.to_path_buf(),
            contract,
            sha256: g.sha256,
            provider: g.provider,
            sessions: g.sessions,
        })
    }

    pub fn workers(&self) -> usize {
        self.sessions.len()
    }

    /// Run with named float32 inputs of the given shapes; returns the first
    /// output's values and shape.
    pub fn run(
        &self,
        worker: usize,
        inputs: Vec<(&str, Vec<usize>, Vec<f32>)>,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        let mut feeds = Vec::new();
        for (name, shape, data) in inputs {
            let t = ort::value::Tensor::from_array((shape, data)).map_err(|e| {
                Error::model(&self.path, format!("cannot build input `{name}`: {e}"))
            })?;
            feeds.push((name.to_string(), ort::value::DynValue::from(t)));
        }
        let mut session = self.sessions[worker % self.sessions.len()]
            .lock()
            .map_err(|_| Error::model(&self.path, "session lock poisoned by an earlier failure"))?;
        let outputs = session
            .run(feeds)
            .map_err(|e| Error::model(&self.path, format!("inference failed: {e}")))?;
        let (out_name, first) = outputs
            .iter()
            .next()
            .ok_or_else(|| Error::model(&self.path, "graph returned no output"))?;
        let (shape, data) = first
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::model(&self.path, format!("output is not float32: {e}")))?;
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let hw = match shape.as_slice() {
            [.., h, w] => (*h, *w),
            _ => (0, 0),
        };
        crate::models::pixel_cr::ensure_finite(&self.path, out_name, data.iter().copied(), hw)?;
        Ok((data.to_vec(), shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(kind: &str, window_px: usize, halo_px: usize) -> IndContract {
        IndContract {
            kind: kind.into(),
            name: "ind".into(),
            version: "1".into(),
            bands: 3,
            latent_channels: 4,
            factor: 4,
            window_px,
            halo_px,
            graph_scale: GraphScale {
                scale: 1.0,
                offset: 0.0,
            },
            inputs: Vec::new(),
        }
    }

    #[test]
    fn a_set_fits_together_or_names_the_graph_at_fault() {
        // (encoder window, denoiser window, denoiser halo, denoiser bands) -> fault
        type Fault = Option<(Part, &'static str)>;
        let cases: &[(usize, usize, usize, usize, Fault)] = &[
            (4, 2, 18, 3, None), // the bundled ind_rgb
            (8, 2, 18, 3, None),
            (
                6,
                2,
                18,
                3,
                Some((Part::Encoder, "not a multiple of idfcr.factor 4")),
            ),
            (
                4,
                2,
                18,
                4,
                Some((Part::Mismatch(Some(Graph::Denoiser)), "bands, latent")),
            ),
            (4, 2, 508, 3, None), // 4 x (508 + 2) x 4 = 8160 image px
            (4, 2, 510, 3, None), // 8192 exactly
            (4, 2, 511, 3, Some((Part::Denoiser, "more than 8192"))), // 8224
            (
                4,
                4096,
                4096,
                3,
                Some((Part::Denoiser, "need latent tiles of 32768 px")),
            ),
        ];
        for &(ew, nw, nh, nb, want) in cases {
            let mut n = graph("ind_denoiser", nw, nh);
            n.bands = nb;
            let got = set_problem(
                &graph("ind_encoder", ew, 20),
                &graph("ind_decoder", 1, 6),
                &n,
            );
            match (got, want) {
                (None, None) => {}
                (Some((part, msg)), Some((want_part, frag))) => {
                    assert_eq!(part, want_part, "{msg}");
                    assert!(msg.contains(frag), "{msg}");
                }
                (got, _) => panic!("{ew} {nw} {nh} {nb}: {got:?}"),
            }
        }
        // The odd one out is named whichever graph it is.
        let (e, d, n) = (
            graph("ind_encoder", 4, 20),
            graph("ind_decoder", 1, 6),
            graph("ind_denoiser", 2, 18),
        );
        let other = |mut c: IndContract| {
            c.latent_channels = 8;
            c
        };
        let odd = |e, d, n| set_problem(&e, &d, &n).map(|(part, _)| part);
        let mismatch = |g| Some(Part::Mismatch(g));
        let (oe, od, on) = (other(e.clone()), other(d.clone()), other(n.clone()));
        assert_eq!(
            odd(oe.clone(), d.clone(), n.clone()),
            mismatch(Some(Graph::Encoder))
        );
        assert_eq!(
            odd(e.clone(), od.clone(), n.clone()),
            mismatch(Some(Graph::Decoder))
        );
        assert_eq!(
            odd(e.clone(), d.clone(), on),
            mismatch(Some(Graph::Denoiser))
        );
        let mut third = n.clone();
        third.bands = 4;
        assert_eq!(odd(e, od, third), mismatch(None));
    }
}
