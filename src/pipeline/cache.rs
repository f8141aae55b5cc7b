//! Loaded models by path, so that `batch` and `s2` load each model once.

use std::path::{Path, PathBuf};

use crate::config::{Device, RefineOptions, RemoveConfig};
use crate::diffusion::refine::IndModels;
use crate::error::{Error, Result};
use crate::io::reader::InputRaster;
use crate::models::pixel_cr::Model;
use crate::models::registry::{find_bundled, model_dirs};
use crate::pipeline::fit::resolve_model;

/// Loaded models by path, so that a batch loads its model once.
#[derive(Default)]
pub struct ModelCache {
    models: std::collections::HashMap<PathBuf, Model>,
    ind: std::collections::HashMap<PathBuf, IndModels>,
}

impl ModelCache {
    /// The model `cfg` asks for (or the default for the input), loaded once
    /// and kept while the inputs keep asking for it. One model stays
    /// resident: an ONNX Runtime session's arena keeps the memory of the
    /// largest tile it ran, so the three group models of a Sentinel-2
    /// product held their peaks at once (a 1098 px product peaked at 1.9 GB;
    /// with one resident, 1.0 GB).
    /// Reloading costs a fraction of a second.
    pub fn get(&mut self, cfg: &RemoveConfig, input: &InputRaster) -> Result<&Model> {
        let path = resolve_model(cfg, input)?;
        if !self.models.contains_key(&path) {
            self.models.clear();
            let (workers, intra) = split_threads(cfg.opts.threads, cfg.opts.device);
            let model = Model::load(
                &path,
                cfg.opts.device,
                workers,
                intra,
                cfg.opts.ort_lib.as_deref(),
            )?;
            self.models.insert(path.clone(), model);
        }
        Ok(&self.models[&path])
    }

    /// The IND model `--refine` asks for (or the bundled one for the input),
    /// loaded once.
    pub fn ind(
        &mut self,
        cfg: &RemoveConfig,
        opts: &RefineOptions,
        input: &InputRaster,
    ) -> Result<&IndModels> {
        if input.nodata_per_band {
            // The diffusion stage reads whole pixels; a Sentinel-2 band
            // without data where the others have it would be encoded as 0.
            return Err(Error::input(
                &cfg.job.input,
                format!(
                    "--refine: Sentinel-2 bands ({}) have no IND model; drop --refine",
                    input.band_names.join(" ")
                ),
            ));
        }
        let prefix = match &opts.ind_model {
            Some(p) => crate::diffusion::refine::prefix_of(p),
            None => {
                if input.bands() != 3 || !input.band_names.is_empty() {
                    return Err(Error::input(
                        &cfg.job.input,
                        format!(
                            "--refine: the bundled IND model is for RGB (3 bands) and this input has {}; pass --ind-model",
                            if input.band_names.is_empty() { format!("{} band(s)", input.bands()) } else { format!("bands {}", input.band_names.join(" ")) }
                        ),
                    ));
                }
                let dirs = model_dirs(cfg.opts.model_dir.as_deref());
                // The three graphs sit side by side: found by the encoder.
                let encoder = crate::diffusion::refine::graph_path(Path::new("ind_rgb"), "encoder");
                find_bundled(&encoder.to_string_lossy(), &dirs, "pass --ind-model")?
                    .with_file_name("ind_rgb")
            }
        };
        if !self.ind.contains_key(&prefix) {
            let (workers, intra) = split_threads(cfg.opts.threads, cfg.opts.device);
            let m = IndModels::load(
                &prefix,
                cfg.opts.device,
                workers,
                intra,
                cfg.opts.ort_lib.as_deref(),
            )?;
            self.ind.insert(prefix.clone(), m);
        }
        let m = &self.ind[&prefix];
        if m.bands() != input.bands() {
            return Err(Error::input(
                &cfg.job.input,
                format!(
                    "has {} band(s) but IND model {} expects {}",
                    input.bands(),
                    m.prefix.display(),
                    m.bands()
                ),
            ));
        }
        Ok(m)
    }
}

/// Sessions and ORT threads per session for a thread budget: a few fat
/// sessions use the cores better than many thin ones on CPU; one on CUDA.
pub fn split_threads(threads: usize, device: Device) -> (usize, usize) {
    let threads = threads.max(1);
    if device == Device::Cuda {
        return (1, threads);
    }
    let workers = if threads >= 8 { threads / 4 } else { 1 };
    (workers, threads / workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_split() {
        let cases = [
            (1, Device::Cpu, (1, 1)),
            (2, Device::Auto, (1, 2)),
            (8, Device::Cpu, (2, 4)),
            (16, Device::Cpu, (4, 4)),
            (16, Device::Cuda, (1, 16)),
        ];
        for (t, d, want) in cases {
            assert_eq!(split_threads(t, d), want, "{t} {d:?}");
        }
    }
}
