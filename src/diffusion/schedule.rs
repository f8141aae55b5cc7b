//! Diffusion noise schedules and sampler steps for the IND stage (pure).
//!
//! As in METHOD.md and DiffBIR: T = 1000 training steps with beta linear in
//! sqrt(beta) from 0.00085 to 0.012 and epsilon prediction; sampling on a
//! respaced subset of timesteps, t_k = round(k * (T - 1) / (S - 1)), whose
//! betas are recomputed from the cumulative alphas so that the respaced
//! chain has the same marginals. DDPM uses the "fixed small" posterior
//! variance; DDIM (eta = 0) is the deterministic, faster option.

/// Training schedule: beta_t and the cumulative product of (1 - beta).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
}

impl Schedule {
    /// Beta linear in sqrt from `start` to `end` over `t` steps.
    pub fn scaled_linear(t: usize, start: f64, end: f64) -> Self {
        let betas: Vec<f64> = (0..t)
            .map(|i| {
                let f = if t > 1 {
                    i as f64 / (t - 1) as f64
                } else {
                    0.0
                };
                let s = start.sqrt() + f * (end.sqrt() - start.sqrt());
                s * s
            })
            .collect();
        let mut acc = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        Schedule {
            betas,
            alphas_cumprod,
        }
    }

    /// The schedule the IND models are trained with.
    pub fn idf_cr() -> Self {
        Self::scaled_linear(1000, 0.00085, 0.012)
    }
}

/// A respaced sampling chain over `timesteps` (ascending).
#[derive(Debug, Clone)]
pub struct Respaced {
    pub timesteps: Vec<usize>,
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    /// alphas_cumprod of the previous (less noisy) respaced step; 1 before the first.
    pub alphas_cumprod_prev: Vec<f64>,
    /// DDPM "fixed small" posterior variance.
    pub posterior_variance: Vec<f64>,
}

/// t_k = round(k * (T - 1) / (S - 1)) for k = 0..S.
pub fn respaced_timesteps(t: usize, steps: usize) -> Vec<usize> {
    match steps {
        0 => vec![],
        1 => vec![t - 1],
        s => (0..s)
            .map(|k| ((k * (t - 1)) as f64 / (s - 1) as f64).round() as usize)
            .collect(),
    }
}

impl Respaced {
    pub fn new(schedule: &Schedule, steps: usize) -> Self {
        let timesteps = respaced_timesteps(schedule.betas.len(), steps);
        let mut last = 1.0;
        let mut betas = Vec::with_capacity(steps);
        let mut alphas_cumprod = Vec::with_capacity(steps);
        let mut prev = Vec::with_capacity(steps);
        for &t in &timesteps {
            let ac = schedule.alphas_cumprod[t];
            betas.push(1.0 - ac / last);
            alphas_cumprod.push(ac);
            prev.push(last);
            last = ac;
        }
        let posterior_variance = (0..timesteps.len())
            .map(|i| betas[i] * (1.0 - prev[i]) / (1.0 - alphas_cumprod[i]))
            .collect();
        Respaced {
            timesteps,
            betas,
            alphas_cumprod,
            alphas_cumprod_prev: prev,
            posterior_variance,
        }
    }

    /// The clean sample implied by `x_t` and predicted noise at step `i`.
    pub fn predict_x0(&self, i: usize, x_t: f32, eps: f32) -> f32 {
        let ac = self.alphas_cumprod[i];
        ((x_t as f64 - (1.0 - ac).sqrt() * eps as f64) / ac.sqrt()) as f32
    }

    /// One DDPM step from respaced step `i` to `i - 1` for one value;
    /// `noise` is a standard normal draw (ignored at i = 0).
    pub fn ddpm_step(&self, i: usize, x_t: f32, eps: f32, noise: f32) -> f32 {
        let (b, ac, ac_prev) = (
            self.betas[i],
            self.alphas_cumprod[i],
            self.alphas_cumprod_prev[i],
        );
        let x0 = self.predict_x0(i, x_t, eps) as f64;
        let c0 = b * ac_prev.sqrt() / (1.0 - ac);
        let ct = (1.0 - ac_prev) * (1.0 - b).sqrt() / (1.0 - ac);
        let mean = c0 * x0 + ct * x_t as f64;
        if i == 0 {
            mean as f32
        } else {
            (mean + self.posterior_variance[i].sqrt() * noise as f64) as f32
        }
    }

    /// One deterministic DDIM step (eta = 0) from step `i` to `i - 1`.
    pub fn ddim_step(&self, i: usize, x_t: f32, eps: f32) -> f32 {
        let ac_prev = self.alphas_cumprod_prev[i];
        let x0 = self.predict_x0(i, x_t, eps) as f64;
        (ac_prev.sqrt() * x0 + (1.0 - ac_prev).sqrt() * eps as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    /// Reference values from numpy (float64) with the same definitions.
    #[test]
    fn schedule_matches_numpy() {
        let s = Schedule::idf_cr();
        let cases = [
            (s.betas[0], 0.00085),
            (s.betas[999], 0.012),
            (s.alphas_cumprod[0], 0.99915),
            (s.alphas_cumprod[499], 0.27766965045646763),
            (s.alphas_cumprod[999], 0.004660098513077238),
        ];
        for (got, want) in cases {
            assert!(close(got, want), "{got} vs {want}");
        }
    }

    #[test]
    fn respacing_matches_numpy() {
        assert_eq!(&respaced_timesteps(1000, 50)[..5], &[0, 20, 41, 61, 82]);
        assert_eq!(&respaced_timesteps(1000, 50)[47..], &[958, 979, 999]);
        assert_eq!(respaced_timesteps(1000, 1), vec![999]);
        assert_eq!(
            respaced_timesteps(1000, 1000),
            (0..1000).collect::<Vec<_>>()
        );
        let r = Respaced::new(&Schedule::idf_cr(), 50);
        let cases = [
            (r.betas[1], 0.01785081098878849),
            (r.betas[49], 0.21185862104638054),
            (r.posterior_variance[1], 0.0008120241601235992),
            (r.posterior_variance[49], 0.21159198931297102),
        ];
        for (got, want) in cases {
            assert!(close(got, want), "{got} vs {want}");
        }
        // Respacing keeps the marginals: cumulative products agree.
        let full = Schedule::idf_cr();
        let mut acc = 1.0;
        for (i, &t) in r.timesteps.iter().enumerate() {
            acc *= 1.0 - r.betas[i];
            assert!(close(acc, full.alphas_cumprod[t]));
        }
    }

    /// Tables and chains written by the Python training code
    /// (`python -m idfcr_train.export.fixtures --only-schedule`): the exported denoiser was trained
    /// with Python's schedule, so ours must be the same one.
    #[test]
    fn tables_and_chains_match_the_python_ones() {
        let r: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/models/schedule.ref.json"
        )))
        .unwrap();
        let floats = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let full = Schedule::idf_cr();
        let want = floats(&r["alphas_cumprod"]);
        assert_eq!(want.len(), full.alphas_cumprod.len());
        for (t, (&got, &want)) in full.alphas_cumprod.iter().zip(&want).enumerate() {
            assert!(close(got, want), "alphas_cumprod[{t}]: {got} vs {want}");
        }
        let chains = r["chains"].as_object().unwrap();
        assert!(chains.len() >= 4);
        for (steps, c) in chains {
            let rs = Respaced::new(&full, steps.parse().unwrap());
            let ts: Vec<usize> = floats(&c["timesteps"])
                .iter()
                .map(|&t| t as usize)
                .collect();
            assert_eq!(rs.timesteps, ts, "{steps} steps");
            let tables = [
                (&rs.betas, "betas"),
                (&rs.alphas_cumprod_prev, "alphas_cumprod_prev"),
                (&rs.posterior_variance, "posterior_variance"),
            ];
            for (got, key) in tables {
                for (i, (&g, w)) in got.iter().zip(floats(&c[key])).enumerate() {
                    assert!(close(g, w), "{steps} steps {key}[{i}]: {g} vs {w}");
                }
            }
            // Whole chains with the fixed linear denoiser the fixture used.
            let start = floats(&c["x_start"]);
            let noise: Vec<Vec<f64>> = c["noise"].as_array().unwrap().iter().map(floats).collect();
            for method in ["ddim", "ddpm"] {
                let want = floats(&c[format!("{method}_end").as_str()]);
                for (j, &x_start) in start.iter().enumerate() {
                    let mut x = x_start as f32;
                    for i in (0..rs.timesteps.len()).rev() {
                        let eps = 0.3 * x - 0.2 * x_start as f32;
                        x = match method {
                            "ddim" => rs.ddim_step(i, x, eps),
                            _ => rs.ddpm_step(i, x, eps, noise[i][j] as f32),
                        };
                    }
                    let tol = 1e-4 * want[j].abs().max(1.0);
                    assert!(
                        (x as f64 - want[j]).abs() <= tol,
                        "{steps}-step {method} chain, value {j}: {x} vs {}",
                        want[j]
                    );
                }
            }
        }
    }

    #[test]
    fn steps_recover_x0_with_the_true_noise() {
        // If the model predicts the exact noise, DDIM lands on x0 and the
        // DDPM mean is the posterior mean towards x0.
        let r = Respaced::new(&Schedule::idf_cr(), 50);
        let (x0, eps) = (0.7f32, -1.3f32);
        for i in [49usize, 20, 1] {
            let ac = r.alphas_cumprod[i];
            let x_t = (ac.sqrt() * x0 as f64 + (1.0 - ac).sqrt() * eps as f64) as f32;
            assert!((r.predict_x0(i, x_t, eps) - x0).abs() < 1e-5);
            let prev = r.ddim_step(i, x_t, eps);
            let ap = r.alphas_cumprod_prev[i];
            let want = (ap.sqrt() * x0 as f64 + (1.0 - ap).sqrt() * eps as f64) as f32;
            assert!((prev - want).abs() < 1e-5);
        }
        // Last step: no noise added.
        let x_t = 0.5;
        assert_eq!(
            r.ddpm_step(0, x_t, 0.1, 123.0),
            r.ddpm_step(0, x_t, 0.1, -7.0)
        );
    }
}
