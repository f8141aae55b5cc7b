//! Stage 1 (Pixel-CR) of one input: panels of strips of tiles, run on the
//! session pool, weighted together (`tiling::weights`), then blended with the input by
//! the cloud probability (`tiling::cloud_blend`) and written.
//!
//! 1. `Run::panel`, for each column panel: for each strip of tiles, read the
//!    pixels it needs (mirrored past the scene edge);
//! 2. `Run::run_tiles`: convert to model units, run the tiles on the session
//!    pool, blend them into the accumulator;
//! 3. `Run::write`: write the rows no later strip touches, in the columns
//!    this panel determines, as p x model + (1 - p) x input.
//!
//! Memory is bounded by one strip of one panel (tile height x panel width),
//! whatever the scene size.

use std::time::Instant;

use ndarray::Axis;
use rayon::prelude::*;

use crate::config::RemoveConfig;
use crate::error::{Error, Result};
use crate::io::reader::InputRaster;
use crate::io::values::shows_pixel;
use crate::io::writer::{OutputRaster, Provenance};
use crate::models::pixel_cr::{Model, ModelContract, Provider};
use crate::progress::Progress;
use crate::tiling::cloud_blend;
use crate::tiling::grid::{mirror, panels, tile_and_overlap, AxisGrid, Panel};
use crate::tiling::weights::{axis_weights, Accumulator};

use crate::pipeline::cache::ModelCache;
use crate::pipeline::outputs::{create_mask, create_output, place_result};
use crate::pipeline::provenance::provenance_tags;
use crate::pipeline::strip::{missing_bands, StripSource};
use crate::pipeline::summary::{CloudCover, RemoveSummary};

/// Stage 1 (Pixel-CR) of an open input into `cfg.output`.
pub(crate) fn pixel_cr(
    cfg: &RemoveConfig,
    input: &InputRaster,
    cache: &mut ModelCache,
    progress_total: &mut dyn FnMut(u64) -> Box<dyn Progress>,
    started: Instant,
) -> Result<RemoveSummary> {
    let model = cache.get(cfg, input)?;
    let c = &model.contract;
    // `run_checked` checked the input against the model (`fit::check_fit`).

    let (ygrid, xgrid, panel_px) = tile_grids(cfg, model, input)?;

    let prov = Provenance {
        input,
        tags: provenance_tags(cfg, model, input, None),
    };
    let mut out = create_output(cfg, &prov)?;
    let mut mask_out = create_mask(cfg, &prov)?;

    let pool = worker_pool(model.workers())?;
    let panels = panels(&xgrid, panel_px);
    let total_tiles = (ygrid.len() * panels.iter().map(|p| p.tiles.len()).sum::<usize>()) as u64;
    let norm = input.normaliser(model.contract.graph_scale)?;
    // What nodata pixels hold for the model: each band's scene mean (a band
    // with no valid pixel has no tile to run).
    let stats = input.band_stats()?;
    // (A band without any valid pixel, a zero-padded B10, gets 0.)
    let fill: Vec<f32> = stats
        .iter()
        .enumerate()
        .map(|(b, s)| s.map_or(0.0, |s| norm.to_model(b, s.mean as f32)))
        .collect();
    // Band values far outside a band's valid values (more than their span
    // beyond them: -9999 under 0..255) are holes to the diffusion stage;
    // a real 0 of dark water next to values from 1 is not.
    let far: Vec<Option<(f64, f64)>> = stats
        .iter()
        .map(|s| {
            s.map(|s| {
                (
                    s.min - (s.max - s.min).max(1.0),
                    s.max + (s.max - s.min).max(1.0),
                )
            })
        })
        .collect();
    let mut run = Run {
        input,
        model,
        ygrid: &ygrid,
        xgrid: &xgrid,
        pool: &pool,
        out: &mut out,
        mask_out: mask_out.as_mut(),
        progress: progress_total(total_tiles),
        total_tiles,
        counts: Counts::default(),
        norm,
        fill,
        far,
        blend: cfg.blends(c),
        whole_pixels: cfg.opts.refine.is_some(),
        scene_p: cfg.job.probability.as_ref(),
    };
    for panel in &panels {
        run.panel(panel)?;
    }
    crate::interrupt::check()?;
    let (counts, mut progress) = (run.counts, run.progress);
    if counts.valid_pixels == 0 {
        return Err(Error::input(
            &cfg.job.input,
            "every pixel is nodata; nothing to do",
        ));
    }
    let out_ready = out.prepare()?;
    place_result(out_ready, mask_out.map(|m| m.prepare()).transpose()?)?;
    progress.finish(total_tiles);
    Ok(summary(cfg, input, model, &counts, started))
}

/// The row and column tile grids (the model's margin and window, the
/// user's tile size and overlap) and the width of the column panels.
fn tile_grids(
    cfg: &RemoveConfig,
    model: &Model,
    input: &InputRaster,
) -> Result<(AxisGrid, AxisGrid, usize)> {
    let c = &model.contract;
    let (margin, window) = (c.margin_px(), c.window_px);
    let (tile_px, overlap) = tile_and_overlap(cfg.opts.tile_px, cfg.opts.overlap_px, margin, window)
        .map_err(|need| {
            Error::model(
                &model.path,
                format!(
                    "its window ({window} px) and halo ({} px) need tiles of {need} px, more than idfcr runs ({} px)",
                    c.halo_px,
                    crate::config::MAX_TILE_PX
                ),
            )
        })?;
    // Panels share their border tiles: a few tiles per panel at least. A
    // panel the user chose was checked against the requested tile
    // (`RemoveOptions::validate`); the model may have grown it (0.8: 480 ->
    // 512), and a panel narrower than a tile runs every tile twice.
    let panel_px = match cfg.opts.panel_px {
        None => 4096.max(tile_px.saturating_mul(4)),
        Some(p) if p < tile_px => {
            // What grew it: the user's overlap (tiles hold twice theirs) or
            // the model's halo.
            let why = match cfg.opts.overlap_px {
                Some(o) if 2 * o >= tile_px => format!("--overlap {o}"),
                _ => model.contract.name.clone(),
            };
            return Err(Error::Usage(format!(
                "--panel {p} px: at least one tile wide ({why} grows --tile {} to {tile_px} px)",
                cfg.opts.tile_px
            )));
        }
        Some(p) => p,
    };
    let rows = tile_px.min(input.height);
    crate::io::memory::ensure_strip_fits(
        &cfg.job.input,
        (panel_px, tile_px, rows),
        input.width,
        input.bands(),
    )?;
    let ygrid = AxisGrid::new(input.height, tile_px, overlap, margin, window)?;
    let xgrid = AxisGrid::new(input.width, tile_px, overlap, margin, window)?;
    Ok((ygrid, xgrid, panel_px))
}

/// What the run did, for the CLI's report and `--json`.
fn summary(
    cfg: &RemoveConfig,
    input: &InputRaster,
    model: &Model,
    counts: &Counts,
    started: Instant,
) -> RemoveSummary {
    let c = &model.contract;
    RemoveSummary {
        input: cfg.job.input.clone(),
        output: cfg.job.output.clone(),
        mask: cfg.job.mask.clone(),
        model: format!("{} {}", c.name, c.version),
        model_sha256: model.sha256.clone(),
        device_note: crate::models::pixel_cr::device_note(),
        blended: cfg.blends(c),
        rescale: input.rescale,
        provider: match model.provider {
            Provider::Cpu => "cpu".into(),
            Provider::Cuda => "cuda".into(),
        },
        width: input.width,
        height: input.height,
        bands: input.bands(),
        tiles_run: counts.tiles_run,
        tiles_skipped: counts.tiles_skipped,
        tiles_clear: counts.tiles_clear,
        seconds: started.elapsed().as_secs_f64(),
        inference_seconds: counts.inference_s,
        cloud_probability: probability_source(cfg, c),
        cloud_cover: counts.cover.fractions().map(|f| f.0),
        mean_probability: counts.cover.fractions().map(|f| f.1),
        refine: None,
    }
}

/// The summary's words for where p came from (see `RemoveSummary`).
fn probability_source(cfg: &RemoveConfig, c: &ModelContract) -> Option<String> {
    match (&cfg.job.probability, &c.attention_output) {
        (Some(p), _) => Some(p.map.source.clone()),
        (None, Some(_)) if c.calibrated_probability => {
            Some("the model's own calibrated cloud probability".into())
        }
        (None, Some(_)) => {
            Some("the model's cloudy attention (not calibrated: not blended by)".into())
        }
        (None, None) => None,
    }
}

/// Open and adapt the input (Sentinel-2 band names and offsets); a whole
/// Sentinel-2 product is refused with a pointer to `idfcr s2`.
pub(crate) fn open_input(cfg: &RemoveConfig) -> Result<InputRaster> {
    if crate::sentinel2::product::parse_subdataset(&cfg.job.input).is_none()
        && crate::sentinel2::input::find_product_metadata(&cfg.job.input)?.is_some()
    {
        return Err(Error::input(
            &cfg.job.input,
            "is a whole Sentinel-2 product: run `idfcr s2` on it for every band group, or pass one SENTINEL2_...:10m:... subdataset (see gdalinfo)",
        ));
    }
    let mut input = InputRaster::open(&cfg.job.input, cfg.opts.band_idx.as_deref())?;
    let s2 = crate::sentinel2::input::adapt(&mut input, &cfg.opts.s2)?;
    // An option that changes nothing is a mistake to point out, not to
    // pass over: the user believes the offset question settled.
    if s2.is_none() && cfg.opts.s2.harmonized {
        return Err(Error::Usage(format!(
            "--s2-harmonized: {} is not read as Sentinel-2 (a SENTINEL2_ subdataset, or a band stack with --s2-bands), so no offset applies to drop",
            cfg.job.input
        )));
    }
    Ok(input)
}

/// The rayon pool the session workers run on (one thread per session).
pub(crate) fn worker_pool(workers: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|e| Error::System(format!("cannot start {workers} worker threads: {e}")))
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tiles_run: usize,
    tiles_skipped: usize,
    tiles_clear: usize,
    done: u64,
    valid_pixels: u64,
    inference_s: f64,
    /// Over the valid pixels, when the run has a probability.
    cover: CloudCover,
}

/// What became of one tile.
enum TileResult {
    /// Every pixel it reads is nodata.
    Nodata,
    /// The detector's p is 0 over it: the output there is the input.
    Clear,
    /// Run: (tile column, output, seconds in ONNX Runtime).
    Ran(usize, crate::models::pixel_cr::TileOutput, f64),
}

/// Everything one run needs while it walks the panels and strips.
struct Run<'a> {
    input: &'a InputRaster,
    model: &'a Model,
    ygrid: &'a AxisGrid,
    xgrid: &'a AxisGrid,
    pool: &'a rayon::ThreadPool,
    out: &'a mut OutputRaster,
    mask_out: Option<&'a mut OutputRaster>,
    progress: Box<dyn Progress>,
    total_tiles: u64,
    counts: Counts,
    /// Raster values <-> model values.
    norm: crate::models::contract::Normaliser,
    /// Per band, model units: what a nodata pixel holds for the model.
    fill: Vec<f32>,
    /// A later stage reads whole pixels (`--refine`): a band without data
    /// where the others have it is refused.
    whole_pixels: bool,
    /// Per band: values outside these bounds are far from the band's
    /// valid values (see `pixel_cr`).
    far: Vec<Option<(f64, f64)>>,
    /// Blend the model's output with the input by its cloud probability.
    blend: bool,
    /// A detector's probability, used instead of the model's.
    scene_p: Option<&'a crate::config::SceneProbability>,
}

impl Run<'_> {
    /// One column panel: every strip of its tiles, top to bottom.
    fn panel(&mut self, panel: &Panel) -> Result<()> {
        let (c, width) = (&self.model.contract, self.input.width);
        let (th, tw) = (self.ygrid.tile_px, self.xgrid.tile_px);
        let has_att = c.attention_output.is_some();
        // Panel-local columns: x' = x - x0, over the panel's tiles.
        let x0 = self.xgrid.starts[panel.tiles.start];
        let span = (self.xgrid.starts[panel.tiles.end - 1] - x0) as usize + tw;
        // Source columns the panel needs (mirrored at the scene edges).
        let src_cols: Vec<usize> = (0..span).map(|x| mirror(x0 + x as isize, width)).collect();
        let c_lo = *src_cols.iter().min().expect("panel has columns");
        let c_hi = *src_cols.iter().max().expect("panel has columns") + 1;
        // Clear bands, plus the attention map as one more channel when the
        // model has one (they share the blend weights).
        let mut acc = Accumulator::new(c.bands + has_att as usize, th, span);
        // Column blend weights of the panel's tiles (per panel, so memory
        // follows the panel, not the scene's width).
        let wx: Vec<Vec<f32>> = panel
            .tiles
            .clone()
            .map(|k| axis_weights(self.xgrid, k))
            .collect();
        // A copy: the strips borrow it while `self` runs their tiles.
        let fill = self.fill.clone();
        for ky in 0..self.ygrid.len() {
            crate::interrupt::check()?;
            let s = self.ygrid.starts[ky];
            let src_rows: Vec<usize> = (0..th)
                .map(|r| mirror(s + r as isize, self.input.height))
                .collect();
            let r_lo = *src_rows.iter().min().expect("tile has rows");
            let r_hi = *src_rows.iter().max().expect("tile has rows") + 1;
            let window = self
                .input
                .read_window_exact(r_lo, r_hi - r_lo, c_lo, c_hi - c_lo)?;
            let block = window.values;
            let valid = self.input.valid_mask(
                &block,
                window.exact.as_deref(),
                (r_hi - r_lo) * (c_hi - c_lo),
            );
            let missing = missing_bands(self.input, &block, window.exact.as_deref(), &valid);
            if self.whole_pixels {
                // A band at its nodata near the band's valid values (a real
                // 0 of dark water in an 8-bit band) is data to the diffusion
                // stage; one far from them (-9999) is a hole. Judged on the
                // stored values, whatever --rescale or --stretch does.
                let n = valid.len();
                let hole = missing.as_deref().and_then(|m| {
                    m.iter().enumerate().position(|(i, &h)| {
                        let v = block[i] as f64;
                        h && self.far[i / n].is_none_or(|(lo, hi)| v < lo || v > hi)
                    })
                });
                if let Some(i) = hole {
                    return Err(crate::pipeline::strip::band_hole(
                        self.input,
                        i,
                        n,
                        (r_lo, c_lo),
                        c_hi - c_lo,
                    ));
                }
            }
            let strip = StripSource {
                block: &block,
                exact: window.exact.as_deref(),
                valid: &valid,
                rows: &src_rows,
                r_lo,
                c_lo,
                width: c_hi - c_lo,
                scene_width: width,
                bands: c.bands,
                missing: missing.as_deref(),
                fill: &fill,
            };
            self.run_tiles(panel, &strip, ky, (x0, &wx), &mut acc)?;
            // Rows no later strip touches, in the columns this panel
            // determines: convert back and write.
            let (lo, hi) = self.ygrid.finished_after(ky);
            if hi > lo && panel.cols.1 > panel.cols.0 {
                self.write(&acc, &strip, (lo, hi), panel.cols, s, x0)?;
            }
            if let Some(&next) = self.ygrid.starts.get(ky + 1) {
                acc.shift_rows((next - s) as usize);
            }
        }
        Ok(())
    }

    /// Run the strip's tiles of this panel a few at a time (so memory holds
    /// a few tile inputs per worker), each worker building its own tile
    /// input, and blend the results into `acc`.
    fn run_tiles(
        &mut self,
        panel: &Panel,
        strip: &StripSource,
        ky: usize,
        (x0, wx): (isize, &[Vec<f32>]),
        acc: &mut Accumulator,
    ) -> Result<()> {
        let (model, xgrid, pool) = (self.model, self.xgrid, self.pool);
        let norm = &self.norm;
        let tw = xgrid.tile_px;
        let wy = axis_weights(self.ygrid, ky);
        // With a detector's p, a tile over which p is 0 everywhere it reads
        // need not run: every pixel it would feed comes back as the input,
        // and a pixel with p > 0 still gets all of its tiles (exact).
        let skip_clear = if self.blend { self.scene_p } else { None };
        let kxs: Vec<usize> = panel.tiles.clone().collect();
        for batch in kxs.chunks(model.workers() * 2) {
            let results: Vec<Result<TileResult>> = pool.install(|| {
                batch
                    .par_iter()
                    .map(|&kx| {
                        crate::interrupt::check()?;
                        if let Some(sp) = skip_clear {
                            let (rows, cols) = strip.extent(xgrid.starts[kx], tw);
                            if sp.zero_over(rows, cols) {
                                return Ok(TileResult::Clear);
                            }
                        }
                        let Some(tile) =
                            strip.tile(xgrid.starts[kx], tw, |b, v| norm.to_model(b, v))
                        else {
                            return Ok(TileResult::Nodata);
                        };
                        let t0 = Instant::now();
                        let worker = rayon::current_thread_index().unwrap_or(0);
                        let out = model.run(worker, tile)?;
                        Ok(TileResult::Ran(kx, out, t0.elapsed().as_secs_f64()))
                    })
                    .collect()
            });
            for r in results {
                self.counts.done += 1;
                let (kx, tile_out, secs) = match r? {
                    TileResult::Ran(kx, out, secs) => (kx, out, secs),
                    TileResult::Nodata => {
                        self.counts.tiles_skipped += 1;
                        continue;
                    }
                    TileResult::Clear => {
                        self.counts.tiles_clear += 1;
                        continue;
                    }
                };
                self.counts.inference_s += secs;
                // The probability is blended across tiles like a band.
                let channels = match tile_out.attention {
                    Some(a) => ndarray::concatenate(
                        Axis(0),
                        &[tile_out.clear.view(), a.insert_axis(Axis(0)).view()],
                    )
                    .map_err(|e| Error::model(&model.path, format!("output shapes: {e}")))?,
                    None => tile_out.clear,
                };
                acc.add(
                    channels.view(),
                    (0, xgrid.starts[kx] - x0),
                    &wy,
                    &wx[kx - panel.tiles.start],
                );
                self.counts.tiles_run += 1;
            }
            self.progress.update(self.counts.done, self.total_tiles);
        }
        Ok(())
    }

    /// Write scene rows `rows` and columns `cols` from the accumulator
    /// (whose row 0 is scene row `s` and column 0 scene column `x0`).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        acc: &Accumulator,
        strip: &StripSource,
        rows: (usize, usize),
        cols: (usize, usize),
        s: isize,
        x0: isize,
    ) -> Result<()> {
        let c = &self.model.contract;
        let bands = c.bands;
        let has_att = c.attention_output.is_some();
        let (nr, nc) = (rows.1 - rows.0, cols.1 - cols.0);
        let n = nr * nc;
        let mut values = vec![0f64; bands * n];
        let mut ok = vec![false; n];
        // Pixels that come back as the input had them (p = 0 in the blend).
        let mut kept = vec![false; n];
        // Per band: values written as the input stored them (`kept`), and
        // bands with data (a band missing at a valid pixel stays nodata).
        let mut kept_band = vec![false; bands * n];
        let mut ok_band = vec![false; bands * n];
        let mut prob = vec![0f32; n];
        let nblk = strip.block.len() / strip.bands;
        // Whether band `b` holds data at block pixel `at` (a Sentinel-2
        // band can be missing where the others are not).
        let has_data = |b: usize, at: usize| !strip.missing.is_some_and(|m| m[b * nblk + at]);
        for r in 0..nr {
            let ar = ((rows.0 + r) as isize - s) as usize; // accumulator row
            let vr = rows.0 + r - strip.r_lo; // block row
            for col in 0..nc {
                let x = cols.0 + col; // scene column
                let ac = (x as isize - x0) as usize; // accumulator column
                let p = r * nc + col;
                let valid = strip.valid[vr * strip.width + x - strip.c_lo];
                let at = vr * strip.width + x - strip.c_lo; // block pixel

                // The scene's p, where it has one: NaN where the detector
                // could not see (a band of its own without data there), and
                // the model's own p stands in.
                let scene = self
                    .scene_p
                    .map(|sp| sp.at(rows.0 + r, x))
                    .filter(|v| !v.is_nan());
                if let Some(v) = scene {
                    prob[p] = v;
                    // No tile need have run here (see run_tiles).
                    if valid && self.blend && prob[p] == 0.0 {
                        ok[p] = true;
                        kept[p] = true;
                        self.counts.valid_pixels += 1;
                        self.counts.cover.add(0.0);
                        for b in 0..bands {
                            values[b * n + p] = strip.stored(b, at);
                            kept_band[b * n + p] = true;
                            ok_band[b * n + p] = has_data(b, at);
                        }
                        continue;
                    }
                }
                if !valid || acc.weight[[ar, ac]] == 0.0 {
                    continue;
                }
                ok[p] = true;
                self.counts.valid_pixels += 1;
                if scene.is_some() {
                    // prob[p] set above
                } else if has_att {
                    let v = acc.value(bands, ar, ac).unwrap_or(0.0);
                    prob[p] = cloud_blend::usable_probability(v);
                }
                if scene.is_some() || has_att {
                    self.counts.cover.add(prob[p]);
                }
                kept[p] = self.blend && cloud_blend::keeps_input(prob[p]);
                for b in 0..bands {
                    let model = self.norm.from_model(b, acc.value(b, ar, ac).unwrap_or(0.0));
                    ok_band[b * n + p] = has_data(b, at);
                    // A band without data keeps its stored value: the
                    // output's nodata, or, where the output declares none
                    // (bands whose nodata values differ), what it held.
                    let keep = kept[p] || !has_data(b, at);
                    kept_band[b * n + p] = keep;
                    values[b * n + p] = if keep {
                        strip.stored(b, at)
                    } else if self.blend {
                        cloud_blend::mix(strip.block[b * nblk + at], model, prob[p]) as f64
                    } else {
                        model as f64
                    };
                }
            }
        }
        self.out
            .write_window_kept(rows.0, nr, cols.0, nc, &values, &ok_band, &kept_band)?;
        if let Some(m) = self.mask_out.as_deref_mut() {
            // p is nodata wherever the output is: a pixel the output masks
            // whole for a hole in one band has no p a user could read.
            let nodata = &self.out.nodata;
            for (p, ok) in ok.iter_mut().enumerate() {
                *ok = *ok && shows_pixel(nodata, (0..bands).map(|b| ok_band[b * n + p]));
            }
            m.write_window(rows.0, nr, cols.0, nc, &prob, &ok)?;
        }
        Ok(())
    }
}
