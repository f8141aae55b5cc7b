//! GDAL's side files of an output: what GDAL writes beside a raster for a
//! user's `--co` (`PROFILE=BASELINE` puts the georeferencing in
//! `.aux.xml`, `TFW=YES` a world file) follows the raster from its temp
//! name into place; those of a file it replaces go; a failed run takes
//! them back with the raster.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// GDAL's side files of a raster: names appended to the file's (auxiliary
/// metadata, which `--co PROFILE=BASELINE` fills with the georeferencing;
/// external overviews; an external mask) and world files in place of its
/// extension (`--co TFW=YES`, `WORLDFILE=YES`).
const APPENDED_EXTS: &[&str] = &["aux.xml", "ovr", "msk"];
const WORLD_EXTS: &[&str] = &["tfw", "wld"];

/// Every side-file name GDAL could give a raster at `path`, in a fixed
/// order (so that a temp's and its target's names pair up by position),
/// each with whether it is a world file.
pub(crate) fn side_names(path: &Path) -> Vec<(PathBuf, bool)> {
    let appended = APPENDED_EXTS.iter().map(|ext| {
        let mut p = path.as_os_str().to_os_string();
        p.push(format!(".{ext}"));
        (PathBuf::from(p), false)
    });
    let world = WORLD_EXTS
        .iter()
        .map(|ext| (path.with_extension(ext), true));
    appended.chain(world).collect()
}

/// The world file (`.tfw`, `.wld`) two rasters would both write, if any:
/// `o.tif` and `o.tiff` share `o.tfw`.
pub(crate) fn shared_world_file(a: &Path, b: &Path) -> Option<PathBuf> {
    WORLD_EXTS.iter().find_map(|ext| {
        let (wa, wb) = (a.with_extension(ext), b.with_extension(ext));
        crate::io::names::same_target(&wa, &wb).then_some(wa)
    })
}

/// A side file of a temp that exists, the name it takes beside the target,
/// and whether it is a world file.
pub(crate) struct SideFile {
    pub from: PathBuf,
    pub to: PathBuf,
    pub world: bool,
}

pub(crate) fn side_files(tmp: &Path, target: &Path) -> Vec<SideFile> {
    side_names(tmp)
        .into_iter()
        .zip(side_names(target))
        .filter(|((from, _), _)| from.exists())
        .map(|((from, world), (to, _))| SideFile { from, to, world })
        .collect()
}

/// After the raster moved into place: its side files follow it, and the
/// appended side files of the file it replaced (or of a deleted earlier
/// output), which would describe it wrongly (old statistics, georeferencing,
/// QGIS's pyramids of the old pixels), go, as when GDAL replaces a dataset.
/// Nothing of ours is deleted: a side file that cannot move stays under its
/// temp name, which the error gives.
pub(crate) fn place_side_files(
    sides: &[SideFile],
    target: &Path,
) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    for s in sides {
        let moved = std::fs::File::open(&s.from)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&s.from, &s.to));
        if let Err(e) = moved {
            problems.push(format!(
                "its side file could not be moved to {} ({e}); it is kept as {}",
                s.to.display(),
                s.from.display()
            ));
        }
    }
    for (old, world) in side_names(target) {
        if world || sides.iter().any(|s| s.to == old) {
            continue;
        }
        if let Err(e) = std::fs::remove_file(&old) {
            // A name too long to exist (an output name near the file
            // system's limit) is no stale file either.
            // (ENAMETOOLONG: ErrorKind::InvalidFilename is newer than our MSRV.)
            let gone =
                e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENAMETOOLONG);
            if !gone {
                problems.push(format!(
                    "{} of the replaced file could not be removed ({e}) and may describe this one wrongly",
                    old.display()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("is in place, but {}", problems.join("; ")))
    }
}

/// The first world file among `sides` whose name is taken: a world file
/// (`--co TFW=YES`) takes the output's stem, another file's name (`o.tiff`
/// and `o.tif`, a user's own `o.tfw`), so it is checked as the output is.
pub(crate) fn taken_world_file(sides: &[SideFile]) -> Option<&Path> {
    sides
        .iter()
        .find(|s| s.world && s.to.exists())
        .map(|s| s.to.as_path())
}

/// A raster moved into place and the side files that followed it: what a
/// run takes back if it fails after placing it (an output whose mask could
/// not follow), and nothing else (never a user's own world file).
pub struct Placed {
    files: Vec<PathBuf>,
}

impl Placed {
    pub(crate) fn new(raster: &Path, sides: &[SideFile]) -> Self {
        let files = std::iter::once(raster.to_path_buf())
            .chain(sides.iter().map(|s| s.to.clone()))
            .collect();
        Placed { files }
    }

    pub fn take_back(self) {
        for f in self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The world file (`.tfw`, `.wld`) beside `path` that exists, if any.
fn existing_world_file(path: &Path) -> Option<PathBuf> {
    side_names(path)
        .into_iter()
        .find(|(p, world)| *world && p.exists())
        .map(|(p, _)| p)
}

/// With `--co TFW=YES` the output also takes `STEM.tfw`: refused up front,
/// as the output itself is, when that name is taken and not `overwrite`.
pub(crate) fn check_world_file(
    path: &Path,
    overwrite: bool,
    writes_world_file: bool,
) -> Result<()> {
    if !writes_world_file || overwrite {
        return Ok(());
    }
    match existing_world_file(path) {
        Some(taken) => Err(Error::output(
            &taken,
            "already exists (use --overwrite to replace it)",
        )),
        None => Ok(()),
    }
}

/// A world file beside `path` (a `.tfw` an earlier run's `--co TFW=YES`
/// left): GDAL reads it as the georeferencing of a GeoTIFF that has no
/// geotransform of its own (`has_geotransform` false: an unreferenced
/// input, or one placed by GCPs), so the output would read as placed where
/// the old file was, silently. `TFW=YES` does not help: GDAL writes no
/// world file for a raster without a geotransform, so the old one stays.
/// Refused before any work; never deleted, since it may be the user's
/// (`o.tiff`'s).
pub(crate) fn check_stale_world_file(path: &Path, has_geotransform: bool) -> Result<()> {
    if has_geotransform {
        return Ok(());
    }
    match existing_world_file(path) {
        Some(world) => Err(Error::output(
            &world,
            format!(
                "is a world file beside {}, and GDAL would read it as the georeferencing of the output, which has no geotransform of its own (the input has none, or is placed by GCPs): remove or rename it, or write the output under another name",
                path.display()
            ),
        )),
        None => Ok(()),
    }
}

/// Whether these `--co` make GDAL write a world file beside the output
/// (taken back with it when a run fails after placing it).
pub fn writes_world_file(user: &[(String, String)]) -> bool {
    user.iter().any(|(k, v)| {
        (k.eq_ignore_ascii_case("TFW") || k.eq_ignore_ascii_case("WORLDFILE"))
            && matches!(v.to_ascii_uppercase().as_str(), "YES" | "TRUE" | "ON" | "1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn side_files_take_the_output_name() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".o.tif.idfcr-1-h-r-final.tif");
        // (side file of the temp, the name it takes beside o.tif, world file?)
        let table = [
            (
                ".o.tif.idfcr-1-h-r-final.tif.aux.xml",
                "o.tif.aux.xml",
                false,
            ),
            (".o.tif.idfcr-1-h-r-final.tif.ovr", "o.tif.ovr", false),
            (".o.tif.idfcr-1-h-r-final.tif.msk", "o.tif.msk", false),
            (".o.tif.idfcr-1-h-r-final.tfw", "o.tfw", true),
            (".o.tif.idfcr-1-h-r-final.wld", "o.wld", true),
        ];
        for (from, to, world) in table {
            std::fs::write(dir.path().join(from), "x").unwrap();
            let sides = side_files(&tmp, &dir.path().join("o.tif"));
            assert_eq!(sides.len(), 1, "{from}");
            assert_eq!(sides[0].to, dir.path().join(to), "{from}");
            assert_eq!(sides[0].world, world, "{from}");
            std::fs::remove_file(dir.path().join(from)).unwrap();
        }
        // Someone else's files are never the temp's side files.
        std::fs::write(dir.path().join("o.tif.aux.xml"), "x").unwrap();
        std::fs::write(dir.path().join(".o.tif.idfcr-1-h-s-final.tif.aux.xml"), "x").unwrap();
        assert!(side_files(&tmp, &dir.path().join("o.tif")).is_empty());
        // A target without an extension gets the world file's extension.
        let names = side_names(Path::new("/d/o"));
        assert!(names.contains(&(PathBuf::from("/d/o.tfw"), true)));
        assert!(names.contains(&(PathBuf::from("/d/o.aux.xml"), false)));
    }

    #[test]
    fn placing_side_files_replaces_stale_ones_and_keeps_a_users_world_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (tmp, target) = (d.join(".o.tif.idfcr-1-h-r-final.tif"), d.join("o.tif"));
        for f in [
            ".o.tif.idfcr-1-h-r-final.tif.aux.xml",
            "o.tif.ovr",
            "o.tif.aux.xml",
            "o.tfw",
        ] {
            std::fs::write(d.join(f), f).unwrap();
        }
        let sides = side_files(&tmp, &target);
        place_side_files(&sides, &target).unwrap();
        std::fs::write(&target, "raster").unwrap();
        // ours moved over the stale one; the stale overviews went; o.tfw
        // (not written by this run) stays.
        assert_eq!(
            std::fs::read_to_string(d.join("o.tif.aux.xml")).unwrap(),
            ".o.tif.idfcr-1-h-r-final.tif.aux.xml"
        );
        assert!(!d.join("o.tif.ovr").exists());
        assert!(d.join("o.tfw").exists());
        // Taking the output back removes what this run placed: the raster
        // and its .aux.xml, not the o.tfw it did not write ...
        assert!(taken_world_file(&sides).is_none());
        Placed::new(&target, &sides).take_back();
        assert!(!d.join("o.tif.aux.xml").exists() && d.join("o.tfw").exists());
        assert!(!target.exists());
        // ... and its world file when it wrote one (after refusing to
        // replace the user's without --overwrite).
        write(&tmp.with_extension("tfw"), "ours");
        let sides = side_files(&tmp, &target);
        assert_eq!(taken_world_file(&sides), Some(d.join("o.tfw").as_path()));
        std::fs::remove_file(d.join("o.tfw")).unwrap();
        place_side_files(&sides, &target).unwrap();
        Placed::new(&target, &sides).take_back();
        assert!(!d.join("o.tfw").exists());
    }
}
