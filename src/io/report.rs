//! Text reports (`eval --json/--csv`, `batch --summary`): checked before
//! any work, written through a temp file and a rename, and never over a
//! file that is not an earlier report.

use std::io;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::place::{
    clean_stale_temps, move_into_place, parent_dir, placing, probe_folder, require_parent_dir,
    sync_dir, sync_file, TempFile,
};

/// A report (a JSON summary, a CSV) is written when a possibly long run
/// ends: a missing or read-only folder is found now, before the work, not
/// after it. `-` is standard output.
pub fn check_report_path(path: &Path) -> Result<()> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    if path.is_dir() {
        return Err(Error::output(path, "is a directory"));
    }
    // A device or pipe (/dev/null, a FIFO a script reads) is written
    // directly, not replaced (write_report): nothing to probe beside it.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Ok(());
    }
    check_not_clobbering(path)?;
    probe_folder(path)
}

/// A report replaces an earlier report of ours (a rerun, as a shell
/// redirection would), never another file: `--json scene.tif` must not turn
/// a raster into JSON, nor `--json clouds.geojson` a cloud mask. Ours are
/// recognised by their first bytes: `eval --json` starts with its
/// `"data_range"`, `batch --summary` holds `"interrupted"` and `"failed"`
/// among its first fields, `eval --csv` starts with its header.
fn check_not_clobbering(path: &Path) -> Result<()> {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(()); // none yet (or unreadable: the write says why)
    };
    let mut head = Vec::with_capacity(4096);
    let _ = f.by_ref().take(4096).read_to_end(&mut head);
    if looks_like_report(&head) {
        return Ok(());
    }
    Err(Error::output(
        path,
        "exists and is not an earlier idfcr report (a raster, a cloud mask?); reports replace only their own kind: choose another name",
    ))
}

/// See `check_not_clobbering`; `head` is the file's first bytes.
fn looks_like_report(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start();
    t.is_empty()
        || t.starts_with("pred,reference,band,")
        || (t.starts_with('{')
            && (t.contains("\"data_range\"")
                || (t.contains("\"interrupted\"") && t.contains("\"failed\""))))
}

/// Write a text report (JSON, CSV) to `path`. A regular file (or a new
/// one) is written through a temp file beside it and a rename, so that a
/// full disk or a kill leaves the previous report or none, never a
/// truncated one; a report replaces an older one, as a shell redirection
/// would. Anything else (`/dev/stdout`, a pipe, a symlink) is written in
/// place: replacing it would break what it is.
pub fn write_report(path: &Path, text: &str) -> Result<()> {
    let _placing = placing();
    let fail = |e: io::Error| Error::output(path, format!("cannot write: {e}"));
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => return std::fs::write(path, text).map_err(fail),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(fail(e)),
        _ => {}
    }
    check_not_clobbering(path)?;
    clean_stale_temps(path);
    require_parent_dir(path)?;
    let tmp = TempFile::beside(path, "report").map_err(fail)?;
    std::fs::write(tmp.path(), text).map_err(fail)?;
    sync_file(tmp.path()).map_err(fail)?;
    move_into_place(tmp.path(), path, true).map_err(fail)?;
    tmp.keep();
    sync_dir(parent_dir(path));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_earlier_reports_are_replaced() {
        let cases: [(&[u8], bool); 9] = [
            (b"", true),
            (b"{\n  \"data_range\": 255.0,\n  \"images\": []", true), // eval --json
            (
                b"{\"shard\": null, \"inputs\": 2, \"failed\": 0, \"interrupted\": false",
                true,
            ),
            (b"pred,reference,band,psnr,ssim\na.tif,b.tif,1,30\n", true), // eval --csv
            (b"II*\0\x08\0\0\0", false),                                  // a GeoTIFF
            (b"\x89PNG\r\n\x1a\n", false),                                // a PNG
            (
                b"{\"type\": \"FeatureCollection\", \"features\": []}",
                false,
            ), // a cloud mask
            (b"X,Y,Z\n500000,4000000,12\n", false),                       // Gridded XYZ
            (b"my notes, kept\n", false),
        ];
        for (head, want) in cases {
            assert_eq!(
                looks_like_report(head),
                want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn a_report_never_replaces_another_file() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("scene.tif", &b"II*\0 pixels"[..]),
            ("clouds.geojson", b"{\"type\": \"FeatureCollection\"}"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, body).unwrap();
            let e = write_report(&path, "{}").unwrap_err();
            assert!(e.to_string().contains("not an earlier idfcr report"), "{e}");
            assert_eq!(std::fs::read(&path).unwrap(), body);
        }
        let json = dir.path().join("r.json");
        std::fs::write(&json, "{\"data_range\": 255}").unwrap();
        write_report(&json, "{\"data_range\": 1}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&json).unwrap(),
            "{\"data_range\": 1}"
        );
    }
}
