//! Stage 2 of IDF-CR (IND): refine the Pixel-CR result with latent diffusion.
//!
//! The stage reads the Pixel-CR result (a working file written by stage 1)
//! and goes, for the whole scene at once:
//!
//! 1. encode: image -> condition latent, tile by tile; each tile is read with
//!    the encoder's halo and only its core is kept, so the latent is the one
//!    an untiled encoder would give (no blending needed);
//! 2. sample: `sampler::sample` over the whole latent (noise drawn for the
//!    whole latent, the denoiser run per latent tile and blended);
//! 3. decode: latent -> image, tile by tile with the decoder's halo, plus
//!    the colour fix's halo, so that
//! 4. the wavelet colour fix (`colorfix.rs`) against the Pixel-CR image is
//!    exact as well; then the tile's core is written.
//!
//! Beyond the scene edges the image is mirrored (as in stage 1) and the
//! latent is mirrored too. Memory: the latent (1/factor^2 of the scene per
//! latent channel) a few times over, plus a few tiles per worker.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{s, Array3, ArrayView3};
use rayon::prelude::*;

use crate::config::Device;
use crate::diffusion::colorfix::{wavelet_color_fix, HALO_PX};
use crate::diffusion::sampler::{sample, Chain, Latent, LatentTiles};
use crate::diffusion::tiles::{
    cores, crop, fill_invalid, latent_window, read_mirrored, LatentCore,
};
use crate::error::{Error, Result};
use crate::io::reader::InputRaster;
use crate::io::writer::OutputRaster;
use crate::models::ind::IndGraph;
use crate::progress::Progress;
use crate::tiling::cloud_blend;
use crate::tiling::grid::round_up;

/// The three IND graphs of one model, checked to fit together.
pub struct IndModels {
    pub encoder: IndGraph,
    pub decoder: IndGraph,
    pub denoiser: IndGraph,
    /// Path prefix: the graphs are `<prefix>_encoder.onnx` and so on.
    pub prefix: PathBuf,
}

/// `<prefix>_<kind>.onnx`.
pub fn graph_path(prefix: &Path, kind: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!("_{kind}.onnx"));
    PathBuf::from(s)
}

/// What `--ind-model` may name: the prefix itself or any one of the three
/// graph files. Returns the prefix.
pub fn prefix_of(arg: &Path) -> PathBuf {
    let s = arg.to_string_lossy();
    for kind in ["encoder", "decoder", "denoiser"] {
        if let Some(p) = s.strip_suffix(&format!("_{kind}.onnx")) {
            return PathBuf::from(p);
        }
    }
    arg.to_path_buf()
}

impl IndModels {
    pub fn load(
        prefix: &Path,
        device: Device,
        workers: usize,
        intra_threads: usize,
        ort_lib: Option<&Path>,
    ) -> Result<IndModels> {
        let load = |kind: &str| {
            let path = graph_path(prefix, kind);
            if !path.is_file() {
                return Err(Error::model(
                    &path,
                    format!(
                        "not found: an IND model is three graphs, {}_{{encoder,decoder,denoiser}}.onnx",
                        prefix.display()
                    ),
                ));
            }
            IndGraph::load(
                &path,
                &format!("ind_{kind}"),
                device,
                workers,
                intra_threads,
                ort_lib,
            )
        };
        let m = IndModels {
            encoder: load("encoder")?,
            decoder: load("decoder")?,
            denoiser: load("denoiser")?,
            prefix: prefix.to_path_buf(),
        };
        use crate::models::ind::{set_problem, Graph, Part};
        if let Some((part, problem)) = set_problem(
            &m.encoder.contract,
            &m.decoder.contract,
            &m.denoiser.contract,
        ) {
            let (e, d, n) = (&m.encoder.path, &m.decoder.path, &m.denoiser.path);
            let apart = |odd: &PathBuf, a: &PathBuf, b: &PathBuf| {
                let msg = format!(
                    "does not belong with {} and {}: {problem}",
                    a.display(),
                    b.display()
                );
                Error::model(odd, msg)
            };
            return Err(match part {
                Part::Encoder => Error::model(e, problem),
                Part::Denoiser => Error::model(n, problem),
                Part::Mismatch(Some(Graph::Encoder)) => apart(e, d, n),
                Part::Mismatch(Some(Graph::Decoder)) => apart(d, e, n),
                Part::Mismatch(Some(Graph::Denoiser)) => apart(n, e, d),
                Part::Mismatch(None) => Error::model(
                    prefix,
                    format!(
                        "its encoder, decoder and denoiser are of three different models: {problem}"
                    ),
                ),
            });
        }
        Ok(m)
    }

    pub fn bands(&self) -> usize {
        self.encoder.contract.bands
    }

    /// The three graphs' hashes on one line (`IDFCR_REFINE_SHA256`).
    pub fn sha256_line(&self) -> String {
        format!(
            "encoder {} decoder {} denoiser {}",
            self.encoder.sha256, self.decoder.sha256, self.denoiser.sha256
        )
    }

    /// "name version" for tags and summaries.
    pub fn describe(&self) -> String {
        let c = &self.encoder.contract;
        format!("{} {}", c.name, c.version).trim().to_string()
    }
}

/// Timings of one refinement.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RefineStats {
    pub latent_width: usize,
    pub latent_height: usize,
    pub latent_tiles: usize,
    pub encode_seconds: f64,
    pub sample_seconds: f64,
    pub decode_seconds: f64,
}

/// One refinement: the Pixel-CR result in, the refined image out.
pub struct Refine<'a> {
    /// The Pixel-CR result (input units less `dn_offset`, nodata where the
    /// input had none valid).
    pub stage1: &'a InputRaster,
    /// Raster values <-> the IND graphs' values (the same conversion as
    /// stage 1, with the IND graphs' own scale).
    pub norm: crate::models::contract::Normaliser,
    /// Blend the refined image with the original input by the cloud
    /// probability: `(input, probability raster)`; None: refined everywhere.
    pub blend: Option<(&'a InputRaster, &'a InputRaster)>,
    pub models: &'a IndModels,
    /// Image tile size (px) for the encoder and decoder: they run once, so
    /// their memory (full-resolution activations) decides this size.
    pub tile_px: usize,
    /// Image px per denoiser tile (latent tiles are this / factor): the
    /// denoiser runs at every step on 1/factor^2 of the pixels, so a larger
    /// tile costs little memory and saves the overlap recomputed per step.
    pub latent_tile_px: usize,
    pub chain: Chain,
    pub pool: &'a rayon::ThreadPool,
}

impl Refine<'_> {
    /// A mirrored window of the Pixel-CR image in the graph's units, and
    /// its validity.
    fn read_model_units(
        &self,
        at: (isize, isize),
        (h, w): (usize, usize),
    ) -> Result<(Vec<f32>, Vec<bool>)> {
        let (mut v, valid) = read_mirrored(self.stage1, at, (h, w))?;
        let n = h * w;
        for (b, band) in v.chunks_mut(n.max(1)).enumerate() {
            for x in band {
                *x = self.norm.to_model(b, *x);
            }
        }
        Ok((v, valid))
    }

    /// Latent px per encoder/decoder tile core.
    fn core_l(&self) -> usize {
        (self.tile_px / self.models.encoder.contract.factor).max(1)
    }

    /// Latent size and the core tiles of the encoder and decoder.
    fn layout(&self) -> ((usize, usize), Vec<LatentCore>) {
        let f = self.models.encoder.contract.factor;
        let (lh, lw) = (
            self.stage1.height.div_ceil(f),
            self.stage1.width.div_ceil(f),
        );
        let core_l = self.core_l();
        let tiles = cores(lh, core_l)
            .into_iter()
            .flat_map(|y| cores(lw, core_l).into_iter().map(move |x| (y, x)))
            .map(|((y0, y1), (x0, x1))| (y0, y1, x0, x1))
            .collect();
        ((lh, lw), tiles)
    }

    /// Progress units of `run`: encoder tiles, sampler steps, decoder tiles.
    pub fn units(&self) -> u64 {
        (2 * self.layout().1.len() + self.chain.steps.max(1)) as u64
    }

    /// Run the stage and write every valid pixel of `out`. `progress`
    /// counts encoder tiles, sampler steps and decoder tiles.
    pub fn run(&self, out: &mut OutputRaster, progress: &mut dyn Progress) -> Result<RefineStats> {
        let ((lh, lw), enc_cores) = self.layout();
        let latent_core = (self.latent_tile_px / self.models.encoder.contract.factor).max(1);
        let den = &self.models.denoiser.contract;
        let win = den.window_px;
        let margin = round_up(den.halo_px, win);
        let overlap = 2 * margin + 2 * win;
        let tiles = LatentTiles {
            tile: round_up(latent_core, win).max(2 * overlap),
            overlap,
            margin,
            window: win,
        };
        let total = self.units();
        let mut done = 0u64;
        let mut stats = RefineStats {
            latent_width: lw,
            latent_height: lh,
            ..Default::default()
        };

        let t0 = Instant::now();
        let cond = self.encode(&enc_cores, (lh, lw), |n| {
            done += n;
            progress.update(done, total);
        })?;
        stats.encode_seconds = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let denoiser = &self.models.denoiser;
        let lat = den.latent_channels;
        let denoise = |z: ArrayView3<f32>, c: ArrayView3<f32>, t: usize| {
            let worker = rayon::current_thread_index().unwrap_or(0);
            let (_, th, tw) = z.dim();
            let shape = vec![1, lat, th, tw];
            let (eps, got) = denoiser.run(
                worker,
                vec![
                    ("z_t", shape.clone(), z.iter().copied().collect()),
                    ("t", vec![1], vec![t as f32]),
                    ("cond", shape.clone(), c.iter().copied().collect()),
                ],
            )?;
            if got != shape {
                return Err(Error::model(
                    &denoiser.path,
                    format!(
                        "returned shape {got:?} for a latent tile {th}x{tw}, expected {shape:?}"
                    ),
                ));
            }
            let n = eps.len();
            Array3::from_shape_vec((lat, th, tw), eps).map_err(|_| {
                Error::model(
                    &denoiser.path,
                    format!("returned {n} values for a {lat}x{th}x{tw} latent"),
                )
            })
        };
        let before = done;
        // Only Sync pieces go into the pool (the GDAL dataset is not).
        let chain = self.chain;
        let z0 = self.pool.install(|| {
            sample(&cond, lat, chain, &tiles, &denoise, |i, _| {
                progress.update(before + i as u64, total);
            })
        })?;
        done = before + self.chain.steps.max(1) as u64;
        stats.sample_seconds = t1.elapsed().as_secs_f64();
        stats.latent_tiles = {
            let g = |n| crate::tiling::grid::AxisGrid::new(n, tiles.tile, overlap, margin, win);
            g(lh)?.len() * g(lw)?.len()
        };
        drop(cond);

        let t2 = Instant::now();
        self.decode(&z0, &enc_cores, out, |n| {
            done += n;
            progress.update(done, total);
        })?;
        stats.decode_seconds = t2.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// Tiles in batches of a few per worker: read (GDAL, one thread), then
    /// run in parallel.
    fn batches(&self) -> usize {
        self.models.encoder.workers().max(1) * 2
    }

    fn encode(
        &self,
        cores: &[(usize, usize, usize, usize)],
        (lh, lw): (usize, usize),
        mut tick: impl FnMut(u64),
    ) -> Result<Latent> {
        let enc = &self.models.encoder;
        let c = &enc.contract;
        let (f, bands, lat) = (c.factor, c.bands, c.latent_channels);
        let halo = round_up(c.halo_px, f.max(c.window_px));
        let hl = halo / f;
        let mut latent = Latent::zeros((lat, lh, lw));
        for batch in cores.chunks(self.batches()) {
            crate::interrupt::check()?;
            let mut inputs = Vec::with_capacity(batch.len());
            for &(y0, y1, x0, x1) in batch {
                let (th, tw) = ((y1 - y0) * f + 2 * halo, (x1 - x0) * f + 2 * halo);
                let at = (
                    (y0 * f) as isize - halo as isize,
                    (x0 * f) as isize - halo as isize,
                );
                let (mut v, valid) = self.read_model_units(at, (th, tw))?;
                // The ControlNet was trained on Pixel-CR conditions clamped
                // to the graphs' 0..1 (`train_ind`); the raw stage-1 image
                // overshoots on bright cloud remnants (its global residual).
                for x in v.iter_mut() {
                    *x = x.clamp(0.0, 1.0);
                }
                fill_invalid(&mut v, &valid, bands);
                inputs.push((v, th, tw));
            }
            let outs: Vec<Result<Vec<f32>>> = self.pool.install(|| {
                inputs
                    .into_par_iter()
                    .map(|(v, th, tw)| {
                        let worker = rayon::current_thread_index().unwrap_or(0);
                        let (z, shape) =
                            enc.run(worker, vec![("image", vec![1, bands, th, tw], v)])?;
                        let want = [1, lat, th / f, tw / f];
                        if shape != want {
                            return Err(Error::model(
                                &enc.path,
                                format!("returned shape {shape:?} for an image tile {th}x{tw}, expected {want:?}"),
                            ));
                        }
                        Ok(z)
                    })
                    .collect()
            });
            for (&(y0, y1, x0, x1), z) in batch.iter().zip(outs) {
                let z = z?;
                let (zh, zw) = ((y1 - y0) + 2 * hl, (x1 - x0) + 2 * hl);
                let core = crop(&z, lat, (zh, zw), (hl, hl), (y1 - y0, x1 - x0));
                let core = ArrayView3::from_shape((lat, y1 - y0, x1 - x0), &core)
                    .map_err(|e| Error::model(&enc.path, format!("latent core: {e}")))?;
                latent.slice_mut(s![.., y0..y1, x0..x1]).assign(&core);
            }
            tick(batch.len() as u64);
        }
        Ok(latent)
    }

    /// The sampled latent -> image, core by core: decode with halo, colour
    /// fix against the Pixel-CR image, write.
    fn decode(
        &self,
        z0: &Latent,
        cores: &[LatentCore],
        out: &mut OutputRaster,
        mut tick: impl FnMut(u64),
    ) -> Result<()> {
        let dec = &self.models.decoder;
        let c = &dec.contract;
        let (f, bands, lat) = (c.factor, c.bands, c.latent_channels);
        // Image context for the colour fix, in whole latent pixels, plus
        // the decoder's own halo.
        let ctx_l = HALO_PX.div_ceil(f);
        let hd = round_up(c.halo_px, c.window_px);
        let pad_l = ctx_l + hd;
        for batch in cores.chunks(self.batches()) {
            crate::interrupt::check()?;
            let mut jobs = Vec::with_capacity(batch.len());
            for &(y0, y1, x0, x1) in batch {
                let (zt, (lth, ltw)) = latent_window(z0, (y0, y1, x0, x1), pad_l);
                // The Pixel-CR image over the core plus the colour-fix context.
                let (rh, rw) = ((y1 - y0 + 2 * ctx_l) * f, (x1 - x0 + 2 * ctx_l) * f);
                let at = (
                    ((y0 * f) as isize) - (ctx_l * f) as isize,
                    ((x0 * f) as isize) - (ctx_l * f) as isize,
                );
                let (style, valid) = self.read_model_units(at, (rh, rw))?;
                jobs.push((zt, (lth, ltw), style, valid, (rh, rw)));
            }
            let outs: Vec<Result<(Vec<f32>, Vec<bool>)>> = self.pool.install(|| {
                jobs.into_par_iter()
                    .map(|(zt, (lth, ltw), mut style, valid, (rh, rw))| {
                        let worker = rayon::current_thread_index().unwrap_or(0);
                        let (img, shape) =
                            dec.run(worker, vec![("latent", vec![1, lat, lth, ltw], zt)])?;
                        let want = [1, bands, lth * f, ltw * f];
                        if shape != want {
                            return Err(Error::model(
                                &dec.path,
                                format!("returned shape {shape:?} for a latent tile {lth}x{ltw}, expected {want:?}"),
                            ));
                        }
                        let content =
                            crop(&img, bands, (lth * f, ltw * f), (hd * f, hd * f), (rh, rw));
                        // Where the Pixel-CR image is nodata its colours are
                        // unknown: let the refined image stand there.
                        let n = rh * rw;
                        for b in 0..bands {
                            for p in 0..n {
                                if !valid[p] {
                                    style[b * n + p] = content[b * n + p];
                                }
                            }
                        }
                        Ok((wavelet_color_fix(&content, &style, bands, rw, rh), valid))
                    })
                    .collect()
            });
            for (&core, r) in batch.iter().zip(outs) {
                let (fixed, valid) = r?;
                self.write_core(core, ctx_l, &fixed, &valid, out)?;
            }
            tick(batch.len() as u64);
        }
        Ok(())
    }

    /// One decoded core back into the output: model values to raster
    /// values, blended with the input by p when asked, written.
    fn write_core(
        &self,
        (y0, y1, x0, x1): LatentCore,
        ctx_l: usize,
        fixed: &[f32],
        valid: &[bool],
        out: &mut OutputRaster,
    ) -> Result<()> {
        let c = &self.models.decoder.contract;
        let (f, bands) = (c.factor, c.bands);
        let (h, w) = (self.stage1.height, self.stage1.width);
        let (rh, rw) = ((y1 - y0 + 2 * ctx_l) * f, (x1 - x0 + 2 * ctx_l) * f);
        let (iy0, ix0) = (y0 * f, x0 * f);
        let (nr, nc) = ((y1 * f).min(h) - iy0, (x1 * f).min(w) - ix0);
        let n = nr * nc;
        let m = ctx_l * f;
        let mut values = vec![0f64; bands * n];
        let mut ok = vec![false; n];
        // Per band (band-major), as the writer takes them; `--refine` is
        // refused for inputs with per-band nodata (Sentinel-2), so a
        // pixel's bands are valid and kept together.
        let mut kept = vec![false; bands * n];
        for r in 0..nr {
            for col in 0..nc {
                let src = (m + r) * rw + m + col;
                ok[r * nc + col] = valid[src];
                for b in 0..bands {
                    values[b * n + r * nc + col] =
                        self.norm.from_model(b, fixed[b * rh * rw + src]) as f64;
                }
            }
        }
        if let Some((input, prob)) = self.blend {
            // Refine only where stage 1's probability says cloud;
            // where it is 0 the input comes back bit for bit.
            let x = input.read_window_exact(iy0, nr, ix0, nc)?;
            let p = prob.read_window(iy0, nr, ix0, nc)?;
            for (i, &pi) in p.iter().enumerate() {
                let pi = cloud_blend::usable_probability(pi);
                for b in 0..bands {
                    let j = b * n + i;
                    kept[j] = cloud_blend::keeps_input(pi);
                    values[j] = if kept[j] {
                        x.stored(j)
                    } else {
                        cloud_blend::mix(x.values[j], values[j] as f32, pi) as f64
                    };
                }
            }
        }
        let ok: Vec<bool> = (0..bands).flat_map(|_| ok.iter().copied()).collect();
        out.write_window_kept(iy0, nr, ix0, nc, &values, &ok, &kept)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let cases = [
            ("m/ind_rgb", "m/ind_rgb"),
            ("m/ind_rgb_encoder.onnx", "m/ind_rgb"),
            ("m/ind_rgb_denoiser.onnx", "m/ind_rgb"),
            ("ind_rgb_decoder.onnx", "ind_rgb"),
        ];
        for (arg, want) in cases {
            assert_eq!(prefix_of(Path::new(arg)), PathBuf::from(want), "{arg}");
        }
        assert_eq!(
            graph_path(Path::new("m/ind_rgb"), "encoder"),
            PathBuf::from("m/ind_rgb_encoder.onnx")
        );
    }
}
