//! The default output's last step: the model's output blended with the
//! input by the cloud probability p, pixel by pixel. Pure arithmetic; both
//! Pixel-CR's writer (`stage1`) and `--refine`'s (`diffusion::refine`) use
//! it, so a clear pixel passes through the same way on either path.

/// p as the blend uses it: clamped to 0..1, and 0 where the map holds no
/// number (a NaN or infinity is no detection, so the input stays).
pub fn usable_probability(p: f32) -> f32 {
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Whether the input's stored value comes back unchanged: where p is 0,
/// bit for bit (not `input + 0 x (model - input)`, which a float type or a
/// nodata value could alter).
pub fn keeps_input(p: f32) -> bool {
    p == 0.0
}

/// input + p x (model - input), for a `usable_probability` p that does not
/// keep the input.
pub fn mix(input: f32, model: f32, p: f32) -> f32 {
    input + p * (model - input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_the_blend_uses() {
        let cases = [
            (0.0, 0.0),
            (0.25, 0.25),
            (1.0, 1.0),
            (1.7, 1.0),
            (-0.2, 0.0),
            (f32::NAN, 0.0),
            (f32::INFINITY, 0.0),
            (f32::NEG_INFINITY, 0.0),
        ];
        for (p, want) in cases {
            assert_eq!(usable_probability(p), want, "p {p}");
        }
    }

    #[test]
    fn only_a_zero_probability_keeps_the_input() {
        for (p, keeps) in [
            (0.0, true),
            (-0.0, true),
            (1e-7, false),
            (0.5, false),
            (1.0, false),
        ] {
            assert_eq!(keeps_input(usable_probability(p)), keeps, "p {p}");
        }
    }

    #[test]
    fn mixes_between_input_and_model() {
        // (input, model, p, output)
        let cases = [
            (10.0, 30.0, 0.5, 20.0),
            (10.0, 30.0, 1.0, 30.0),
            (10.0, 30.0, 0.25, 15.0),
            (30.0, 10.0, 0.25, 25.0),
            (-5.0, 5.0, 0.5, 0.0),
        ];
        for (input, model, p, want) in cases {
            assert_eq!(mix(input, model, p), want, "{input} {model} {p}");
        }
    }
}
