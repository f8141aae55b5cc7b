//! IND sampling over a whole latent: seeded noise, a respaced DDPM (or DDIM)
//! chain, and the noise prediction of each step assembled from latent tiles.
//!
//! Large scenes (DiffBIR-v2 style, as METHOD.md decides): the condition is
//! encoded once; at every step the denoiser predicts epsilon tile by tile,
//! the tiles are blended, and one global sampler step is taken with noise
//! drawn for the whole latent. Tiles use the exact tiling of `tiling::grid` and
//! `tiling::weights` (global grid, mirrored edges, zero weight within the denoiser's
//! halo): with a denoiser whose receptive field fits in the halo, the tiled
//! prediction equals the whole-latent one, so there are no seams.
//!
//! Determinism: the noise comes from one seeded generator drawn in a fixed
//! order for the whole latent, and tile results are blended in a fixed
//! order, so a seed gives the same result whatever the thread count.
//! This module is pure apart from the denoiser callback (ONNX Runtime in
//! practice, a closure in the tests).

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

use crate::config::Method;
use crate::diffusion::schedule::{Respaced, Schedule};
use crate::error::Result;
use crate::tiling::grid::{mirror, AxisGrid};
use crate::tiling::weights::{axis_weights, Accumulator};

/// Standard normal draws from a seed: SplitMix64 bits, Box-Muller pairs.
/// Small, portable and stable across platforms and versions.
#[derive(Debug, Clone)]
pub struct NormalRng {
    state: u64,
    spare: Option<f64>,
}

impl NormalRng {
    pub fn new(seed: u64) -> Self {
        NormalRng {
            state: seed ^ 0x5DEE_CE66_D1CE_4E5B,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1), never 0 (Box-Muller takes its log).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * a.sin());
        r * a.cos()
    }

    pub fn fill(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal() as f32).collect()
    }
}

/// A latent image: (channels, height, width).
pub type Latent = Array3<f32>;

/// How the latent is cut into tiles for the denoiser (latent pixels).
#[derive(Debug, Clone, Copy)]
pub struct LatentTiles {
    pub tile: usize,
    pub overlap: usize,
    /// Where a tile border disturbs the denoiser's output (its halo), on
    /// the window grid.
    pub margin: usize,
    pub window: usize,
}

/// The denoiser: (z_t tile, condition tile, timestep) -> predicted noise
/// for the tile (the shape of z_t).
pub type DenoiseFn<'a> =
    dyn Fn(ArrayView3<f32>, ArrayView3<f32>, usize) -> Result<Array3<f32>> + Sync + 'a;

/// The tile of `x` starting at (y0, x0), th x tw, mirrored past the edges.
fn cut(x: &Latent, (y0, x0): (isize, isize), (th, tw): (usize, usize)) -> Latent {
    let (ch, h, w) = x.dim();
    let rows: Vec<usize> = (0..th).map(|i| mirror(y0 + i as isize, h)).collect();
    let cols: Vec<usize> = (0..tw).map(|i| mirror(x0 + i as isize, w)).collect();
    Array3::from_shape_fn((ch, th, tw), |(c, ty, tx)| x[[c, rows[ty], cols[tx]]])
}

/// Predicted noise for the whole latent, from tiles run in parallel and
/// blended in a fixed order.
pub fn tiled_eps(
    z: &Latent,
    cond: &Latent,
    t: usize,
    tiles: &LatentTiles,
    denoise: &DenoiseFn,
) -> Result<Latent> {
    let (ch, h, w) = z.dim();
    let grid = |n| AxisGrid::new(n, tiles.tile, tiles.overlap, tiles.margin, tiles.window);
    let (ygrid, xgrid) = (grid(h)?, grid(w)?);
    let (th, tw) = (ygrid.tile_px, xgrid.tile_px);
    let jobs: Vec<(usize, usize)> = (0..ygrid.len())
        .flat_map(|ky| (0..xgrid.len()).map(move |kx| (ky, kx)))
        .collect();
    let outs: Vec<Result<Latent>> = jobs
        .par_iter()
        .map(|&(ky, kx)| {
            let at = (ygrid.starts[ky], xgrid.starts[kx]);
            let eps = denoise(
                cut(z, at, (th, tw)).view(),
                cut(cond, at, (th, tw)).view(),
                t,
            )?;
            if eps.dim() != (ch, th, tw) {
                return Err(crate::error::Error::System(format!(
                    "the denoiser returned a {:?} tile for a {:?} one",
                    eps.dim(),
                    (ch, th, tw)
                )));
            }
            Ok(eps)
        })
        .collect();
    let mut acc = Accumulator::new(ch, h, w);
    let wx: Vec<Vec<f32>> = (0..xgrid.len()).map(|k| axis_weights(&xgrid, k)).collect();
    for (&(ky, kx), out) in jobs.iter().zip(outs) {
        let wy = axis_weights(&ygrid, ky);
        acc.add(
            out?.view(),
            (ygrid.starts[ky], xgrid.starts[kx]),
            &wy,
            &wx[kx],
        );
    }
    Ok(Array3::from_shape_fn((ch, h, w), |(c, y, x)| {
        acc.value(c, y, x).unwrap_or(0.0)
    }))
}

/// What to sample with: the number of respaced steps, the method and the seed.
#[derive(Debug, Clone, Copy)]
pub struct Chain {
    pub steps: usize,
    pub method: Method,
    pub seed: u64,
}

/// Sample a clean latent with `channels` channels for `cond`: x_T from the
/// seed, then the respaced steps. `progress(done, total)` after each step.
pub fn sample(
    cond: &Latent,
    channels: usize,
    Chain {
        steps,
        method,
        seed,
    }: Chain,
    tiles: &LatentTiles,
    denoise: &DenoiseFn,
    mut progress: impl FnMut(usize, usize),
) -> Result<Latent> {
    let chain = Respaced::new(&Schedule::idf_cr(), steps.max(1));
    let mut rng = NormalRng::new(seed);
    let (_, h, w) = cond.dim();
    let n = channels * h * w;
    // Row-major draws, whatever the thread count: same seed, same latent.
    let mut z = Array3::from_shape_vec((channels, h, w), rng.fill(n))
        .map_err(|e| crate::error::Error::System(format!("latent shape: {e}")))?;
    let total = chain.timesteps.len();
    for i in (0..total).rev() {
        crate::interrupt::check()?;
        let eps = tiled_eps(&z, cond, chain.timesteps[i], tiles, denoise)?;
        match method {
            Method::Ddpm => {
                let noise = if i > 0 { rng.fill(n) } else { vec![0.0; n] };
                for ((x, &e), &nz) in z.iter_mut().zip(&eps).zip(&noise) {
                    *x = chain.ddpm_step(i, *x, e, nz);
                }
            }
            Method::Ddim => {
                for (x, &e) in z.iter_mut().zip(&eps) {
                    *x = chain.ddim_step(i, *x, e);
                }
            }
        }
        progress(total - i, total);
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_are_standard_and_reproducible() {
        let a = NormalRng::new(231).fill(200_000);
        let b = NormalRng::new(231).fill(200_000);
        assert_eq!(a, b);
        assert_ne!(a[..10], NormalRng::new(232).fill(10)[..]);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.01, "{var}");
        let tail = a.iter().filter(|x| x.abs() > 3.0).count() as f64 / a.len() as f64;
        assert!((tail - 0.0027).abs() < 0.0008, "{tail}");
    }

    /// A local "denoiser": a 3x3 box filter of z plus the condition, scaled
    /// by the timestep; its receptive field is 1 px.
    fn box_denoiser(z: ArrayView3<f32>, c: ArrayView3<f32>, t: usize) -> Result<Latent> {
        let (ch, h, w) = z.dim();
        Ok(Array3::from_shape_fn((ch, h, w), |(k, y, x)| {
            let mut s = 0.0;
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let yy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
                    let xx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
                    s += z[[k, yy, xx]];
                }
            }
            s / 9.0 * 0.5 + 0.3 * c[[k % c.dim().0, y, x]] + t as f32 * 1e-4
        }))
    }

    fn test_latent(c: usize, h: usize, w: usize) -> Latent {
        Array3::from_shape_fn((c, h, w), |(k, y, x)| {
            let i = (k * h + y) * w + x;
            ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.8
        })
    }

    #[test]
    fn tiled_prediction_equals_the_whole_latent_one() {
        let z = test_latent(4, 40, 56);
        let cond = test_latent(4, 40, 56);
        let whole = box_denoiser(z.view(), cond.view(), 500).unwrap();
        // Window 1, margin 2 >= the 1 px receptive field; several tile layouts.
        for (tile, overlap) in [(16, 8), (24, 8), (12, 6), (64, 8)] {
            let tiles = LatentTiles {
                tile,
                overlap,
                margin: 2,
                window: 1,
            };
            let got = tiled_eps(&z, &cond, 500, &tiles, &box_denoiser).unwrap();
            let max = got
                .iter()
                .zip(&whole)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(max < 1e-5, "tile {tile} overlap {overlap}: max diff {max}");
        }
    }

    #[test]
    fn sampling_is_deterministic_per_seed_whatever_the_threads() {
        let cond = test_latent(4, 24, 32);
        let tiles = LatentTiles {
            tile: 16,
            overlap: 8,
            margin: 2,
            window: 1,
        };
        let run = |threads: usize, seed: u64, method: Method| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                sample(
                    &cond,
                    4,
                    Chain {
                        steps: 10,
                        method,
                        seed,
                    },
                    &tiles,
                    &box_denoiser,
                    |_, _| {},
                )
            })
            .unwrap()
        };
        for method in [Method::Ddpm, Method::Ddim] {
            let a = run(1, 231, method);
            assert_eq!(a, run(3, 231, method), "{method:?}");
            assert!(a.iter().all(|v| v.is_finite()));
            assert_ne!(a, run(1, 7, method), "{method:?}: the seed matters");
        }
    }

    #[test]
    fn tiled_sampling_matches_untiled_sampling() {
        let cond = test_latent(4, 24, 40);
        let untiled = LatentTiles {
            tile: 64,
            overlap: 8,
            margin: 2,
            window: 1,
        };
        let tiled = LatentTiles {
            tile: 16,
            overlap: 8,
            margin: 2,
            window: 1,
        };
        for method in [Method::Ddpm, Method::Ddim] {
            let a = sample(
                &cond,
                4,
                Chain {
                    steps: 8,
                    method,
                    seed: 5,
                },
                &untiled,
                &box_denoiser,
                |_, _| {},
            )
            .unwrap();
            let b = sample(
                &cond,
                4,
                Chain {
                    steps: 8,
                    method,
                    seed: 5,
                },
                &tiled,
                &box_denoiser,
                |_, _| {},
            )
            .unwrap();
            let max = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(max < 1e-4, "{method:?}: {max}");
        }
    }

    #[test]
    fn a_perfect_denoiser_recovers_the_clean_latent() {
        // If the data is a constant x0, the ideal epsilon at step t is
        // (x_t - sqrt(ac) x0) / sqrt(1 - ac); DDIM then lands on x0.
        let x0 = 0.7f32;
        let chain = Respaced::new(&Schedule::idf_cr(), 20);
        let ideal = |z: ArrayView3<f32>, _c: ArrayView3<f32>, t: usize| -> Result<Latent> {
            let i = chain.timesteps.iter().position(|&x| x == t).unwrap();
            let ac = chain.alphas_cumprod[i];
            Ok(z.mapv(|v| ((v as f64 - ac.sqrt() * x0 as f64) / (1.0 - ac).sqrt()) as f32))
        };
        let cond = Latent::zeros((1, 8, 8));
        let tiles = LatentTiles {
            tile: 8,
            overlap: 4,
            margin: 0,
            window: 1,
        };
        let out = sample(
            &cond,
            1,
            Chain {
                steps: 20,
                method: Method::Ddim,
                seed: 1,
            },
            &tiles,
            &ideal,
            |_, _| {},
        )
        .unwrap();
        assert!(out.iter().all(|v| (v - x0).abs() < 1e-3), "{out:?}");
    }
}
