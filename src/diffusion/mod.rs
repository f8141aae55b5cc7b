//! Stage 2 of IDF-CR (IND, `--refine`): latent diffusion over the stage-1
//! result.
//!
//! - `refine`: the stage-1 working file in -> the refined image (encode,
//!   sample, decode, colour fix), tiled without seams;
//! - `sampler`: condition latent + seed -> sampled latent (DDPM/DDIM loops,
//!   the denoiser run per latent tile and blended);
//! - `schedule`: the noise schedule (pure, tested against the training code);
//! - `colorfix`: pulls the decoded image's local colour back to stage 1's;
//! - `tiles`: the window arithmetic (mirrored reads, latent tiles, cores).

pub mod colorfix;
pub mod refine;
pub mod sampler;
pub mod schedule;
pub mod tiles;
