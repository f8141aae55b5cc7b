//! Outputs that stand or fall together (the files of one `idfcr s2`
//! product): each written under a temp name beside its final name, and all
//! moved into place at the end. A run that fails or is interrupted leaves
//! every final name as it was, the files an `--overwrite` run was about to
//! replace included.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::place::{move_into_place, parent_dir, sync_dir, TempFile};
use crate::io::side_files::{place_side_files, remove_output, side_files};

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

    /// Move every staged file and its side files to its final name. Without
    /// `overwrite`, a final name taken meanwhile (another run) stops the
    /// commit before anything moves, and a move that fails takes back the
    /// files already moved (they were new).
    pub fn commit(self, overwrite: bool, wrote_world_file: bool) -> Result<()> {
        let plan: Vec<_> = self
            .items
            .iter()
            .map(|(t, f)| (side_files(t.path(), f), f))
            .collect();
        if !overwrite {
            let taken = plan.iter().find_map(|(sides, f)| {
                std::iter::once(f.to_path_buf())
                    .chain(sides.iter().filter(|s| s.world).map(|s| s.to.clone()))
                    .find(|p| p.exists())
            });
            if let Some(p) = taken {
                return Err(Error::output(
                    &p,
                    "appeared while this run was writing it (another run?); nothing of this run was moved into place (use --overwrite to replace it)",
                ));
            }
        }
        let mut moved: Vec<&PathBuf> = Vec::new();
        let mut problems = Vec::new();
        for ((tmp, f), (sides, _)) in self.items.iter().zip(&plan) {
            if let Err(e) = move_into_place(tmp.path(), f, overwrite) {
                if !overwrite {
                    for m in &moved {
                        remove_output(m, wrote_world_file);
                    }
                }
                return Err(Error::output(
                    f,
                    format!("cannot move the finished file into place: {e}"),
                ));
            }
            moved.push(f);
            if let Err(p) = place_side_files(sides, f) {
                problems.push(format!("{}: {p}", f.display()));
            }
        }
        for (tmp, f) in self.items {
            tmp.keep();
            sync_dir(parent_dir(&f));
        }
        match problems.first() {
            None => Ok(()),
            Some(_) => Err(Error::Runtime(problems.join("; "))),
        }
    }
}
