//! Which inputs a `batch` takes: paths, folders, glob patterns and list
//! files expanded into one sorted, de-duplicated list (every run sees the
//! same list), and `--shard i/n`, which keeps the inputs whose stable hash
//! (FNV-1a of the input string) is i modulo n: each input belongs to
//! exactly one shard whatever the machine or the order of the list, with
//! no coordinator.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::names::RASTER_EXTENSIONS;

/// "i/n" with 0 <= i < n.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || {
        Error::Usage(format!(
            "--shard {s}: expected I/N with 0 <= I < N, e.g. 0/4"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// FNV-1a, 64 bit: a hash that is the same on every machine and release.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

pub fn in_shard(input: &str, shard: Option<(usize, usize)>) -> bool {
    shard.is_none_or(|(i, n)| stable_hash(input) % n as u64 == i as u64)
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The inputs a `--list` file names: one per line, surrounding blanks
/// dropped, empty lines skipped. As in a shell script, `#` starts a
/// comment at the start of a line or after a blank (`a.tif  # redo`); a
/// `#` inside a path (`/data/run#2/a.tif`) is part of it: cut there, the
/// input would become its folder, and every raster in it would run.
fn list_entries(text: &str) -> Vec<String> {
    // A list saved by a Windows editor may start with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .map(|l| {
            let comment = l
                .char_indices()
                .find(|&(i, c)| c == '#' && (i == 0 || l[..i].ends_with(char::is_whitespace)))
                .map_or(l.len(), |(i, _)| i);
            l[..comment].trim()
        })
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// `path` as text, or None (and its name noted in `not_utf8`) when it is
/// not UTF-8.
fn utf8_path(path: PathBuf, not_utf8: &mut Vec<String>) -> Option<String> {
    let t = path.to_str().map(String::from);
    if t.is_none() {
        not_utf8.push(path.display().to_string());
    }
    t
}

/// Expand paths, folders, globs and a list file into a sorted, de-duplicated list.
pub fn expand_inputs(args: &[String], list: Option<&Path>) -> Result<Vec<String>> {
    let mut raw: Vec<String> = args.to_vec();
    if let Some(l) = list {
        let text = std::fs::read_to_string(l).map_err(|e| {
            Error::input(
                l.display().to_string(),
                format!("cannot read the list: {e}"),
            )
        })?;
        raw.extend(list_entries(&text));
    }
    let mut out = Vec::new();
    // Paths are passed on as text (to GDAL, the summary, the tags): a name
    // that is not UTF-8 would be mangled and then reported missing.
    let mut not_utf8: Vec<String> = Vec::new();
    for item in raw {
        let p = Path::new(&item);
        if p.is_dir() {
            let entries = std::fs::read_dir(p)
                .map_err(|e| Error::input(&item, format!("cannot list the folder: {e}")))?;
            let before = out.len();
            for e in entries.flatten() {
                let path = e.path();
                // Hidden files are not scenes: among them our own temp files
                // (`.NAME.idfcr-...`), another run's work in progress.
                if !is_hidden(&path) && path.is_file() && crate::io::names::is_raster_name(&path) {
                    out.extend(utf8_path(path, &mut not_utf8));
                }
            }
            if out.len() == before && not_utf8.is_empty() {
                // A product folder (`.SAFE`) holds its rasters deeper down,
                // as groups only GDAL's Sentinel-2 driver puts together.
                // (A .SAFE folder without its metadata file says so.)
                if crate::sentinel2::input::find_product_metadata(&item)?.is_some() {
                    return Err(Error::input(
                        &item,
                        "is a Sentinel-2 product: run `idfcr s2` on it for every band group, or pass its SENTINEL2_...:10m:... subdatasets (see gdalinfo)",
                    ));
                }
                return Err(Error::input(
                    &item,
                    format!(
                        "the folder holds no rasters (files ending in .{})",
                        RASTER_EXTENSIONS.join(", .")
                    ),
                ));
            }
        } else if is_glob(&item) && !p.exists() {
            let paths =
                glob::glob(&item).map_err(|e| Error::Usage(format!("pattern {item}: {e}")))?;
            // Hidden files are left out as in the folder listing above (our
            // own temp files among them) unless the pattern's file name
            // spells the dot. (glob's `require_literal_leading_dot` would
            // drop them even then.)
            let wants_hidden = is_hidden(p);
            let before = out.len();
            out.extend(
                paths
                    .flatten()
                    .filter(|p| p.is_file())
                    .filter(|p| wants_hidden || !is_hidden(p))
                    .filter_map(|p| utf8_path(p, &mut not_utf8)),
            );
            if out.len() == before && not_utf8.is_empty() {
                return Err(Error::input(&item, "the pattern matches no file"));
            }
        } else {
            out.push(item);
        }
    }
    if let Some(first) = not_utf8.first() {
        return Err(Error::input(
            first,
            format!(
                "{} file name(s) here are not valid UTF-8, which idfcr cannot pass on; rename them (e.g. convmv -f latin1 -t utf8 -r --notest FOLDER)",
                not_utf8.len()
            ),
        ));
    }
    out.sort();
    // One file spelled two ways (`in/a.tif`, `./in/a.tif`, its absolute
    // path) is one input: the first spelling is kept. A link under another
    // name (`latest.tif`) stays an input of its own, with its own output.
    let mut seen = std::collections::HashSet::new();
    out.retain(|i| {
        let file = Path::new(i).file_name().map(|n| n.to_os_string());
        seen.insert((
            std::fs::canonicalize(i).unwrap_or_else(|_| PathBuf::from(i)),
            file,
        ))
    });
    if out.is_empty() {
        return Err(Error::Usage(
            "batch: no inputs (give paths, folders, patterns or --list)".into(),
        ));
    }
    Ok(out)
}

/// A file name starting with a dot (`.NAME.idfcr-...` temp files too).
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_are_paths_or_whole_line_comments() {
        let cases: [(&str, &[&str]); 6] = [
            ("a.tif\nb.tif\n", &["a.tif", "b.tif"]),
            ("# job 7\n\n  a.tif  \r\n", &["a.tif"]),
            ("/data/run#2/a.tif\n", &["/data/run#2/a.tif"]),
            (
                "a.tif  # redo after the fix\nb#1.tif\t#x\n",
                &["a.tif", "b#1.tif"],
            ),
            ("\u{feff}a.tif\n   # indented comment\n", &["a.tif"]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(list_entries(text), want, "{text:?}");
        }
    }

    #[test]
    fn shard_parsing() {
        let cases = [
            ("0/4", Some((0, 4))),
            ("3/4", Some((3, 4))),
            ("4/4", None),
            ("1/0", None),
            ("a/2", None),
            ("2", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_shard(s).ok(), want, "{s}");
        }
    }

    #[test]
    fn every_input_is_in_exactly_one_shard() {
        let inputs: Vec<String> = (0..500)
            .map(|i| format!("/archive/2024/S2_{i:04}.tif"))
            .collect();
        for n in [1, 2, 3, 7, 16] {
            let mut counts = vec![0usize; n];
            for inp in &inputs {
                let owners: Vec<usize> = (0..n).filter(|&i| in_shard(inp, Some((i, n)))).collect();
                assert_eq!(owners.len(), 1, "{inp} with {n} shards");
                counts[owners[0]] += 1;
            }
            // Roughly balanced.
            let min = *counts.iter().min().unwrap();
            assert!(min * n * 2 >= inputs.len(), "unbalanced shards {counts:?}");
        }
        // Stable across runs and machines: a fixed value.
        assert_eq!(stable_hash("a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn names_that_are_not_utf8_are_refused_by_name() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ok.tif"), b"x").unwrap();
        let latin1 = std::ffi::OsStr::from_bytes(b"sc\xe8ne.tif");
        std::fs::write(d.join(latin1), b"x").unwrap();
        // (A glob never matches such a name: the glob crate compares text.)
        let folder = d.display().to_string();
        let e = expand_inputs(&[folder], None).unwrap_err().to_string();
        assert!(
            e.contains("sc\u{fffd}ne.tif") && e.contains("not valid UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn inputs_spelled_two_ways_are_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.tif"), "x").unwrap();
        std::fs::write(d.join("b.tif"), "x").unwrap();
        // A link under another name is an input of its own.
        #[cfg(unix)]
        std::os::unix::fs::symlink(d.join("a.tif"), d.join("latest.tif")).unwrap();
        let in_folder = if cfg!(unix) { 3 } else { 2 };
        let a = d.join("a.tif").display().to_string();
        let dotted = format!("{}/./a.tif", d.display());
        // A list file with a byte-order mark, a comment and a blank line.
        let list = d.join("list.txt");
        std::fs::write(
            &list,
            format!("\u{feff}{a}\n\n# a comment\n{}/b.tif\n", d.display()),
        )
        .unwrap();
        // (arguments, list, inputs expected)
        let cases: [(Vec<String>, Option<&Path>, usize); 3] = [
            (vec![a.clone(), dotted.clone()], None, 1),
            (vec![dotted], Some(&list), 2),
            (vec![d.display().to_string()], None, in_folder),
        ];
        for (args, list, want) in cases {
            let got = expand_inputs(&args, list).unwrap();
            assert_eq!(got.len(), want, "{args:?}: {got:?}");
        }
    }

    #[test]
    fn patterns_leave_hidden_files_out_unless_they_spell_the_dot() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A scene, and a killed run's temp file beside it.
        std::fs::write(d.join("a.tif"), "x").unwrap();
        std::fs::write(d.join(".a_clear.tif.idfcr-7-part.tif"), "x").unwrap();
        // (pattern, file names expected)
        let cases = [
            ("*.tif", vec!["a.tif"]),
            ("*a*.tif", vec!["a.tif"]),
            (".a_*.tif", vec![".a_clear.tif.idfcr-7-part.tif"]),
        ];
        for (pattern, want) in cases {
            let got = expand_inputs(&[format!("{}/{pattern}", d.display())], None).unwrap();
            let names: Vec<String> = got
                .iter()
                .map(|p| {
                    Path::new(p)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            assert_eq!(names, want, "{pattern}");
        }
    }
}
