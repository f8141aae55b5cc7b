//! Where model files are: `--model`'s value (a file or a bundled model's
//! name) and the bundled models, looked up in `--model-dir`,
//! IDFCR_MODEL_DIR, beside the executable and the source tree. Which
//! bundled model an input gets is `pipeline::fit::resolve_model`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Folders searched for bundled models, in order: `first` (--model-dir),
/// IDFCR_MODEL_DIR, beside the executable, the source tree.
pub fn model_dirs(first: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = first.map(Path::to_path_buf).into_iter().collect();
    dirs.extend(model_dir_env());
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("models"));
        dirs.push(exe_dir.join("../share/idfcr/models"));
    }
    dirs.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("onnx")
            .join("models"),
    );
    dirs
}

/// IDFCR_MODEL_DIR when set and not empty (`IDFCR_MODEL_DIR=` unsets it,
/// as shells' users expect): searched for bundled models after
/// `--model-dir` (`model_dirs`).
pub fn model_dir_env() -> Option<PathBuf> {
    std::env::var_os("IDFCR_MODEL_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// `--model`'s value: an .onnx file, or the name of a bundled model
/// (`pixel_cr_rice1` or `pixel_cr_rice1.onnx`, looked up in `dirs`), so
/// that an installed tool's other models are reachable without knowing
/// where they were installed. A file at that path (relative to the working
/// folder) wins over a bundled model of that name, with a warning.
pub fn model_file_or_name(value: &Path, dirs: &[PathBuf]) -> Result<PathBuf> {
    let found = bundled_name(value).and_then(|name| bundled_file(name, dirs));
    if value.is_file() {
        // A bare name that is also a bundled model's: say which one runs
        // (`./NAME` says it was meant, and is quiet).
        if let Some((stem, other)) = &found {
            if !same_file(value, other) {
                crate::error::gdal_watch::keep_own_warning(Some(&value.display().to_string()), format!(
                    "--model {}: the file in the working folder is used, not the bundled {stem} ({}); give ./{} to say so, or run elsewhere for the bundled one",
                    value.display(),
                    other.display(),
                    value.display()
                ));
            }
        }
        return Ok(value.to_path_buf());
    }
    if let Some((stem, path)) = found {
        return match not_a_model(path.parent().unwrap_or(Path::new(".")), &stem) {
            Some(what) => Err(Error::model(value, what)),
            None => Ok(path),
        };
    }
    // A folder named like a model (an old output folder) loses to the
    // bundled model above; without one, it is the user's mistake.
    if value.is_dir() {
        return Err(Error::model(
            value,
            "is a folder; --model takes an .onnx file or a bundled model's name (--model-dir takes a folder)",
        ));
    }
    if bundled_name(value).is_none() {
        return Err(Error::model(value, "no such file"));
    }
    let known = bundled_names(dirs);
    let known = if known.is_empty() {
        "none found".to_string()
    } else {
        known.join(", ")
    };
    Err(Error::model(
        value,
        format!("no such file, and no bundled model of that name (bundled: {known}; `idfcr models` describes them)"),
    ))
}

/// The value as a bundled model's name (a trailing `.onnx` dropped): one
/// file-name component, not hidden, or None for anything that is a path.
fn bundled_name(value: &Path) -> Option<&str> {
    let s = value.to_str()?;
    let name = match s.len().checked_sub(5) {
        Some(cut) if s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(".onnx") => &s[..cut],
        _ => s,
    };
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && name.chars().all(|c| !c.is_control());
    plain.then_some(name)
}

/// Why a bundled `.onnx` file in `dir` is not a `--model`: s2cloudless is
/// `s2`'s cloud detector, and an IND model is three graphs side by side
/// (PREFIX_encoder, _decoder, _denoiser: all three there, not a name
/// that merely ends so).
fn not_a_model(dir: &Path, name: &str) -> Option<String> {
    if name == "s2cloudless" {
        return Some(
            "is idfcr s2's cloud detector, not a cloud-removal model (it is chosen with --cloud-detector)"
                .into(),
        );
    }
    const PARTS: [&str; 3] = ["_encoder", "_decoder", "_denoiser"];
    let prefix = PARTS.iter().find_map(|part| name.strip_suffix(part))?;
    PARTS
        .iter()
        .all(|part| dir.join(format!("{prefix}{part}.onnx")).is_file())
        .then(|| {
            format!(
                "is a part of the IND refinement model, not a cloud-removal model (use --refine --ind-model {prefix})"
            )
        })
}

/// The bundled models' names (file stems of the `.onnx` files that are a
/// cloud-removal model, see `not_a_model`) in `dirs`, sorted, without
/// repeats.
pub fn bundled_names(dirs: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = onnx_stems(dirs)
        .into_iter()
        .filter(|(d, stem)| not_a_model(d, stem).is_none())
        .map(|(_, stem)| stem)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The bundled `.onnx` file a name stands for, and its stem as it is on
/// disk: the first folder's file of exactly that name, else the one stem
/// that differs from it only in case (`--model PIXEL_CR_RGB`: names are not
/// meant to be case-sensitive). The stem on disk decides what the file is
/// (`not_a_model`), also where the file system ignores case.
fn bundled_file(name: &str, dirs: &[PathBuf]) -> Option<(String, PathBuf)> {
    let stems = onnx_stems(dirs);
    let path = |(d, stem): &(&Path, String)| (stem.clone(), d.join(format!("{stem}.onnx")));
    if let Some(exact) = stems.iter().find(|(_, stem)| stem == name) {
        return Some(path(exact));
    }
    let mut same: Vec<&(&Path, String)> = stems
        .iter()
        .filter(|(_, s)| s.eq_ignore_ascii_case(name))
        .collect();
    // The same stem in two folders is one model (the first folder wins);
    // two stems that differ in case are two, and the name is ambiguous.
    let first = same.first().map(|(_, s)| s.clone())?;
    same.retain(|(_, s)| *s != first);
    same.is_empty().then(|| {
        let hit = stems
            .iter()
            .find(|(_, s)| *s == first)
            .expect("found above");
        path(hit)
    })
}

/// Every `.onnx` file in `dirs` that a name can reach: (its folder, its
/// stem).
fn onnx_stems(dirs: &[PathBuf]) -> Vec<(&Path, String)> {
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok().map(|r| (d, r)))
        .flat_map(|(d, r)| r.filter_map(|e| e.ok()).map(move |e| (d, e)))
        .filter_map(|(d, e)| {
            // A folder or a broken link named *.onnx is no model; the lookup
            // would not take it either.
            if !e.path().is_file() {
                return None;
            }
            let name = e.file_name().to_str()?.to_string();
            let stem = name.strip_suffix(".onnx")?;
            (bundled_name(Path::new(stem)) == Some(stem)).then(|| (d.as_path(), stem.to_string()))
        })
        .collect()
}

/// Whether two paths name the same file (a link, or the working folder
/// being the models folder).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The first `dirs/file` that is a file (the search order of `model_dirs`).
pub fn first_file(dirs: &[PathBuf], file: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(file)).find(|p| p.is_file())
}

/// The first `dirs/name` that is a file; the error lists where it looked
/// and ends with `otherwise` (what else the user can do).
pub fn find_bundled(name: &str, dirs: &[PathBuf], otherwise: &str) -> Result<PathBuf> {
    first_file(dirs, name).ok_or_else(|| {
        let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Error::model(
            name,
            format!(
                "bundled model not found (looked in {}); set IDFCR_MODEL_DIR or {otherwise}",
                looked.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_values_are_bundled_names() {
        for (value, want) in [
            ("pixel_cr_rice1", Some("pixel_cr_rice1")),
            ("s2_10m", Some("s2_10m")),
            ("my-model", Some("my-model")),
            ("pixel_cr_rgb.onnx", Some("pixel_cr_rgb")),
            ("pixel_cr_rgb.ONNX", Some("pixel_cr_rgb")),
            (
                "pixel_cr_rgb.int8_dynamic",
                Some("pixel_cr_rgb.int8_dynamic"),
            ),
            (".onnx", None),
            ("..", None),
            (".hidden", None),
            ("models/pixel_cr_rgb", None),
            ("./pixel_cr_rgb", None),
            ("", None),
            ("../x", None),
        ] {
            assert_eq!(bundled_name(Path::new(value)), want, "{value}");
        }
    }

    #[test]
    fn a_name_finds_the_bundled_file_and_a_wrong_one_lists_the_names() {
        let dir = std::env::temp_dir().join(format!("idfcr-registry-{}", std::process::id()));
        let (first, second) = (dir.join("a"), dir.join("b"));
        for d in [&first, &second] {
            std::fs::create_dir_all(d).unwrap();
        }
        for (d, f) in [
            (&first, "pixel_cr_rgb.onnx"),
            (&second, "pixel_cr_rgb.onnx"),
            (&second, "pixel_cr_rice1.onnx"),
            (&second, "ind_rgb_encoder.onnx"),
            (&second, "ind_rgb_decoder.onnx"),
            (&second, "ind_rgb_denoiser.onnx"),
            (&second, "unet_encoder.onnx"),
            (&second, "s2cloudless.onnx"),
            (&second, "pixel_cr_rgb.md"),
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::fs::create_dir(second.join("folder.onnx")).unwrap();
        let dirs = vec![first.clone(), second.clone()];
        // A user's model whose name merely ends like an IND part is a model.
        assert_eq!(
            model_file_or_name(Path::new("unet_encoder"), &dirs).unwrap(),
            second.join("unet_encoder.onnx")
        );
        // The first folder that has it wins, as for the default model.
        assert_eq!(
            model_file_or_name(Path::new("pixel_cr_rgb"), &dirs).unwrap(),
            first.join("pixel_cr_rgb.onnx")
        );
        assert_eq!(
            model_file_or_name(Path::new("pixel_cr_rice1"), &dirs).unwrap(),
            second.join("pixel_cr_rice1.onnx")
        );
        assert_eq!(
            model_file_or_name(Path::new("pixel_cr_rice1.onnx"), &dirs).unwrap(),
            second.join("pixel_cr_rice1.onnx")
        );
        // Case does not matter; the file's own name is what runs.
        for name in ["PIXEL_CR_RICE1", "Pixel_CR_Rice1.ONNX"] {
            assert_eq!(
                model_file_or_name(Path::new(name), &dirs).unwrap(),
                second.join("pixel_cr_rice1.onnx"),
                "{name}"
            );
        }
        let err = model_file_or_name(Path::new("S2CLOUDLESS"), &dirs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--cloud-detector"), "{err}");
        for (name, says) in [
            ("s2cloudless", "--cloud-detector"),
            ("ind_rgb_encoder", "--ind-model ind_rgb"),
        ] {
            let err = model_file_or_name(Path::new(name), &dirs)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
        let err = model_file_or_name(Path::new("rice1"), &dirs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rice1"), "{err}");
        assert!(
            err.contains("bundled: pixel_cr_rgb, pixel_cr_rice1, unet_encoder;"),
            "{err}"
        );
        let err = model_file_or_name(Path::new("no/such.onnx"), &dirs)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no such file") && !err.contains("bundled"),
            "{err}"
        );
        let err = model_file_or_name(&first, &dirs).unwrap_err().to_string();
        assert!(err.contains("is a folder"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
