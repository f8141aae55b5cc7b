//! A per-pixel classifier graph (s2cloudless: LightGBM trees converted to
//! ONNX): band values in, one probability per pixel out. The ONNX Runtime
//! side of `sentinel2::detector`, which reads the bands and owns the map.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use ort::session::Session;

use crate::error::{Error, Result};
use crate::models::runtime::Device;

/// One CPU session of a classifier graph with input `input` (N, bands,
/// rows, cols) and output `output` (one value per pixel).
pub struct PixelClassifier {
    path: PathBuf,
    session: Session,
    input: &'static str,
    output: &'static str,
}

impl PixelClassifier {
    /// Load `path` on the CPU with `threads` intra-op threads (trees gain
    /// nothing from a GPU at these sizes).
    pub fn load(
        path: &Path,
        input: &'static str,
        output: &'static str,
        threads: usize,
        ort_lib: Option<&Path>,
    ) -> Result<Self> {
        let (_, sessions, _) = crate::models::pixel_cr::load_session_pool(
            path,
            Device::Cpu,
            1,
            threads.max(1),
            ort_lib,
        )?;
        let session = sessions
            .into_iter()
            .next()
            .ok_or_else(|| Error::model(path, "no session was built"))?
            .into_inner()
            .map_err(|_| Error::model(path, "session lock poisoned"))?;
        Ok(PixelClassifier {
            path: path.to_path_buf(),
            session,
            input,
            output,
        })
    }

    /// The probabilities of `x` (1, bands, rows, cols), row by row.
    pub fn run(&mut self, x: Array4<f32>) -> Result<Vec<f32>> {
        let (path, output) = (&self.path, self.output);
        let want = x.len() / x.dim().1.max(1);
        let input = ort::value::Tensor::from_array(x)
            .map_err(|e| Error::model(path, format!("cannot build input tensor: {e}")))?;
        let out = self
            .session
            .run(ort::inputs![self.input => input])
            .map_err(|e| Error::model(path, format!("inference failed: {e}")))?;
        let v = out
            .get(output)
            .ok_or_else(|| Error::model(path, format!("no output `{output}`")))?;
        let (_, p) = v
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::model(path, format!("output `{output}` is not float32: {e}")))?;
        if p.len() != want {
            return Err(Error::model(
                path,
                format!("output has {} values, expected {want}", p.len()),
            ));
        }
        Ok(p.to_vec())
    }
}
