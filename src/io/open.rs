//! Opening an input with GDAL, in the user's terms: a plain path is
//! checked first (missing, unreadable, a folder, empty), a `/vsizip/` path
//! names its missing archive, a format no driver knows says so, and a
//! dataset GDAL opened with a part left out (a Sentinel-2 band file) is
//! refused rather than read as zeros.

use std::path::Path;

use gdal::Dataset;

use crate::error::{gdal_message, Error, Result};

/// Whether `s` looks like something other than a plain file path (GDAL
/// virtual file systems, subdataset strings such as `SENTINEL2_L2A:...`).
fn is_gdal_special(s: &str) -> bool {
    s.starts_with("/vsi")
        || (!Path::new(s).exists()
            && s.split_once(':').is_some_and(|(prefix, rest)| {
                driver_prefix(prefix) || (url_scheme(prefix) && rest.starts_with("//"))
            }))
}

/// `vrt`, `https`, `s3`: the scheme of a URL-style GDAL name
/// (`vrt://x.tif?bands=1,2,3`, `https://host/x.tif`).
fn url_scheme(prefix: &str) -> bool {
    prefix.len() > 1
        && prefix.starts_with(|c: char| c.is_ascii_alphabetic())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// Whether `prefix` (before the first ':') reads as a GDAL driver's in a
/// subdataset string (`SENTINEL2_L1C`, `GTIFF_DIR`, `NETCDF`, `HDF5`):
/// capitals, digits and underscores. A file name with a time in it
/// (`scene_2024-01-01T10:00.tif`) is a path, missing or not.
fn driver_prefix(prefix: &str) -> bool {
    prefix.len() > 1
        && prefix
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// What is wrong with a plain path before GDAL sees it, in the user's
/// terms: missing, in a folder we may not enter, unreadable, a folder, or
/// empty. (GDAL would report all of these as "cannot open".)
fn check_readable_file(source: &str) -> Result<()> {
    if source.trim().is_empty() {
        return Err(Error::Usage("INPUT is empty: give a raster's path".into()));
    }
    let path = Path::new(source);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            return Err(Error::input(
                source,
                format!(
                    "cannot be reached: permission denied on its folder {}",
                    dir.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::input(source, "no such file"));
        }
        Err(e) => {
            return Err(Error::input(
                source,
                format!("cannot be read: {}", e.kind()),
            ))
        }
    };
    // A pipe would block the open (a FIFO with no writer hangs, deaf to a
    // first Ctrl-C), and a device or socket is no raster file either.
    if !meta.is_dir() && !meta.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let what = if t.is_fifo() {
            "a pipe"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(Error::input(
            source,
            format!("is {what}, not a raster file (GDAL reads a stream as /vsistdin/)"),
        ));
    }
    if meta.is_dir() {
        return if source
            .to_ascii_uppercase()
            .trim_end_matches('/')
            .ends_with(".SAFE")
        {
            Ok(())
        } else {
            Err(Error::input(source, "is a directory, not a raster"))
        };
    }
    if let Err(e) = std::fs::File::open(path) {
        return Err(Error::input(
            source,
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                "cannot be read: permission denied".to_string()
            } else {
                format!("cannot be read: {}", e.kind())
            },
        ));
    }
    if meta.len() == 0 {
        return Err(Error::input(
            source,
            "is an empty file (0 bytes), not a raster",
        ));
    }
    Ok(())
}

/// GDAL's dataset for `source`, with a plain message when no driver knows
/// the format (GDAL itself says nothing then).
pub(crate) fn open_dataset(source: &str) -> Result<Dataset> {
    if !is_gdal_special(source) {
        check_readable_file(source)?;
    } else if let Some(archive) = missing_archive(source) {
        return Err(Error::input(source, format!("no such file: {archive}")));
    } else if let Some(archive) = archive_without(source) {
        return Err(Error::input(
            source,
            format!("no such file in the archive {archive}"),
        ));
    } else if let Some(file) = source
        .strip_prefix("vrt://")
        .and_then(|r| r.split('?').next())
        .filter(|f| !f.is_empty() && !f.starts_with("/vsi"))
        .filter(|f| std::fs::symlink_metadata(f).is_err())
    {
        // GDAL would only say that no driver recognises the name.
        return Err(Error::input(source, format!("no such file: {file}")));
    }
    let watch = crate::error::gdal_watch::GdalWatch::start();
    let ds = Dataset::open(source).map_err(|e| {
        let why = gdal_message(&e);
        // GDAL says nothing when no driver recognises the file (and the
        // crate's "NULL pointer" would only confuse): no source then.
        if crate::error::gdal_said_nothing(&why) {
            return Error::input(
                source,
                "not a raster GDAL can open (no GDAL driver recognises its format)",
            );
        }
        Error::input(source, format!("not a raster GDAL can open ({why})")).because_gdal(e)
    })?;
    check_complete(source, &watch)?;
    Ok(ds)
}

/// A dataset GDAL opened with a part left out (a Sentinel-2 band file
/// missing or unreadable: the driver warns and reads zeros) is an input
/// error, never a run on wrong pixels.
pub(crate) fn check_complete(
    source: &str,
    watch: &crate::error::gdal_watch::GdalWatch,
) -> Result<()> {
    watch.check_nothing_skipped().map_err(|why| {
        Error::input(
            source,
            format!("GDAL could not read all of it, a part is missing or unreadable ({why})"),
        )
    })
}

/// The archive of a `/vsizip/`, `/vsitar/` or `/vsigzip/` path when no
/// file along it exists on disk (GDAL would only say that no driver
/// recognises the format); None when it exists or the path chains another
/// virtual file system.
fn missing_archive(source: &str) -> Option<String> {
    let rest = ["/vsizip/", "/vsitar/", "/vsigzip/"]
        .iter()
        .find_map(|p| source.strip_prefix(p))?;
    if rest.starts_with("/vsi") {
        return None;
    }
    let mut prefixes = rest
        .match_indices('/')
        .map(|(i, _)| &rest[..i])
        .chain([rest]);
    if prefixes.clone().any(|p| Path::new(p).is_file()) {
        return None;
    }
    let archive = prefixes
        .find(|p| {
            let p = p.to_ascii_lowercase();
            [".zip", ".tar", ".tar.gz", ".tgz", ".gz"]
                .iter()
                .any(|e| p.ends_with(e))
        })
        .unwrap_or(rest);
    Some(archive.to_string())
}

/// A palette-indexed band holds colour-table indices, not brightness: the
/// model would clean the indices (and write values the table lacks). The
/// user expands it to RGB first.
pub(crate) fn refuse_palette(
    band: &gdal::raster::RasterBand,
    band_no: usize,
    source: &str,
) -> Result<()> {
    if band.color_interpretation() != gdal::raster::ColorInterpretation::PaletteIndex {
        return Ok(());
    }
    Err(Error::input(
        source,
        format!(
            "band {band_no} is palette-indexed (its values index a colour table); expand it to RGB first: gdal_translate -expand rgb {source} rgb.tif"
        ),
    ))
}

/// The archive of a `/vsizip/`-style path that exists while the file named
/// inside it does not (GDAL would only say that no driver recognises it).
fn archive_without(source: &str) -> Option<&str> {
    let archive = crate::io::names::named_local_file(source).filter(|a| *a != source)?;
    if !crate::io::names::VSI_ARCHIVES
        .iter()
        .any(|v| source.starts_with(v))
    {
        return None;
    }
    let c = std::ffi::CString::new(source).ok()?;
    let mode = std::ffi::CString::new("rb").expect("static");
    // SAFETY: a handle we open and close here, from valid C strings. (Not
    // VSIStatL: its buffer's layout is libc's, not the bindings'.)
    let missing = unsafe {
        let fp = gdal_sys::VSIFOpenL(c.as_ptr(), mode.as_ptr());
        if !fp.is_null() {
            gdal_sys::VSIFCloseL(fp);
        }
        fp.is_null()
    };
    // A folder-type dataset inside the archive (a Zarr, an ESRI grid)
    // opens as no file but lists as a folder.
    let folder = || gdal::vsi::read_dir(source, false).is_ok_and(|e| !e.is_empty());
    (missing && !folder()).then_some(archive)
}

/// The files GDAL reads for `ds` (`GDALGetFileList`): the raster itself,
/// a VRT's sources, a `GTIFF_DIR:` string's file, side files such as
/// `.aux.xml` and `.msk`. Paths inside archives come as `/vsizip/...`.
pub(crate) fn files_read(ds: &Dataset) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    // SAFETY: GDALGetFileList returns a NULL-terminated list of C strings
    // that we own and free with CSLDestroy; each is read before the free.
    unsafe {
        let list = gdal_sys::GDALGetFileList(ds.c_dataset());
        if list.is_null() {
            return files;
        }
        let mut i = 0;
        loop {
            let item = *list.add(i);
            if item.is_null() {
                break;
            }
            let s = std::ffi::CStr::from_ptr(item)
                .to_string_lossy()
                .into_owned();
            files.push(std::path::PathBuf::from(s));
            i += 1;
        }
        gdal_sys::CSLDestroy(list);
    }
    files
}

/// `files_read` of the dataset GDAL opens for `name` (a path or a GDAL
/// string), plus the local file a GDAL string names; empty when it does not
/// open (the run reports that itself).
pub fn files_read_by(name: &str) -> Vec<std::path::PathBuf> {
    match Dataset::open(name) {
        Ok(ds) => sources_of(&ds, name),
        Err(_) => sources_of_name(name, vec![]),
    }
}

/// `files_read` of `ds`, opened from `name`, plus the local file a GDAL
/// string names (`GTIFF_DIR:1:x.tif`): every file an output must not
/// replace.
pub fn sources_of(ds: &Dataset, name: &str) -> Vec<std::path::PathBuf> {
    sources_of_name(name, files_read(ds))
}

fn sources_of_name(name: &str, mut files: Vec<std::path::PathBuf>) -> Vec<std::path::PathBuf> {
    if let Some(f) = crate::io::names::named_local_file(name) {
        files.push(f.into());
    }
    files
}

/// The raster at `path` (a working file of this run) opened for update
/// with `tags` set in its default domain, replacing its own; errors name
/// `for_output`, the file it becomes.
pub fn with_tags(path: &Path, tags: &[(String, String)], for_output: &Path) -> Result<Dataset> {
    use gdal::Metadata;
    let fail = |e: gdal::errors::GdalError| {
        Error::output(for_output, format!("cannot tag it: {}", gdal_message(&e))).because_gdal(e)
    };
    let mut ds = Dataset::open_ex(
        path,
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE | gdal::GdalOpenFlags::GDAL_OF_RASTER,
            ..Default::default()
        },
    )
    .map_err(fail)?;
    for (k, v) in tags {
        ds.set_metadata_item(k, v, "").map_err(fail)?;
    }
    ds.flush_cache().map_err(fail)?;
    Ok(ds)
}

/// The values of `keys` in the default metadata domain of the raster at
/// `path`, or None when GDAL cannot open it (a tag that is missing is a
/// None in its place). For the tags idfcr writes on its outputs.
pub fn dataset_tags(path: &Path, keys: &[&str]) -> Option<Vec<Option<String>>> {
    use gdal::Metadata;
    let ds = Dataset::open(path).ok()?;
    Some(keys.iter().map(|k| ds.metadata_item(k, "")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_gdal_names() {
        for (s, want) in [
            ("/vsizip/a.zip/b.tif", true),
            ("SENTINEL2_L2A:/x/MTD_MSIL2A.xml:10m:EPSG_32632", true),
            ("/tmp/a.tif", false),
            ("a.tif", false),
            ("C:/x.tif", false),
            ("GTIFF_DIR:1:x.tif", true),
            ("NETCDF:\"x.nc\":sst", true),
            ("scene_2024-01-01T10:00.tif", false),
            ("vrt://x.tif?bands=1,2,3", true),
            ("https://example.invalid/x.tif", true),
            ("out/a:b.tif", false),
        ] {
            assert_eq!(is_gdal_special(s), want, "{s}");
        }
    }

    #[test]
    fn missing_archives_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("x.tar.gz"), b"").unwrap();
        std::fs::write(dir.path().join("y.zip"), b"").unwrap();
        // (path, Some(missing archive) or None)
        let cases = [
            (format!("/vsitar/{d}/x.tar.gz/b.tif"), None),
            (format!("/vsizip/{d}/y.zip/in/b.tif"), None),
            (
                format!("/vsizip/{d}/nope.zip/b.tif"),
                Some(format!("{d}/nope.zip")),
            ),
            (
                format!("/vsitar/{d}/z.tar.gz/b.tif"),
                Some(format!("{d}/z.tar.gz")),
            ),
            ("/vsizip//vsicurl/http://h/a.zip/b.tif".to_string(), None),
            (format!("{d}/y.zip"), None),
        ];
        for (path, want) in cases {
            assert_eq!(missing_archive(&path), want, "{path}");
        }
    }
}
