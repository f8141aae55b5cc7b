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
        let (_, first) = outputs
            .iter()
            .next()
            .ok_or_else(|| Error::model(&self.path, "graph returned no output"))?;
        let (shape, data) = first
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::model(&self.path, format!("output is not float32: {e}")))?;
        Ok((data.to_vec(), shape.iter().map(|&d| d as usize).collect()))
    }
}
