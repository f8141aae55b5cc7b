//! The files an `--overwrite` run replaces, moved aside under temp names
//! until its result stands. A run that fails after all (a mask that cannot
//! follow its output, the third raster of an `s2` product) puts them back,
//! so it leaves the user's earlier output, not nothing; a run that succeeds
//! drops them (their temp files are removed).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::place::TempFile;
use crate::io::side_files::side_names;

/// Old files under temp names (`.backup` temps, which the next run's stale
/// temp cleaning puts back if this process is killed meanwhile), each with
/// the name it came from.
#[derive(Default)]
pub(crate) struct SetAside(Vec<(TempFile, PathBuf)>);

impl SetAside {
    /// Move each raster in `files` aside, with those of its side files
    /// that exist (`.aux.xml` with the georeferencing of some formats,
    /// overviews), and the world files among `replaced_worlds`: the ones
    /// the new output brings. Placing the new raster would remove or
    /// replace those; moved aside with it, they come back with it. A world
    /// file the new output does not write stays where it is (it may be
    /// another raster's: `o.tiff`'s `o.tfw`). Names that do not exist are
    /// skipped. If one cannot be moved, those moved so far come back.
    pub(crate) fn files<'a>(
        files: impl IntoIterator<Item = (&'a Path, &'a [PathBuf])>,
    ) -> Result<Self> {
        let mut kept = SetAside::default();
        for (path, replaced_worlds) in files {
            let sides = side_names(path)
                .into_iter()
                .filter(|(p, world)| !world || replaced_worlds.contains(p))
                .map(|(p, _)| p);
            // A folder by a side file's name is no side file of GDAL's: it
            // stays, and placing the new raster's side files reports it.
            let sides = sides.filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()));
            let names = std::iter::once(path.to_path_buf()).chain(sides);
            for p in names.filter(|p| std::fs::symlink_metadata(p).is_ok()) {
                match TempFile::beside(&p, "backup")
                    .and_then(|b| std::fs::rename(&p, b.path()).map(|()| b))
                {
                    Ok(b) => kept.0.push((b, p)),
                    Err(e) => {
                        let e = Error::output(
                            &p,
                            format!("cannot move the file this run replaces aside: {e}"),
                        );
                        return Err(kept.put_back(e));
                    }
                }
            }
        }
        Ok(kept)
    }

    /// The result did not stand: the old files go back to their names and
    /// `e` is returned. One that cannot go back stays under its temp name,
    /// never deleted, and the error says where.
    pub(crate) fn put_back(self, e: Error) -> Error {
        let mut stranded: Vec<(PathBuf, String)> = Vec::new();
        for (b, path) in self.0 {
            if std::fs::rename(b.path(), &path).is_err() {
                let kept = format!("{} is kept as {}", path.display(), b.path().display());
                stranded.push((path, kept));
            }
            b.keep();
        }
        match stranded.first() {
            None => e,
            // An output error naming the first file that did not come back
            // (not a runtime error: that variant is ONNX Runtime's).
            Some((first, _)) => {
                let kept: Vec<&str> = stranded.iter().map(|(_, k)| k.as_str()).collect();
                Error::output(
                    first,
                    format!(
                        "{e}; and the files this run replaced could not be put back: {}",
                        kept.join(", ")
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn set_aside_files_come_back_or_go_as_the_result_says() {
        // (world files the new output brings, names left beside o.tif
        // while set aside, names after put_back)
        let cases: [(&[&str], &[&str], &[&str]); 2] = [
            // No world file of its own: the user's o.tfw is not touched.
            (
                &[],
                &["o.tfw"],
                &["o.tfw", "o.tif", "o.tif.aux.xml", "o.tif.ovr"],
            ),
            // The new output brings o.tfw: it goes aside with the raster.
            (
                &["o.tfw"],
                &[],
                &["o.tfw", "o.tif", "o.tif.aux.xml", "o.tif.ovr"],
            ),
        ];
        for (worlds, left, back) in cases {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            for n in ["o.tif", "o.tif.aux.xml", "o.tif.ovr", "o.tfw"] {
                std::fs::write(d.join(n), n).unwrap();
            }
            let worlds: Vec<PathBuf> = worlds.iter().map(|w| d.join(w)).collect();
            let out = d.join("o.tif");
            let set = SetAside::files([(out.as_path(), worlds.as_slice())]).unwrap();
            let visible: Vec<String> = names_in(d)
                .into_iter()
                .filter(|n| !n.starts_with('.'))
                .collect();
            assert_eq!(visible, left, "{worlds:?}");
            let e = set.put_back(Error::output(&out, "mask failed"));
            assert!(e.to_string().ends_with("o.tif: mask failed"), "{e}");
            assert_eq!(names_in(d), back, "{worlds:?}");
            for n in back {
                assert_eq!(std::fs::read_to_string(d.join(n)).unwrap(), *n);
            }

            // Dropped (the result stood): the old files are gone.
            let set = SetAside::files([(out.as_path(), worlds.as_slice())]).unwrap();
            drop(set);
            assert_eq!(names_in(d), left, "{worlds:?}");
        }
    }
}
