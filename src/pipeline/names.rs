//! How `batch` names each input's files: `--name` and `--mask-name` with
//! their placeholders, each input's `--cloud-mask`, which of the files a
//! folder or pattern names are not inputs (another input's cloud mask or
//! output), and what keeps two inputs' outputs apart.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Output path for `input` in `dir`: in `pattern`, `{stem}` is the input's
/// file name without extension, `{ext}` its extension and `{parent}` the
/// name of its folder, each made safe for one file name (see `names`); Err
/// when the pattern would leave the folder.
pub fn output_path(dir: &Path, pattern: &str, input: &str) -> Result<PathBuf> {
    crate::io::names::output_path(dir, pattern, &name_parts(input))
        .map_err(|e| Error::Usage(format!("--name '{pattern}' {e}")))
}

/// `{stem}`, `{ext}` and `{parent}` of an input.
fn name_parts(input: &str) -> [(&'static str, &str); 3] {
    let mut parts = input.rsplit(['/', '\\']);
    let base = parts.next().unwrap_or(input);
    let parent = parts.find(|p| !p.is_empty() && *p != ".").unwrap_or("");
    let (stem, ext) = match base.rfind('.') {
        Some(i) if i > 0 => (&base[..i], &base[i + 1..]),
        _ => (base, ""),
    };
    [("stem", stem), ("ext", ext), ("parent", parent)]
}

/// The inputs that are not some input's `--cloud-mask` (a folder or glob
/// of scenes and their masks side by side names both). A pattern that makes
/// an input its own mask ('{stem}.tif') would drop every input and report
/// success over nothing: a usage error.
pub fn without_cloud_masks(inputs: Vec<String>, pattern: &str) -> Result<Vec<String>> {
    let key = crate::io::names::path_key;
    // Masks of other inputs (a.tif beside a.png with '{stem}.tif') are not
    // scenes; an input left that is its own mask is a pattern mistake.
    let masks: std::collections::HashSet<PathBuf> = inputs
        .iter()
        .map(|i| (key(Path::new(i)), key(&cloud_mask_path(pattern, i))))
        .filter(|(i, m)| i != m)
        .map(|(_, m)| m)
        .collect();
    let scenes: Vec<String> = inputs
        .into_iter()
        .filter(|i| !masks.contains(&key(Path::new(i))))
        .collect();
    if let Some(i) = scenes
        .iter()
        .find(|i| key(&cloud_mask_path(pattern, i)) == key(Path::new(i)))
    {
        return Err(Error::Usage(format!(
            "--cloud-mask {pattern}: that names each input itself ({i} would be its own mask); give the masks their own names, e.g. '{{stem}}_mask.tif'"
        )));
    }
    if scenes.is_empty() {
        return Err(Error::Usage(format!(
            "--cloud-mask {pattern}: every input is another input's mask; nothing is left to process"
        )));
    }
    Ok(scenes)
}

/// The inputs that are not another input's output or `--mask-name` mask
/// made by idfcr (`made_by`: `made_by_idfcr`), and those left out. A batch
/// that writes into the folder it reads (`batch in --out-dir in`) would
/// otherwise take its own outputs as inputs on the next run, and refuse it
/// (an output that is an input), `--skip-existing` or not. A file of the
/// user's at an output name stays in, and so does an input that is its own
/// output: `plan` refuses both. A pattern `plan` refuses leaves every input in.
pub fn without_own_outputs(
    inputs: Vec<String>,
    out_dir: &Path,
    name: &str,
    mask_name: Option<&str>,
    made_by: impl Fn(&Path) -> bool,
) -> (Vec<String>, Vec<String>) {
    let key = crate::io::names::path_key;
    let mut written: std::collections::HashMap<PathBuf, Vec<PathBuf>> = Default::default();
    for i in &inputs {
        let own = key(Path::new(i));
        for pattern in std::iter::once(name).chain(mask_name) {
            if let Ok(out) = output_path(out_dir, pattern, i) {
                written.entry(key(&out)).or_default().push(own.clone());
            }
        }
    }
    let (kept, left): (Vec<String>, Vec<String>) = inputs.into_iter().partition(|i| {
        let own = key(Path::new(i));
        let output_of_another = written
            .get(&own)
            .is_some_and(|sources| sources.iter().any(|s| *s != own));
        !(output_of_another && made_by(Path::new(i)))
    });
    (kept, left)
}

/// The inputs a batch runs, and the files it leaves out as its own
/// outputs (`without_own_outputs`), then without the inputs' cloud masks
/// (`without_cloud_masks`, with `cloud_mask`: its pattern). In this order:
/// last run's outputs beside the inputs would otherwise be taken for inputs
/// that are their own cloud mask ('{stem}.tif' beside `a.png`), and refused.
pub fn batch_inputs(
    inputs: Vec<String>,
    out_dir: &Path,
    name: &str,
    mask_name: Option<&str>,
    cloud_mask: Option<&str>,
    made_by: impl Fn(&Path) -> bool,
) -> Result<(Vec<String>, Vec<String>)> {
    let (inputs, left) = without_own_outputs(inputs, out_dir, name, mask_name, made_by);
    let inputs = match cloud_mask {
        Some(pattern) => without_cloud_masks(inputs, pattern)?,
        None => inputs,
    };
    Ok((inputs, left))
}

/// The `--cloud-mask` of `input`: the pattern with its placeholders
/// filled in, relative to the input's folder (so that `{stem}_SCL.tif`
/// finds each input's mask beside it).
pub fn cloud_mask_path(pattern: &str, input: &str) -> PathBuf {
    let path = name_parts(input)
        .iter()
        .fold(pattern.to_string(), |p, (k, v)| {
            p.replace(&format!("{{{k}}}"), v)
        });
    let dir = crate::io::place::parent_dir(Path::new(input));
    dir.join(path)
}

/// How to keep two inputs' files apart, given each input with the pattern
/// (`--name` or `--mask-name`) that named its file: the placeholder whose
/// values differ and the pattern lacks, else why none can.
pub(crate) fn collision_hint(a: (&str, &str), b: (&str, &str)) -> String {
    let ((a, a_pattern), (b, b_pattern)) = (a, b);
    if a_pattern != b_pattern {
        return format!(
            "one's --name and the other's --mask-name ('{a_pattern}', '{b_pattern}') give the same file; make the patterns differ beyond their placeholders (e.g. --mask-name '{{stem}}_cloud.tif')"
        );
    }
    let value = |i: &str, key: &str| -> String {
        let parts = name_parts(i);
        parts
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    let clean = crate::io::names::clean_value;
    let keys = ["stem", "parent", "ext"];
    // A placeholder that tells them apart and the pattern does not use.
    if let Some(key) = keys.iter().find(|k| {
        !a_pattern.contains(&format!("{{{k}}}")) && clean(&value(a, k)) != clean(&value(b, k))
    }) {
        let example = match *key {
            "stem" => "'{stem}_clear.tif'",
            "parent" => "'{parent}_{stem}_clear.tif'",
            _ => "'{stem}_{ext}_clear.tif'",
        };
        return format!("keep them apart with {{{key}}} in the pattern (e.g. {example})");
    }
    if keys.iter().any(|k| value(a, k) != value(b, k)) {
        return "their names differ only in characters that the placeholders replace with '_' (anything but letters, digits, '-', '_' and '.'), so no placeholder keeps them apart: rename one, or run them into separate --out-dir folders".into();
    }
    "their file names and folder names are the same (folders further up differ, which no placeholder names): run them into separate --out-dir folders".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names() {
        let cases = [
            (
                "{stem}_clear.tif",
                "/data/T32TQM_20240101.tif",
                "T32TQM_20240101_clear.tif",
            ),
            ("{stem}.tif", "scene.v2.jp2", "scene.v2.tif"),
            ("out_{stem}.tif", "/vsizip/a.zip/b c.tif", "out_b_c.tif"),
            ("{stem}_clear.tif", "noext", "noext_clear.tif"),
        ];
        for (pattern, input, want) in cases {
            let got = output_path(Path::new("/o"), pattern, input).unwrap();
            assert_eq!(got, Path::new("/o").join(want), "{input}");
        }
        for pattern in [
            "../../X_{stem}.tif",
            "/tmp/{stem}.tif",
            "a/{stem}.tif",
            "..",
        ] {
            assert!(
                output_path(Path::new("/o"), pattern, "x.tif").is_err(),
                "{pattern}"
            );
        }
        let got = output_path(Path::new("/o"), "{stem}", "/d/...tif").unwrap();
        assert_eq!(got, Path::new("/o/__"));
    }

    #[test]
    fn cloud_masks_among_the_inputs() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (inputs, --cloud-mask pattern, what comes out)
        // Ok(the scenes left) or Err(words of the error)
        type Want = std::result::Result<&'static [&'static str], &'static str>;
        let cases: [(&[&str], &str, Want); 4] = [
            (
                &["/d/a.tif", "/d/a_m.tif", "/d/b.tif"],
                "{stem}_m.tif",
                Ok(&["/d/a.tif", "/d/b.tif"]),
            ),
            (&["/d/a.tif"], "masks/{stem}.tif", Ok(&["/d/a.tif"])),
            // A mask's own mask (a_m_m.tif) is not an input: a_m stays out.
            (
                &["/d/a.tif", "/d/a_m.tif"],
                "{stem}_m.tif",
                Ok(&["/d/a.tif"]),
            ),
            (&["/d/a.tif", "/d/b.tif"], "{stem}.tif", Err("its own mask")),
        ];
        // A scene and its mask side by side under one stem: a.tif is
        // a.png's mask, not its own.
        let mixed = without_cloud_masks(list(&["/d/a.png", "/d/a.tif"]), "{stem}.tif");
        assert_eq!(mixed.unwrap(), list(&["/d/a.png"]));
        for (inputs, pattern, want) in cases {
            match (without_cloud_masks(list(inputs), pattern), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, list(w), "{pattern}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{pattern}: {e}"),
                (got, w) => panic!("{pattern}: {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn own_outputs_among_the_inputs() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (inputs, --name, --mask-name, files idfcr made, kept, left out)
        type Case<'a> = (
            &'a [&'a str],
            &'a str,
            Option<&'a str>,
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: [Case; 6] = [
            // A rerun into the input folder: last run's outputs are not inputs.
            (
                &["/d/a.tif", "/d/a_clear.tif"],
                "{stem}_clear.tif",
                None,
                &["/d/a_clear.tif"],
                &["/d/a.tif"],
                &["/d/a_clear.tif"],
            ),
            // Masks of the last run too.
            (
                &["/d/a.tif", "/d/a_p.tif"],
                "{stem}_clear.tif",
                Some("{stem}_p.tif"),
                &["/d/a_p.tif"],
                &["/d/a.tif"],
                &["/d/a_p.tif"],
            ),
            // A file of the user's at an output name stays (plan refuses it).
            (
                &["/d/a.tif", "/d/a_clear.tif"],
                "{stem}_clear.tif",
                None,
                &[],
                &["/d/a.tif", "/d/a_clear.tif"],
                &[],
            ),
            // Another folder's a_clear.tif is not /d/a.tif's output.
            (
                &["/d/a.tif", "/e/a_clear.tif"],
                "{stem}_clear.tif",
                None,
                &["/e/a_clear.tif"],
                &["/d/a.tif", "/e/a_clear.tif"],
                &[],
            ),
            // An input that is its own output stays, for plan to refuse.
            (
                &["/d/a.tif"],
                "{stem}.tif",
                None,
                &["/d/a.tif"],
                &["/d/a.tif"],
                &[],
            ),
            // Nothing to leave out.
            (
                &["/d/a.tif", "/d/b.tif"],
                "{stem}_clear.tif",
                None,
                &["/d/a.tif"],
                &["/d/a.tif", "/d/b.tif"],
                &[],
            ),
        ];
        for (inputs, name, mask, made, kept, left) in cases {
            let made_by = |p: &Path| made.iter().any(|m| Path::new(m) == p);
            let (k, l) = without_own_outputs(list(inputs), Path::new("/d"), name, mask, made_by);
            assert_eq!((k, l), (list(kept), list(left)), "{inputs:?} {name}");
        }
    }

    #[test]
    fn collision_hints_name_a_placeholder_that_helps() {
        let n = "{stem}_clear.tif";
        // ((first input, its pattern), (second, its pattern), words of the hint)
        let cases = [
            (("a/x.tif", n), ("b/x.tif", n), "{parent}"),
            (("d/x.tif", n), ("d/x.png", n), "{ext}"),
            (("d/x.tif", "clear.tif"), ("d/y.tif", "clear.tif"), "{stem}"),
            (
                ("d/x.tif", "{parent}.tif"),
                ("d/y.tif", "{parent}.tif"),
                "{stem}",
            ),
            (("d/a b.tif", n), ("d/a_b.tif", n), "rename one"),
            (("d/a(1).tif", n), ("d/a_1_.tif", n), "rename one"),
            (("a b/x.tif", n), ("a_b/x.tif", n), "rename one"),
            (
                ("2023/T32/x.tif", n),
                ("2024/T32/x.tif", n),
                "folders further up",
            ),
            (
                ("d/a.tif", "{stem}.tif"),
                ("d/a_p.tif", "{stem}_p.tif"),
                "--mask-name",
            ),
        ];
        for (a, b, want) in cases {
            let hint = collision_hint(a, b);
            assert!(hint.contains(want), "{a:?} {b:?}: {hint}");
        }
    }

    #[test]
    fn last_runs_outputs_go_before_the_cloud_masks_are_sorted_out() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // a.png with its mask a.tif beside it, and last run's a_clear.tif:
        // as an input, a_clear.tif would be its own mask ('{stem}.tif').
        let made_by = |p: &Path| p == Path::new("/d/a_clear.tif");
        let inputs = list(&["/d/a.png", "/d/a.tif", "/d/a_clear.tif"]);
        let got = batch_inputs(
            inputs.clone(),
            Path::new("/d"),
            "{stem}_clear.tif",
            None,
            Some("{stem}.tif"),
            made_by,
        );
        assert_eq!(
            got.unwrap(),
            (list(&["/d/a.png"]), list(&["/d/a_clear.tif"]))
        );
        // Without last run's outputs left out first, it is refused.
        assert!(without_cloud_masks(inputs, "{stem}.tif").is_err());
    }
}
