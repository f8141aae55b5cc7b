//! Wavelet colour fix (METHOD.md, as in DiffBIR): keep the high frequencies
//! of the diffusion output and take the low frequencies from the Pixel-CR
//! image, so that refinement adds detail without shifting colours.
//!
//! Decomposition: 5-level a-trous transform with the 3x3 [1, 2, 1] x [1, 2, 1]
//! / 16 kernel dilated by 2^i at level i, edges replicated. The sum of the
//! detail layers plus the last low-pass layer is the image itself, so a
//! content image fixed against itself is unchanged. Pure.

/// Pixels on each side that influence a pixel's result (1 + 2 + 4 + 8 + 16):
/// the halo a tiled colour fix needs.
pub const HALO_PX: usize = 31;
const LEVELS: usize = 5;

/// One a-trous low-pass of a (h x w) plane with dilation `r`, edges replicated.
fn blur(src: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    let k = [0.25f32, 0.5, 0.25];
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (i, &c) in k.iter().enumerate() {
                let xx = clamp(x as isize + (i as isize - 1) * r as isize, w);
                s += c * src[y * w + xx];
            }
            tmp[y * w + x] = s;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (i, &c) in k.iter().enumerate() {
                let yy = clamp(y as isize + (i as isize - 1) * r as isize, h);
                s += c * tmp[yy * w + x];
            }
            out[y * w + x] = s;
        }
    }
    out
}

/// (high, low) of one plane: the summed detail layers and the last low pass.
pub fn decompose(plane: &[f32], w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let mut high = vec![0f32; w * h];
    let mut img = plane.to_vec();
    for level in 0..LEVELS {
        let low = blur(&img, w, h, 1 << level);
        for ((hi, &v), &l) in high.iter_mut().zip(&img).zip(&low) {
            *hi += v - l;
        }
        img = low;
    }
    (high, img)
}

/// High frequencies of `content` + low frequencies of `style`, per band;
/// both are (bands x h x w).
pub fn wavelet_color_fix(
    content: &[f32],
    style: &[f32],
    bands: usize,
    w: usize,
    h: usize,
) -> Vec<f32> {
    let n = w * h;
    let mut out = Vec::with_capacity(bands * n);
    for b in 0..bands {
        let (hi, _) = decompose(&content[b * n..(b + 1) * n], w, h);
        let (_, lo) = decompose(&style[b * n..(b + 1) * n], w, h);
        out.extend(hi.iter().zip(&lo).map(|(a, b)| a + b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: usize, h: usize, seed: u32) -> Vec<f32> {
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                0.5 + 0.3 * (x / (5.0 + seed as f32)).sin() * (y / 7.0).cos()
                    + 0.1 * ((x * y + seed as f32) / 13.0).sin()
            })
            .collect()
    }

    #[test]
    fn high_plus_low_is_the_image() {
        let img = pattern(40, 30, 1);
        let (hi, lo) = decompose(&img, 40, 30);
        for i in 0..img.len() {
            assert!((hi[i] + lo[i] - img[i]).abs() < 1e-5);
        }
        // Fixing an image against itself changes nothing.
        let fixed = wavelet_color_fix(&img, &img, 1, 40, 30);
        assert!(fixed.iter().zip(&img).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn colours_come_from_the_style_and_detail_from_the_content() {
        let (w, h) = (48, 40);
        let content = pattern(w, h, 2);
        // The style: the content shifted in brightness and without detail.
        let style = vec![0.8f32; w * h];
        let fixed = wavelet_color_fix(&content, &style, 1, w, h);
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean(&fixed) - 0.8).abs() < 0.02, "{}", mean(&fixed));
        // Detail survives: neighbouring differences match the content's.
        let d = |v: &[f32]| {
            (1..w - 1)
                .map(|x| (v[20 * w + x + 1] - v[20 * w + x]).abs())
                .sum::<f32>()
        };
        assert!(
            (d(&fixed) / d(&content) - 1.0).abs() < 0.35,
            "{} vs {}",
            d(&fixed),
            d(&content)
        );
        // Constant content: nothing but the style's low frequencies.
        let flat = wavelet_color_fix(&vec![0.1; w * h], &style, 1, w, h);
        assert!(flat.iter().all(|v| (v - 0.8).abs() < 1e-5));
    }

    #[test]
    fn a_pixel_sees_at_most_the_halo() {
        let (w, h) = (100, 9);
        let base = pattern(w, h, 3);
        let mut poked = base.clone();
        poked[4 * w + 10] += 1.0;
        let (a, _) = decompose(&base, w, h);
        let (b, _) = decompose(&poked, w, h);
        let reach = (0..w)
            .filter(|&x| (a[4 * w + x] - b[4 * w + x]).abs() > 1e-7)
            .max()
            .unwrap();
        assert_eq!(reach, 10 + HALO_PX);
    }
}
