//! A cloud-removal model: its contract (read from the ONNX metadata) and a
//! pool of ONNX Runtime sessions that run tiles.
//!
//! The contract is read from the model file's metadata by `contract`
//! (the `idfcr.*` key table is `onnx/contract_keys.json`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::{Array2, Array3, Axis};
use ort::session::Session;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::models::contract::{GraphKind, GraphScale, Metadata};
use crate::models::runtime::Device;

/// What a model expects and produces.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelContract {
    pub name: String,
    pub version: String,
    pub bands: usize,
    pub band_names: Vec<String>,
    /// The graph's units (see `Normaliser` for the whole conversion).
    pub graph_scale: GraphScale,
    pub window_px: usize,
    pub halo_px: usize,
    pub input_name: String,
    pub clear_output: String,
    pub attention_output: Option<String>,
    /// Nominal raster values of the training data, `(lo, hi)`; None for
    /// models exported before the key existed (no range check).
    pub input_range: Option<(f64, f64)>,
    /// The attention output is a calibrated cloud probability (0 where the
    /// model found no cloud), fit for blending.
    pub calibrated_probability: bool,
    /// How to calibrate a separate detector's probability (s2cloudless) for
    /// this model's blend; None: the detector's default. Each model has
    /// its own because how much thin cloud is worth handing to the model
    /// depends on how well the model removes it.
    pub detector_calibration: Option<crate::tiling::probability::Calibration>,
}

impl ModelContract {
    /// Parse the contract from a metadata lookup (key -> value).
    pub fn from_lookup(
        path: &Path,
        input_name: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        Self::from_metadata(
            path,
            input_name,
            &Metadata::read(path, GraphKind::PixelCr, get)?,
        )
    }

    /// The contract from a graph's read metadata.
    pub fn from_metadata(path: &Path, input_name: &str, m: &Metadata) -> Result<Self> {
        let outputs = m.list("idfcr.outputs");
        if outputs.is_empty() {
            return Err(Error::model(path, "metadata `idfcr.outputs` is empty"));
        }
        Ok(ModelContract {
            input_range: m.range("idfcr.input_range")?,
            calibrated_probability: m
                .text("idfcr.probability")
                .is_some_and(|v| v.trim() == "calibrated")
                && outputs.len() > 1,
            detector_calibration: m
                .text("idfcr.detector_calibration")
                .map(crate::tiling::probability::Calibration::parse)
                .transpose()
                .map_err(|e| Error::model(path, format!("idfcr.detector_calibration: {e}")))?,
            name: m.required("idfcr.name")?.to_string(),
            version: m.text("idfcr.version").unwrap_or("unknown").to_string(),
            bands: m.positive("idfcr.bands")?,
            band_names: m.list("idfcr.band_names"),
            graph_scale: GraphScale::from_metadata(m)?,
            window_px: m.positive("idfcr.window_px")?,
            halo_px: m.count("idfcr.halo_px")?,
            input_name: input_name.to_string(),
            clear_output: outputs[0].clone(),
            attention_output: outputs.get(1).cloned(),
        })
    }

    /// Margin the tiler keeps at tile borders: the halo, on the window grid.
    pub fn margin_px(&self) -> usize {
        crate::tiling::grid::round_up(self.halo_px, self.window_px)
    }
}

/// Which execution provider a pool ended up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
}

/// Sessions for one model, one per worker (ORT's `run` needs `&mut`).
pub struct Model {
    pub path: PathBuf,
    pub contract: ModelContract,
    /// Hex SHA-256 of the model file, written into output tags.
    pub sha256: String,
    pub provider: Provider,
    sessions: Vec<Mutex<Session>>,
}

/// One tile's results, in model units.
pub struct TileOutput {
    /// (bands, height, width)
    pub clear: Array3<f32>,
    /// (height, width): the cloud probability (or raw attention map).
    pub attention: Option<Array2<f32>>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Model {
    /// Load `path` into `workers` sessions of `intra_threads` threads each.
    pub fn load(
        path: &Path,
        device: Device,
        workers: usize,
        intra_threads: usize,
        ort_lib: Option<&Path>,
    ) -> Result<Model> {
        let g = open_graph(
            path,
            GraphKind::PixelCr,
            device,
            workers,
            intra_threads,
            ort_lib,
        )?;
        let input_name = g
            .inputs
            .first()
            .ok_or_else(|| Error::model(path, "model has no inputs"))?;
        let contract = ModelContract::from_metadata(path, input_name, &g.meta)?;
        let output_names = &g.outputs;
        for name in std::iter::once(&contract.clear_output).chain(contract.attention_output.iter())
        {
            if !output_names.contains(name) {
                return Err(Error::model(
                    path,
                    format!("metadata names output `{name}` but the graph has {output_names:?}"),
                ));
            }
        }
        Ok(Model {
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

    /// Run one tile (bands x h x w, model units). `worker` picks the session.
    /// Run one tile (bands, height, width) in model units.
    pub fn run(&self, worker: usize, tile: Array3<f32>) -> Result<TileOutput> {
        let c = &self.contract;
        let (bands, h, w) = tile.dim();
        if bands != c.bands {
            return Err(Error::model(
                &self.path,
                format!("a tile of {bands} bands for a {}-band model", c.bands),
            ));
        }
        let input = ort::value::Tensor::from_array(tile.insert_axis(Axis(0)))
            .map_err(|e| Error::model(&self.path, format!("cannot build input tensor: {e}")))?;
        let mut session = self.sessions[worker % self.sessions.len()]
            .lock()
            .map_err(|_| Error::model(&self.path, "session lock poisoned by an earlier failure"))?;
        let outputs = session
            .run(ort::inputs![c.input_name.as_str() => input])
            .map_err(|e| {
                Error::model(
                    &self.path,
                    format!("inference failed on a {h} x {w} tile: {e}"),
                )
            })?;
        let take = |name: &str, planes: usize| -> Result<Array3<f32>> {
            let v = outputs
                .get(name)
                .ok_or_else(|| Error::model(&self.path, format!("no output `{name}`")))?;
            let (shape, data) = v.try_extract_tensor::<f32>().map_err(|e| {
                Error::model(&self.path, format!("output `{name}` is not float32: {e}"))
            })?;
            // The shape, not only the count: a channels-last (1, h, w, c)
            // output has the same count and would come out scrambled.
            let want = [1, planes as i64, h as i64, w as i64];
            if shape.iter().copied().ne(want) {
                return Err(Error::model(
                    &self.path,
                    format!(
                        "output `{name}` has shape {:?} for a {h} x {w} tile, expected {want:?} (batch, bands, height, width)",
                        shape.iter().collect::<Vec<_>>()
                    ),
                ));
            }
            Array3::from_shape_vec((planes, h, w), data.to_vec()).map_err(|_| {
                Error::model(
                    &self.path,
                    format!(
                        "output `{name}` has {} values, expected {planes} x {h} x {w}",
                        data.len()
                    ),
                )
            })
        };
        let clear = take(&c.clear_output, c.bands)?;
        ensure_finite(&self.path, &c.clear_output, clear.iter().copied(), (h, w))?;
        let attention = c
            .attention_output
            .as_deref()
            .map(|n| take(n, 1).map(|a| a.index_axis_move(Axis(0), 0)))
            .transpose()?;
        Ok(TileOutput { clear, attention })
    }
}

/// A model's inputs are always finite (the reader masks NaN and infinite
/// values), so a non-finite output is the graph's fault: an export or a
/// reduced-precision conversion that overflows. Written out it would be
/// black or NaN pixels marked valid; refused instead, naming the graph.
pub(crate) fn ensure_finite(
    path: &Path,
    output: &str,
    values: impl IntoIterator<Item = f32>,
    (h, w): (usize, usize),
) -> Result<()> {
    let bad = values.into_iter().filter(|v| !v.is_finite()).count();
    if bad == 0 {
        return Ok(());
    }
    Err(Error::model(
        path,
        format!(
            "output `{output}` has {bad} NaN or infinite values on a {h} x {w} tile of finite input; \
             the graph is broken or its precision too low (re-export it in float32)"
        ),
    ))
}

/// A graph file opened into a session pool, with what every kind of graph
/// is checked by: its input and output names and its contract metadata.
pub(crate) struct OpenGraph {
    pub sha256: String,
    pub sessions: Vec<Mutex<Session>>,
    pub provider: Provider,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub meta: Metadata,
}

/// Open `path` as a `kind` graph: `workers` sessions of `intra_threads`
/// threads, and its names and `idfcr.*` metadata read once.
pub(crate) fn open_graph(
    path: &Path,
    kind: GraphKind,
    device: Device,
    workers: usize,
    intra_threads: usize,
    ort_lib: Option<&Path>,
) -> Result<OpenGraph> {
    let (bytes, sessions, provider) =
        load_session_pool(path, device, workers, intra_threads, ort_lib)?;
    let (inputs, outputs, meta) = {
        let first = sessions[0]
            .lock()
            .map_err(|_| Error::model(path, "session lock poisoned"))?;
        let names = |v: &[ort::value::Outlet]| v.iter().map(|o| o.name().to_string()).collect();
        let md = first
            .metadata()
            .map_err(|e| Error::model(path, format!("cannot read metadata: {e}")))?;
        let meta = Metadata::read(path, kind, |k| md.custom(k))?;
        (names(first.inputs()), names(first.outputs()), meta)
    };
    Ok(OpenGraph {
        sha256: sha256_hex(&bytes),
        sessions,
        provider,
        inputs,
        outputs,
        meta,
    })
}

/// Read a model file and build `workers` sessions of it (one per worker,
/// as `Session::run` needs `&mut`): the bytes (for hashing), the sessions
/// and the provider they ended up on.
pub(crate) fn load_session_pool(
    path: &Path,
    device: Device,
    workers: usize,
    intra_threads: usize,
    ort_lib: Option<&Path>,
) -> Result<(Vec<u8>, Vec<Mutex<Session>>, Provider)> {
    let bytes = std::fs::read(path).map_err(|e| Error::model(path, format!("cannot read: {e}")))?;
    if bytes.is_empty() {
        return Err(Error::model(path, "file is empty"));
    }
    let env = crate::models::runtime::environment(ort_lib)?;
    // The first session settles where `--device auto` runs. On CUDA one
    // session is the pool (as with `--device cuda`: each session holds its
    // own GPU memory arena, and several would run out on a small GPU); on
    // CPU the others are built for the CPU without asking CUDA again.
    let (first, provider) = build_session(env, &bytes, path, device, intra_threads, true)?;
    let mut sessions = vec![Mutex::new(first)];
    if provider == Provider::Cpu {
        for _ in 1..workers.max(1) {
            let (session, _) = build_session(env, &bytes, path, Device::Cpu, intra_threads, false)?;
            sessions.push(Mutex::new(session));
        }
    }
    Ok((bytes, sessions, provider))
}

/// Why `--device auto` runs on CPU in this process, once it has tried CUDA.
static CUDA_FALLBACK: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The note for summaries: None when CUDA was used or never tried.
pub fn device_note() -> Option<String> {
    CUDA_FALLBACK
        .get()
        .map(|why| format!("--device auto runs on CPU: CUDA is not usable ({why})"))
}

pub(crate) fn build_session(
    env: &ort::environment::Environment,
    bytes: &[u8],
    path: &Path,
    device: Device,
    intra_threads: usize,
    report: bool,
) -> Result<(Session, Provider)> {
    let cpu = |intra: usize| -> Result<Session> {
        // Memory patterns off: ORT would plan one block for every
        // intermediate tensor of a tile shape at once (6.1 GB peak for a
        // 512 px Pixel-CR tile, 3.8 GB with per-head attention); without it
        // tensors are allocated as they are needed, from the arena, at the
        // same speed (measured with scripts/bench.py --tiles). Tile shapes
        // vary at scene edges anyway, which is when patterns do not help.
        Session::builder(env)
            .and_then(|b| Ok(b.with_intra_threads(intra.max(1))?))
            .and_then(|b| Ok(b.with_memory_pattern(false)?))
            .and_then(|mut b| b.commit_from_memory(bytes))
            .map_err(|e| Error::model(path, format!("ONNX Runtime cannot load it: {e}")))
    };
    let cuda = || -> std::result::Result<Session, String> {
        let ep = ort::ep::CUDA::default().build().error_on_failure();
        let mut b = Session::builder(env).map_err(|e| e.to_string())?;
        b = b
            .with_execution_providers([ep])
            .map_err(|e| e.to_string())?;
        b.commit_from_memory(bytes).map_err(|e| e.to_string())
    };
    match device {
        Device::Cpu => Ok((cpu(intra_threads)?, Provider::Cpu)),
        Device::Cuda => cuda().map(|s| (s, Provider::Cuda)).map_err(|e| {
            Error::Runtime(format!(
                "--device cuda: the CUDA execution provider failed: {e}"
            ))
        }),
        Device::Auto => {
            use ort::ep::ExecutionProvider;
            // A library built without CUDA cannot use it; say so plainly
            // instead of passing on ORT's registration error.
            let why = if ort::ep::CUDA::is_available().unwrap_or(false) {
                match cuda() {
                    Ok(s) => return Ok((s, Provider::Cuda)),
                    Err(e) => e.lines().next().unwrap_or("").to_string(),
                }
            } else {
                "this ONNX Runtime library has no CUDA support; onnxruntime-gpu has".to_string()
            };
            // Quietly: a cron job on a CPU machine must not mail a warning
            // every run. The reason goes into the run summary (`--json`)
            // and, on a terminal, one line before the progress bar.
            if report {
                let _ = CUDA_FALLBACK.set(why);
            }
            Ok((cpu(intra_threads)?, Provider::Cpu))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        ("idfcr.name", "pixel_cr_rgb"),
        ("idfcr.bands", "3"),
        ("idfcr.input_scale", "0.00392156862745098"),
        ("idfcr.window_px", "16"),
        ("idfcr.halo_px", "40"),
        ("idfcr.outputs", "clear,attention"),
    ];

    #[test]
    fn contract_parses_and_converts() {
        let c = ModelContract::from_lookup(Path::new("m.onnx"), "cloudy", lookup(GOOD)).unwrap();
        assert_eq!(
            (c.bands, c.window_px, c.halo_px, c.margin_px()),
            (3, 16, 40, 48)
        );
        assert_eq!(c.attention_output.as_deref(), Some("attention"));
        assert_eq!(c.graph_scale.scale, 1.0 / 255.0);
        assert_eq!(c.graph_scale.offset, 0.0);
        assert_eq!(c.detector_calibration, None);
        let mut pairs = GOOD.to_vec();
        pairs.push(("idfcr.detector_calibration", "0.1,0.2,0,1"));
        let c = ModelContract::from_lookup(Path::new("m.onnx"), "cloudy", lookup(&pairs)).unwrap();
        let cal = c.detector_calibration.expect("carried");
        assert_eq!(
            (cal.t0, cal.t1, cal.dilate_px, cal.blur_px),
            (0.1, 0.2, 0, 1)
        );
    }

    #[test]
    fn non_finite_outputs_are_the_graphs_fault() {
        let p = Path::new("m.onnx");
        // (values, accepted, words of the message)
        let cases: [(&[f32], bool, &str); 4] = [
            (&[0.0, 1.5, -3.0], true, ""),
            (&[0.0, f32::NAN], false, "1 NaN or infinite"),
            (
                &[f32::INFINITY, f32::NEG_INFINITY, 2.0],
                false,
                "2 NaN or infinite",
            ),
            (&[], true, ""),
        ];
        for (values, ok, words) in cases {
            match ensure_finite(p, "clear", values.iter().copied(), (2, 3)) {
                Ok(()) => assert!(ok, "{values:?}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        !ok && msg.contains("m.onnx") && msg.contains(words),
                        "{msg}"
                    );
                }
            }
        }
    }

    #[test]
    fn contract_errors_name_the_key() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("idfcr.bands", None, "idfcr.bands"),
            ("idfcr.bands", Some("three"), "not a number"),
            ("idfcr.window_px", Some("1.5"), "whole number"),
            ("idfcr.outputs", Some(" , "), "empty"),
            ("idfcr.input_scale", Some("0"), "zero"),
            ("idfcr.window_px", Some("0"), "zero"),
            (
                "idfcr.detector_calibration",
                Some("0.9,0.6,4,2"),
                "below t1",
            ),
            (
                "idfcr.detector_calibration",
                Some("0.6"),
                "detector_calibration",
            ),
        ];
        for (key, value, want) in cases {
            let mut pairs: Vec<(&str, &str)> =
                GOOD.iter().filter(|(k, _)| k != key).cloned().collect();
            if let Some(v) = value {
                pairs.push((key, v));
            }
            let e = ModelContract::from_lookup(Path::new("m.onnx"), "x", lookup(&pairs))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(want) && e.contains("m.onnx"),
                "{key}={value:?}: {e}"
            );
        }
    }
}
