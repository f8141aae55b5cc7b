//! The tile grid: where tiles go along one axis of the scene.
//!
//! Tiles are placed on a global grid so that every tile origin is a multiple
//! of the model's attention window away from the first one. Window attention
//! then partitions each tile exactly as it would partition the whole scene,
//! and a tiled result equals the whole-image result except within a model's
//! `halo` of a tile border. We keep those borders out of the result: each
//! tile has a `margin` (at least the halo) on every side that gets zero blend
//! weight, and the scene itself is extended by mirroring by the same margin,
//! so scene-edge pixels also sit at least `margin` inside some tile.
//!
//! Along one axis, tile `k` covers `[start_k, start_k + tile)` with
//! `start_k = -margin + k * (tile - overlap)`. Its interior
//! `[start_k + margin, start_k + tile - margin)` overlaps the next tile's
//! interior by `overlap - 2 * margin` pixels, where the blend ramps from one
//! tile to the other (see `blend`). Everything here is pure arithmetic.

use crate::error::{Error, Result};

/// Tile placement along one axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisGrid {
    pub scene_px: usize,
    /// Tile length actually used: the requested tile size at most, shrunk
    /// to the smallest that covers the scene (plus margins) with as few
    /// tiles as the requested size needs.
    pub tile_px: usize,
    pub overlap_px: usize,
    pub margin_px: usize,
    /// First pixel of each tile, in scene coordinates (negative for the first).
    pub starts: Vec<isize>,
}

/// The largest `--tile`, `--overlap` and `--refine-tile`, in pixels. A
/// 8192 px tile already holds some 50 GB of Pixel-CR activations; the bound
/// also keeps the tile arithmetic far from overflow.
pub const MAX_TILE_PX: usize = 8192;

/// Round `v` up to a multiple of `m` (m > 0).
pub fn round_up(v: usize, m: usize) -> usize {
    v.div_ceil(m) * m
}

impl AxisGrid {
    /// Lay out tiles over `scene_px` pixels.
    ///
    /// Preconditions (checked, reported as usage errors): all sizes are
    /// multiples of `window_px`; `overlap_px >= 2 * margin_px`;
    /// `tile_px >= 2 * overlap_px` so the ramps at both ends of a tile do not meet.
    pub fn new(
        scene_px: usize,
        tile_px: usize,
        overlap_px: usize,
        margin_px: usize,
        window_px: usize,
    ) -> Result<Self> {
        let window_px = window_px.max(1);
        for (name, v) in [
            ("tile size", tile_px),
            ("overlap", overlap_px),
            ("margin", margin_px),
        ] {
            if v % window_px != 0 {
                return Err(Error::Usage(format!(
                    "{name} {v} px must be a multiple of the model's window ({window_px} px)"
                )));
            }
        }
        if overlap_px < 2 * margin_px {
            return Err(Error::Usage(format!(
                "overlap {overlap_px} px must be at least twice the model's margin ({margin_px} px)"
            )));
        }
        if tile_px < 2 * overlap_px || tile_px == 0 {
            return Err(Error::Usage(format!(
                "tile size {tile_px} px must be at least twice the overlap ({overlap_px} px)"
            )));
        }
        if scene_px == 0 {
            return Err(Error::Usage(
                "the scene has zero pixels along one axis".into(),
            ));
        }
        // A scene that fits in one tile gets one tile just big enough.
        let single = round_up(scene_px + 2 * margin_px, window_px);
        if single <= tile_px {
            return Ok(AxisGrid {
                scene_px,
                tile_px: single,
                overlap_px,
                margin_px,
                starts: vec![-(margin_px as isize)],
            });
        }
        let interior = tile_px - 2 * margin_px;
        // Smallest n with (n - 1) * (tile - overlap) + interior >= scene_px.
        let n = 1 + (scene_px - interior).div_ceil(tile_px - overlap_px);
        // Then the smallest tile that still covers the scene with n tiles:
        // n * t - (n - 1) * overlap - 2 * margin >= scene. At the requested
        // size the last tile mostly hangs past the scene (a 512 px scene at
        // tile 480 took four 480 px tiles, 2.1x the pixels of the scene with
        // its margins); shrunk, every tile's work lands in the scene.
        let tile_px = round_up(
            (scene_px + 2 * margin_px + (n - 1) * overlap_px).div_ceil(n),
            window_px,
        )
        .max(2 * overlap_px)
        .min(tile_px);
        let stride = tile_px - overlap_px;
        let starts = (0..n)
            .map(|k| -(margin_px as isize) + (k * stride) as isize)
            .collect();
        Ok(AxisGrid {
            scene_px,
            tile_px,
            overlap_px,
            margin_px,
            starts,
        })
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Scene pixels `[lo, hi)` whose final value is known once tiles
    /// `0..=k` are done: everything before the next tile starts (the next
    /// tile has zero weight there), clipped to the scene.
    pub fn finished_after(&self, k: usize) -> (usize, usize) {
        let lo = if k == 0 {
            0
        } else {
            self.starts[k].max(0) as usize
        };
        let hi = match self.starts.get(k + 1) {
            Some(&s) => (s.max(0) as usize).min(self.scene_px),
            None => self.scene_px,
        };
        (lo.min(hi), hi)
    }
}

/// A run of consecutive tiles along the column axis, processed as a unit
/// so that memory depends on the panel width, not the scene width. `cols`
/// are the scene columns this panel alone determines (every tile with
/// non-zero weight there belongs to the panel); the panels' `cols` tile the
/// scene. Neighbouring panels share one tile, computed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panel {
    pub tiles: std::ops::Range<usize>,
    pub cols: (usize, usize),
}

/// Split `grid` into panels of about `panel_px` pixels (at least two tiles).
pub fn panels(grid: &AxisGrid, panel_px: usize) -> Vec<Panel> {
    let n = grid.len();
    let stride = grid.tile_px.saturating_sub(grid.overlap_px).max(1);
    let per = panel_px.div_ceil(stride).max(2);
    if n <= per {
        return vec![Panel {
            tiles: 0..n,
            cols: (0, grid.scene_px),
        }];
    }
    let mut out = Vec::new();
    let (mut a, mut lo) = (0usize, 0usize);
    loop {
        let b = (a + per - 1).min(n - 1);
        let hi = if b == n - 1 {
            grid.scene_px
        } else {
            ((grid.starts[b + 1] + grid.margin_px as isize).max(0) as usize).min(grid.scene_px)
        };
        out.push(Panel {
            tiles: a..b + 1,
            cols: (lo, hi),
        });
        if b == n - 1 {
            return out;
        }
        a = b;
        lo = hi;
    }
}

/// Mirror an out-of-range coordinate back into `0..n` (symmetric, edge
/// repeated: -1 -> 0, n -> n - 1), periodically for any distance, so rasters
/// smaller than the margin still work.
pub fn mirror(i: isize, n: usize) -> usize {
    let n = n as isize;
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

/// Tile size and overlap from the user's choices and the model's margin and
/// window. Without `--overlap`, the overlap is the model's (twice the margin
/// plus two windows). A tile too small for the overlap (a 60 m group's share
/// of the 10 m tile, say, or the default tile with `--overlap 256`) grows to
/// twice it: the output does not depend on the tile size. An overlap the
/// user chose is otherwise checked as given (by `AxisGrid`).
/// Err(the tile that would need) when that is more than idfcr runs.
pub fn tile_and_overlap(
    tile_px: usize,
    overlap_px: Option<usize>,
    margin: usize,
    window: usize,
) -> std::result::Result<(usize, usize), usize> {
    let overlap = overlap_px.unwrap_or(2 * margin + 2 * window);
    let tile = round_up(tile_px.max(2 * overlap), window.max(1));
    if tile > MAX_TILE_PX {
        return Err(tile);
    }
    Ok((tile, overlap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_cover_every_pixel_with_an_interior() {
        // (scene, tile, overlap, margin, window)
        let cases = [
            (1, 64, 16, 0, 16),
            (5, 64, 32, 16, 16),
            (63, 64, 16, 0, 16),
            (64, 64, 16, 0, 16),
            (65, 64, 16, 0, 16),
            (100, 64, 32, 16, 16),
            (1000, 256, 64, 16, 16),
            (1001, 256, 64, 32, 16),
            (10980, 512, 128, 48, 16),
            (17, 32, 16, 8, 8),
        ];
        for (scene, tile, overlap, margin, window) in cases {
            let g = AxisGrid::new(scene, tile, overlap, margin, window).unwrap();
            assert!(g.tile_px <= tile && g.tile_px % window == 0, "{g:?}");
            for p in 0..scene as isize {
                let inside = g.starts.iter().any(|&s| {
                    p >= s + margin as isize && p < s + g.tile_px as isize - margin as isize
                });
                assert!(inside, "pixel {p} of {g:?} is in no tile interior");
            }
            // Origins sit on the global window grid, and no tile is wasted.
            for &s in &g.starts {
                assert_eq!(
                    (s + margin as isize).rem_euclid(window as isize),
                    0,
                    "{g:?}"
                );
            }
            let last = *g.starts.last().unwrap();
            if g.len() > 1 {
                let prev = g.starts[g.len() - 2];
                assert!(
                    prev + ((g.tile_px - margin) as isize) < scene as isize,
                    "{g:?} has a spare tile"
                );
                assert!(last < scene as isize);
            }
        }
    }

    #[test]
    fn small_scenes_get_one_small_tile() {
        let cases = [
            (1, 0, 16, 16),
            (5, 16, 16, 48),
            (40, 16, 16, 80),
            (200, 0, 16, 208),
        ];
        for (scene, margin, window, want_tile) in cases {
            let g = AxisGrid::new(scene, 512, 128, margin, window).unwrap();
            assert_eq!((g.len(), g.tile_px), (1, want_tile), "scene {scene}");
        }
    }

    #[test]
    fn tiles_shrink_to_cover_the_scene_with_as_few_tiles() {
        // (scene, tile, overlap, margin, window) -> (tiles, tile used)
        let cases = [
            ((512, 480, 192, 80, 16), (2, 432)),
            ((1024, 480, 192, 80, 16), (4, 448)),
            ((10980, 512, 128, 48, 16), (29, 512)),
            ((1000, 256, 64, 16, 16), (6, 240)),
            ((100, 64, 32, 16, 16), (4, 64)),
        ];
        for ((scene, tile, overlap, margin, window), want) in cases {
            let g = AxisGrid::new(scene, tile, overlap, margin, window).unwrap();
            assert_eq!((g.len(), g.tile_px), want, "scene {scene} tile {tile}");
            // One window less and the same number of tiles would not cover it.
            let n = g.len();
            let smaller = g.tile_px - window;
            if smaller >= 2 * overlap {
                assert!(
                    n * smaller - (n - 1) * overlap - 2 * margin < scene,
                    "{g:?}"
                );
            }
        }
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        let cases = [
            (100, 100, 16, 0, 16), // tile not a multiple of the window
            (100, 64, 8, 0, 16),   // overlap not a multiple
            (100, 64, 16, 16, 16), // overlap < 2 * margin
            (100, 64, 48, 16, 16), // tile < 2 * overlap
            (0, 64, 16, 0, 16),    // empty scene
        ];
        for (scene, tile, overlap, margin, window) in cases {
            let e = AxisGrid::new(scene, tile, overlap, margin, window).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
        }
    }

    #[test]
    fn finished_ranges_partition_the_scene() {
        for (scene, tile, overlap, margin) in
            [(1000, 256, 64, 16), (77, 32, 16, 0), (10, 64, 32, 16)]
        {
            let g = AxisGrid::new(scene, tile, overlap, margin, 16).unwrap();
            let mut next = 0;
            for k in 0..g.len() {
                let (lo, hi) = g.finished_after(k);
                assert_eq!(lo, next, "{g:?} k={k}");
                next = hi;
            }
            assert_eq!(next, scene);
        }
    }

    #[test]
    fn panels_determine_their_columns() {
        // (scene, tile, overlap, margin, panel_px)
        let cases = [
            (100, 64, 32, 16, 4096),
            (5000, 512, 128, 48, 1024),
            (10980, 512, 128, 48, 4096),
            (999, 96, 48, 16, 100),
            (700, 64, 16, 0, 1),
        ];
        for (scene, tile, overlap, margin, panel_px) in cases {
            let g = AxisGrid::new(scene, tile, overlap, margin, 16).unwrap();
            let ps = panels(&g, panel_px);
            assert_eq!(ps.first().unwrap().cols.0, 0);
            assert_eq!(ps.last().unwrap().cols.1, scene);
            assert_eq!(ps.last().unwrap().tiles.end, g.len());
            for w in ps.windows(2) {
                assert_eq!(w[0].cols.1, w[1].cols.0, "{ps:?}");
                assert_eq!(
                    w[0].tiles.end - 1,
                    w[1].tiles.start,
                    "neighbours share one tile"
                );
            }
            // Every tile with weight at a panel's column is in the panel.
            for p in &ps {
                for c in p.cols.0..p.cols.1 {
                    for k in 0..g.len() {
                        let w = crate::tiling::weights::axis_weights(&g, k);
                        let i = c as isize - g.starts[k];
                        if i >= 0 && (i as usize) < g.tile_px && w[i as usize] > 0.0 {
                            assert!(
                                p.tiles.contains(&k),
                                "column {c}: tile {k} outside panel {p:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn mirror_table() {
        let n = 4;
        let cases = [
            (-9, 0),
            (-2, 1),
            (-5, 3),
            (-1, 0),
            (0, 0),
            (3, 3),
            (4, 3),
            (5, 2),
            (8, 0),
            (11, 3),
        ];
        for (i, want) in cases {
            assert_eq!(mirror(i, n), want, "mirror({i}, {n})");
        }
        assert_eq!(mirror(-7, 1), 0);
        assert_eq!(mirror(7, 1), 0);
    }

    #[test]
    fn tiles_grow_to_the_models_overlap_within_the_limit() {
        // (tile, --overlap, margin, window, want)
        let cases = [
            (480, None, 64, 16, Ok((480, 160))), // the RGB model 0.7: 2 x 64 + 2 x 16
            (480, None, 96, 32, Ok((512, 256))), // 0.8 (half-scale): grows to 2 x 256
            (96, None, 64, 16, Ok((320, 160))),  // too small: grows to twice the overlap
            (100, None, 8, 8, Ok((104, 32))),    // rounded up to the window
            (480, Some(0), 64, 16, Ok((480, 0))), // the user's overlap as given
            (480, Some(256), 96, 32, Ok((512, 256))), // and the tile grows to hold it
            (480, Some(250), 96, 32, Ok((512, 250))), // AxisGrid refuses 250 (not a multiple)
            (480, Some(5000), 64, 16, Err(10000)), // no tile holds twice that
            (8192, None, 4096, 16, Err(16448)),  // a halo no tile can hold
            (480, None, 0, 4096, Err(16384)),    // nor a window
            (8192, None, 0, 2000, Err(10000)),   // nor one the tile rounds up past
        ];
        for (tile, overlap, margin, window, want) in cases {
            assert_eq!(
                tile_and_overlap(tile, overlap, margin, window),
                want,
                "{tile} {overlap:?} {margin} {window}"
            );
        }
    }
}
