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

/// A report replaces an earlier report (a rerun, as a shell redirection
/// would), never another kind of file: `--json scene.tif` must not turn a
/// raster into JSON. An existing file is taken for a report when it is
/// text without NUL bytes that starts as JSON does or whose first line
/// holds a comma (CSV).
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
        "exists and is not a JSON or CSV report (a raster?); reports replace only earlier reports: choose another name",
    ))
}

/// See `check_not_clobbering`; `head` is the file's first bytes.
fn looks_like_report(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    // The 4096th byte may cut a character in two.
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if head.len() - e.valid_up_to() < 4 && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    let t = text.trim_start();
    t.is_empty() || t.starts_with(['{', '[']) || t.lines().next().is_some_and(|l| l.contains(','))
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
        let cases: [(&[u8], bool); 8] = [
            (b"", true),
            (b"{\n \"mean\": 1\n}", true),
            (b"  [1, 2]", true),
            (b"pred,reference,band,psnr\na.tif,b.tif,1,30\n", true),
            (b"II*\0\x08\0\0\0", false),   // a GeoTIFF
            (b"\x89PNG\r\n\x1a\n", false), // a PNG
            (b"my notes, kept\n", true),   // one comma: taken for CSV
            (b"plain notes\n", false),
        ];
        for (head, want) in cases {
            assert_eq!(
                looks_like_report(head),
                want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        // A character cut in two by the 4096-byte head is still text.
        let mut cut = "{\"a\": \"".as_bytes().to_vec();
        cut.extend_from_slice(&"é".as_bytes()[..1]);
        assert!(looks_like_report(&cut));
    }

    #[test]
    fn a_report_never_replaces_a_raster() {
        let dir = tempfile::tempdir().unwrap();
        let tif = dir.path().join("scene.tif");
        std::fs::write(&tif, b"II*\0 pixels").unwrap();
        let e = write_report(&tif, "{}").unwrap_err();
        assert!(e.to_string().contains("not a JSON or CSV report"), "{e}");
        assert_eq!(std::fs::read(&tif).unwrap(), b"II*\0 pixels");
        let json = dir.path().join("r.json");
        std::fs::write(&json, "{\"old\": 1}").unwrap();
        write_report(&json, "{\"new\": 1}").unwrap();
        assert_eq!(std::fs::read_to_string(&json).unwrap(), "{\"new\": 1}");
    }
}
