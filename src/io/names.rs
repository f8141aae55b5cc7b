//! Output names from patterns (`batch --name '{stem}_clear.tif'`, `s2 --name
//! '{product}_{group}.tif'`), kept inside the output folder.
//!
//! Substituted values come from file names and from product metadata that
//! anyone can write (a SAFE whose PRODUCT_URI says `../../x`), so they are
//! made safe characters by character: path separators, control characters
//! and a value of only dots cannot survive. The pattern itself is the
//! user's, and must name a file directly inside the folder.

use std::path::{Path, PathBuf};

/// A substituted value made safe for one file name: characters other than
/// letters, digits, `-`, `_` and `.` become `_`, and a value of only dots
/// (`.`, `..`) becomes underscores.
pub fn clean_value(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "_".repeat(clean.len().max(1))
    } else {
        clean
    }
}

/// Check that a name pattern names a file directly inside the output
/// folder: no separators, not absolute, not `.` or `..`. The error says
/// what is wrong, for a usage message.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("is empty".into());
    }
    if pattern.contains(['/', '\\']) {
        return Err("must be a file name inside the output folder, without '/' or '\\' (use the folder option to choose where)".into());
    }
    if pattern == "." || pattern == ".." {
        return Err("must name a file, not a folder".into());
    }
    Ok(())
}

/// The output path for `pattern` with `{key}` replaced by cleaned values,
/// inside `dir`. Err if the pattern is not a plain file name or the result
/// would not be a file directly in `dir`.
pub fn output_path(dir: &Path, pattern: &str, values: &[(&str, &str)]) -> Result<PathBuf, String> {
    check_pattern(pattern)?;
    let mut name = pattern.to_string();
    for (key, value) in values {
        name = name.replace(&format!("{{{key}}}"), &clean_value(value));
    }
    // Checked on the result, so that a brace a value brought in (cleaned
    // values keep none) cannot trip it: what is left is the pattern's own.
    if name.contains(['{', '}']) {
        let known: Vec<String> = values.iter().map(|(k, _)| format!("{{{k}}}")).collect();
        return Err(format!(
            "has a placeholder idfcr does not know or an unmatched brace (it knows {})",
            known.join(", ")
        ));
    }
    let path = Path::new(&name);
    let one_normal = matches!(
        path.components().collect::<Vec<_>>().as_slice(),
        [std::path::Component::Normal(_)]
    );
    if !one_normal {
        return Err(format!(
            "gives '{name}', which is not a file name inside the output folder"
        ));
    }
    Ok(dir.join(name))
}

/// File extensions taken as rasters when `batch` is given a folder;
/// anything else there (summaries, `.ovr`, `.xml` side files) is left alone.
pub const RASTER_EXTENSIONS: &[&str] = &["tif", "tiff", "jp2", "png", "jpg", "jpeg", "vrt", "img"];

/// Whether `path`'s extension (any case) is one of `RASTER_EXTENSIONS`.
pub fn is_raster_name(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| RASTER_EXTENSIONS.contains(&e.as_str()))
}

/// Files that sit beside rasters without being any: GDAL's side files
/// (`.aux.xml`, `.ovr`, `.msk`, world files, ENVI headers, RPC and
/// metadata files, MapInfo `.tab` placement), reports and styles. A folder
/// of predictions to score holds rasters of any format GDAL reads, and
/// these.
const SIDE_EXTENSIONS: &[&str] = &[
    "xml", "ovr", "msk", "aux", "tfw", "tifw", "tiffw", "wld", "pgw", "jgw", "pngw", "prj", "hdr",
    "rpb", "imd", "tab", "json", "csv", "txt", "md", "log", "qml", "sld",
];

/// Whether `path` is a side file (see `SIDE_EXTENSIONS`), or has no
/// extension at all.
pub fn is_side_file(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_none_or(|e| SIDE_EXTENSIONS.contains(&e.as_str()))
}

/// One spelling of the file a path names, for sets of paths: its folder
/// resolved (`..`, symlinked folders) and its name, or the file itself
/// resolved when it is a symlink; made absolute, as written, when its
/// folder does not exist.
pub fn path_key(p: &Path) -> PathBuf {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if p.is_symlink() {
        if let Ok(target) = std::fs::canonicalize(p) {
            return target;
        }
    }
    match (std::fs::canonicalize(dir), p.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    }
}

/// Whether two output paths name the same file, however they are spelled
/// (`o.tif`, `./x/../o.tif`, a symlinked folder): their folders are compared
/// after resolving, then their file names.
pub fn same_target(a: &Path, b: &Path) -> bool {
    fn resolve(p: &Path) -> PathBuf {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match (std::fs::canonicalize(dir), p.file_name()) {
            (Ok(d), Some(name)) => d.join(name),
            _ => p.to_path_buf(),
        }
    }
    if let (Ok(ma), Ok(mb)) = (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        if ma == mb {
            return true;
        }
    }
    resolve(a) == resolve(b)
}

/// A source as the settings line (`IDFCR_SETTINGS`) names it: for a file, its name, size and
/// modification time, so that `--skip-existing` redoes an output whose
/// input differs (two folders' `in/x.tif` run into one output folder, a
/// file replaced under the same name) but not one whose archive moved to
/// another folder or mount. A GDAL string (`/vsizip/a.zip/x.tif`,
/// `GTIFF_DIR:1:x.tif`, a Sentinel-2 subdataset) with the local file it
/// names (`named_local_file`) by name likewise, whatever folder the string
/// spelled (a relative and an absolute spelling of one product's group
/// were two inputs), and that file's size and time: a changed archive is a
/// changed input. Anything else as given.
pub fn source_identity(input: &str) -> String {
    let Some(file) = named_local_file(input) else {
        return input.to_string();
    };
    let m = match std::fs::metadata(file) {
        Ok(m) if m.is_file() => m,
        _ => return input.to_string(),
    };
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let name = Path::new(file)
        .file_name()
        .map_or_else(|| file.into(), |n| n.to_string_lossy());
    // `file` is a slice of `input` (`named_local_file`): the string with
    // that slice named by the file's name alone.
    let start = (file.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
    let named = match input.get(start..start.saturating_add(file.len())) {
        Some(s) if s == file => {
            format!("{}{name}{}", &input[..start], &input[start + file.len()..])
        }
        _ => input.to_string(),
    };
    format!("{named} ({} bytes, modified {mtime})", m.len())
}

/// A name the file system cannot hold (a batch output named after a long
/// input), or whose `.aux.xml` it cannot, failed at the final move after
/// all the work: refused up front. ENAMETOOLONG by errno:
/// ErrorKind::InvalidFilename is newer than our MSRV.
pub(crate) fn check_name_fits(path: &Path) -> crate::error::Result<()> {
    let mut aux = path.as_os_str().to_os_string();
    aux.push(".aux.xml");
    let too_long = |p: &Path| {
        std::fs::symlink_metadata(p).is_err_and(|e| e.raw_os_error() == Some(libc::ENAMETOOLONG))
    };
    if too_long(path) || too_long(Path::new(&aux)) {
        let longest = path
            .components()
            .map(|c| c.as_os_str().len())
            .max()
            .unwrap_or(0);
        return Err(crate::error::Error::output(
            path,
            format!("a name in it ({longest} bytes) is too long for the file system, or leaves no room for GDAL's side file (.aux.xml, 8 bytes more); give a shorter one"),
        ));
    }
    Ok(())
}

/// GDAL's archive prefixes, whose path runs on inside the archive.
pub(crate) const VSI_ARCHIVES: [&str; 5] =
    ["/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/"];

/// The local file or folder a GDAL input string names, as a slice of it:
/// the string itself when it names one; the archive of
/// `/vsizip/a.zip/x.tif` (tar, gzip, 7z and rar alike); in a driver string
/// (`SENTINEL2_L1C:P/MTD_MSIL1C.xml:10m:EPSG_32633`, `GTIFF_DIR:1:x.tif`,
/// `NETCDF:"x.nc":sst`), the first of its `:`-separated parts (quotes
/// off) that names one, or an archive. None for network paths and names
/// of nothing here.
pub(crate) fn named_local_file(input: &str) -> Option<&str> {
    let exists = |p: &str| !p.is_empty() && std::fs::symlink_metadata(p).is_ok();
    if exists(input) {
        return Some(input);
    }
    if let Some(a) = archive_file(input) {
        return Some(a);
    }
    if input.starts_with("/vsi") {
        return None;
    }
    input
        .split(':')
        .skip(1)
        .map(|part| part.trim_matches('"'))
        .find_map(|part| {
            // A file (a folder `1` here is no part of `GTIFF_DIR:1:x.tif`).
            if !part.is_empty() && Path::new(part).is_file() {
                Some(part)
            } else {
                archive_file(part)
            }
        })
}

/// The archive a `/vsizip/a.zip/x.tif` path (tar, gzip, 7z, rar alike)
/// reads from: the longest leading part of its path that is a file.
fn archive_file(p: &str) -> Option<&str> {
    let mut cand = VSI_ARCHIVES.iter().find_map(|v| p.strip_prefix(v))?;
    loop {
        if Path::new(cand).is_file() {
            return Some(cand);
        }
        cand = &cand[..cand.rfind('/').filter(|&i| i > 0)?];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdal_strings_name_their_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("x.tif"), b"tiff").unwrap();
        std::fs::write(dir.path().join("a.zip"), b"zip bytes").unwrap();
        // input -> the file it names
        let cases = [
            (format!("{d}/x.tif"), Some(format!("{d}/x.tif"))),
            (
                format!("/vsizip/{d}/a.zip/x.tif"),
                Some(format!("{d}/a.zip")),
            ),
            (
                format!("/vsizip/{d}/a.zip/in/x.tif"),
                Some(format!("{d}/a.zip")),
            ),
            (format!("GTIFF_DIR:1:{d}/x.tif"), Some(format!("{d}/x.tif"))),
            (
                format!("NETCDF:\"{d}/x.tif\":sst"),
                Some(format!("{d}/x.tif")),
            ),
            (
                format!("SENTINEL2_L1C:/vsizip/{d}/a.zip/P.SAFE/MTD_MSIL1C.xml:10m:EPSG_32633"),
                Some(format!("{d}/a.zip")),
            ),
            ("/vsicurl/https://h/x.tif".into(), None),
            (format!("{d}/missing.tif"), None),
            (format!("/vsizip/{d}/missing.zip/x.tif"), None),
        ];
        for (input, want) in cases {
            assert_eq!(named_local_file(&input).map(String::from), want, "{input}");
        }
        // The settings line: a plain file by name, a GDAL string with the
        // file it names by name (whatever folder it was spelled with), both
        // with the named file's size.
        let id = source_identity(&format!("{d}/x.tif"));
        assert!(id.starts_with("x.tif (4 bytes, modified "), "{id}");
        let id = source_identity(&format!("/vsizip/{d}/a.zip/x.tif"));
        assert!(
            id.starts_with("/vsizip/a.zip/x.tif (9 bytes, modified "),
            "{id}"
        );
        let id = source_identity(&format!("GTIFF_DIR:1:{d}/x.tif"));
        assert!(id.starts_with("GTIFF_DIR:1:x.tif (4 bytes, "), "{id}");
        assert_eq!(
            source_identity("/vsicurl/https://h/x.tif"),
            "/vsicurl/https://h/x.tif"
        );
    }

    #[test]
    fn same_targets() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("x")).unwrap();
        // (a, b, same)
        let cases = [
            ("o.tif", "o.tif", true),
            ("o.tif", "x/../o.tif", true),
            ("o.tif", "./o.tif", true),
            ("o.tif", "x/o.tif", false),
            ("o.tif", "p.tif", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(same_target(&d.join(a), &d.join(b)), want, "{a} {b}");
        }
    }

    #[test]
    fn values_are_cleaned() {
        let cases = [
            ("scene", "scene"),
            ("b c", "b_c"),
            ("../../X", ".._.._X"),
            ("..", "__"),
            (".", "_"),
            ("", "_"),
            ("/abs/path", "_abs_path"),
            ("a\\b", "a_b"),
            ("S2A_MSIL2A.v2", "S2A_MSIL2A.v2"),
            ("x\ny", "x_y"),
        ];
        for (value, want) in cases {
            assert_eq!(clean_value(value), want, "{value:?}");
        }
    }

    #[test]
    fn paths_stay_in_the_folder() {
        let dir = Path::new("/out");
        // (pattern, value of {stem}, Ok(file name) or Err)
        let cases: [(&str, &str, Option<&str>); 12] = [
            ("{stem}_clear.tif", "scene", Some("scene_clear.tif")),
            ("{stem}", "..", Some("__")),
            ("{stem}.tif", "../../etc/x", Some(".._.._etc_x.tif")),
            ("../../X_{stem}.tif", "a", None),
            ("/tmp/{stem}.tif", "a", None),
            ("sub/{stem}.tif", "a", None),
            ("..", "a", None),
            ("", "a", None),
            ("{stem}", "", Some("_")),
            ("{foo}.tif", "a", None),
            ("{stem", "a", None),
            ("{stem}}.tif", "a", None),
        ];
        for (pattern, stem, want) in cases {
            let got = output_path(dir, pattern, &[("stem", stem)]);
            match want {
                Some(name) => assert_eq!(got, Ok(dir.join(name)), "{pattern} {stem}"),
                None => assert!(got.is_err(), "{pattern} {stem}: {got:?}"),
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn path_keys_spell_one_file_one_way() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("in")).unwrap();
        std::fs::write(d.join("in/a.tif"), b"x").unwrap();
        std::os::unix::fs::symlink(d.join("in"), d.join("link")).unwrap();
        std::os::unix::fs::symlink(d.join("in/a.tif"), d.join("in/b.tif")).unwrap();
        let key = |p: &str| path_key(&d.join(p));
        // (two spellings, the same file?)
        let cases = [
            ("in/a.tif", "in/../in/a.tif", true),
            ("in/a.tif", "link/a.tif", true),
            ("in/new.tif", "link/new.tif", true), // not there yet: an output
            ("in/b.tif", "in/a.tif", true),       // a symlinked file
            ("in/a.tif", "in/c.tif", false),
            // No folder: as written, but absolute (`.` dropped, `..` kept).
            ("gone/a.tif", "gone/./a.tif", true),
            ("gone/a.tif", "gone/x/../a.tif", false),
        ];
        for (a, b, same) in cases {
            assert_eq!(key(a) == key(b), same, "{a} {b}");
        }
    }
}
