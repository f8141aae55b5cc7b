//! Outputs that stand or fall together (the files of one `idfcr s2`
//! product): each written under a temp name beside its final name, and all
//! moved into place at the end. A run that fails or is interrupted leaves
//! every final name as it was, the files an `--overwrite` run was about to
//! replace included.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::place::{move_into_place, parent_dir, sync_dir, TempFile};
use crate::io::set_aside::SetAside;
use crate::io::side_files::{place_side_files, side_files, taken_world_file};

/// Temp files standing in for final paths; removed (with any side files
/// GDAL wrote for them) unless committed.
pub struct Staged {
    items: Vec<(TempFile, PathBuf)>,
}

impl Staged {
    /// A temp name beside each of `finals` (all distinct, checked by the
    /// caller as outputs).
    pub fn beside(finals: &[PathBuf]) -> Result<Self> {
        let items = finals
            .iter()
            .map(|f| {
                TempFile::beside(f, "stage")
                    .map(|t| (t, f.clone()))
                    .map_err(|e| {
                        Error::output(
                            f,
                            format!("cannot create a temp file beside it: {}", e.kind()),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Staged { items })
    }

    /// Where the run writes what ends up at `final_path`.
    pub fn path_for(&self, final_path: &Path) -> Option<PathBuf> {
        self.items
            .iter()
            .find(|(_, f)| f == final_path)
            .map(|(t, _)| t.path().to_path_buf())
    }

    /// Move every staged file and its side files to its final name, all or
    /// none: the files being replaced (`overwrite`) are first moved aside
    /// under temp names, and if any move fails the new files go and the old
    /// ones come back. Without `overwrite`, a final name taken meanwhile
    /// (another run) stops the commit before anything moves.
    pub fn commit(self, overwrite: bool) -> Result<()> {
        // A forced exit (second Ctrl-C) waits for this to end.
        let _placing = crate::io::place::placing();
        let plan: Vec<_> = self
            .items
            .iter()
            .map(|(t, f)| (side_files(t.path(), f), f))
            .collect();
        if !overwrite {
            let taken = plan.iter().find_map(|(sides, f)| {
                Some(f.as_path())
                    // A link to a missing file is a name taken too.
                    .filter(|f| std::fs::symlink_metadata(f).is_ok())
                    .or_else(|| taken_world_file(sides))
            });
            if let Some(p) = taken {
                return Err(Error::output(
                    p,
                    "appeared while this run was writing it (another run?); nothing of this run was moved into place (use --overwrite to replace it)",
                ));
            }
        }
        // The files being replaced (and their side files), moved aside:
        // removed when this ends, unless put back.
        let worlds: Vec<Vec<PathBuf>> = plan
            .iter()
            .map(|(sides, _)| {
                sides
                    .iter()
                    .filter(|s| s.world)
                    .map(|s| s.to.clone())
                    .collect()
            })
            .collect();
        let aside = SetAside::files(
            self.items
                .iter()
                .zip(&worlds)
                .map(|((_, f), w)| (f.as_path(), w.as_slice())),
        )?;
        let mut moved: Vec<PathBuf> = Vec::new();
        for (tmp, f) in &self.items {
            if let Err(e) = move_into_place(tmp.path(), f, overwrite) {
                // Undo: the new rasters moved so far go (their side files
                // follow only once every raster is in place), the old come back.
                for m in &moved {
                    let _ = std::fs::remove_file(m);
                }
                return Err(aside.put_back(Error::output(
                    f,
                    format!(
                        "cannot move the finished file into place: {e}; the folder is as it was"
                    ),
                )));
            }
            moved.push(f.clone());
        }
        // Every raster is in place: side files follow, stale ones go.
        let mut problems: Vec<(PathBuf, String)> = Vec::new();
        for (sides, f) in &plan {
            if let Err(p) = place_side_files(sides, f) {
                problems.push((f.to_path_buf(), p));
            }
        }
        // One folder holds a product: one sync.
        let mut dirs: Vec<&Path> = self.items.iter().map(|(_, f)| parent_dir(f)).collect();
        dirs.dedup();
        for d in dirs {
            sync_dir(d);
        }
        for (tmp, _) in self.items {
            tmp.keep();
        }
        drop(aside);
        // An output error naming the first file whose side files failed
        // (the rasters themselves are in place).
        match problems.split_first() {
            None => Ok(()),
            Some(((f, p), rest)) => {
                let others: Vec<String> = rest
                    .iter()
                    .map(|(f, p)| format!("; {}: {p}", f.display()))
                    .collect();
                Err(Error::output(f, format!("{p}{}", others.concat())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn a_product_moves_in_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let finals: Vec<PathBuf> = ["a.tif", "b.tif", "c.tif"]
            .iter()
            .map(|n| d.join(n))
            .collect();
        let hidden = || {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with('.')
                })
                .count()
        };
        // A first run: all three appear.
        let s = Staged::beside(&finals).unwrap();
        for f in &finals {
            write(&s.path_for(f).unwrap(), "new");
        }
        s.commit(false).unwrap();
        assert!(finals
            .iter()
            .all(|f| std::fs::read_to_string(f).unwrap() == "new"));
        assert_eq!(hidden(), 0);

        // An --overwrite rerun that cannot set c.tif aside (it became a
        // folder that is not empty): nothing moves, a.tif and b.tif (and
        // a.tif's side file) are as they were.
        for f in &finals[..2] {
            write(f, "old");
        }
        // The old a.tif's statistics: they must come back with it.
        let aux = d.join("a.tif.aux.xml");
        write(&aux, "old stats");
        std::fs::remove_file(&finals[2]).unwrap();
        std::fs::create_dir(&finals[2]).unwrap();
        write(&finals[2].join("x"), "x");
        let s = Staged::beside(&finals).unwrap();
        for f in &finals {
            write(&s.path_for(f).unwrap(), "newer");
        }
        assert!(s.commit(true).is_err());
        for f in &finals[..2] {
            assert_eq!(
                std::fs::read_to_string(f).unwrap(),
                "old",
                "{}",
                f.display()
            );
        }
        assert_eq!(std::fs::read_to_string(&aux).unwrap(), "old stats");
        assert_eq!(hidden(), 0);
        std::fs::remove_file(&aux).unwrap();

        // Without --overwrite, a name taken meanwhile moves nothing.
        std::fs::remove_dir_all(&finals[2]).unwrap();
        let s = Staged::beside(&finals).unwrap();
        for f in &finals {
            write(&s.path_for(f).unwrap(), "newest");
        }
        let e = s.commit(false).unwrap_err().to_string();
        assert!(e.contains("a.tif") && e.contains("nothing"), "{e}");
        assert_eq!(std::fs::read_to_string(&finals[0]).unwrap(), "old");
        assert!(!finals[2].exists());
        assert_eq!(hidden(), 0);
    }

    #[test]
    fn a_stale_side_file_that_stays_is_an_output_error_naming_the_raster() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.tif");
        write(&f, "old");
        // A stale side file that cannot be removed (a folder by its name).
        let stale = dir.path().join("a.tif.aux.xml");
        std::fs::create_dir(&stale).unwrap();
        write(&stale.join("x"), "x");
        let s = Staged::beside(std::slice::from_ref(&f)).unwrap();
        write(&s.path_for(&f).unwrap(), "new");
        match s.commit(true) {
            Err(Error::Output { path, msg, .. }) => {
                assert_eq!(path, f);
                assert!(
                    msg.contains("is in place") && msg.contains("a.tif.aux.xml"),
                    "{msg}"
                );
            }
            other => panic!("expected an output error, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
    }
}
