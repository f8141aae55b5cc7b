//! Placing finished files safely: temp files beside the output with
//! unpredictable names, created with `O_EXCL` (a planted file or symlink
//! makes creation fail instead of being followed) and deleted by a guard on
//! every early return, error or interrupt; temp files of killed runs cleaned
//! by the next run into the same folder; outputs checked before any work;
//! the finished file read back, fsynced and moved into place without
//! replacing anything that appeared meanwhile (unless `--overwrite`).

use std::io;
use std::path::{Path, PathBuf};

use gdal::Dataset;

use crate::error::gdal_watch::GdalWatch;
use crate::error::{gdal_message, Error, Result};

/// A file that is deleted on drop unless `keep` was called.
pub struct TempFile {
    path: PathBuf,
    armed: bool,
}

/// The marker in every temp name: `.NAME.idfcr-PID-HOST-RANDOM-TAG.tif`.
const TEMP_MARK: &str = ".idfcr-";

impl TempFile {
    /// Create a new empty hidden file beside `final_path` (same directory,
    /// so the final rename is atomic): `.NAME.idfcr-PID-HOST-RANDOM-TAG.tif`,
    /// created with `O_EXCL` and the user's umask.
    pub fn beside(final_path: &Path, tag: &str) -> io::Result<Self> {
        let dir = parent_dir(final_path);
        let name = final_path
            .file_name()
            .map(|n| temp_stem(&n.to_string_lossy()))
            .unwrap_or_else(|| "out".into());
        debug_assert!(TEMP_TAGS.contains(&tag), "unknown temp tag {tag}");
        let (prefix, suffix) = (
            format!(".{name}{TEMP_MARK}{}-{}-", std::process::id(), host_tag()),
            format!("-{tag}.tif"),
        );
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix).suffix(&suffix).rand_bytes(12);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The mode goes to open(2), so the umask applies as for any new file.
            b.permissions(std::fs::Permissions::from_mode(0o666));
        }
        // Created and listed under one lock: a forced exit never misses it.
        let mut live = live();
        let (_file, path) = b.tempfile_in(dir)?.keep().map_err(|e| e.error)?;
        live.temps.push(path.clone());
        Ok(TempFile { path, armed: true })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn keep(mut self) {
        self.armed = false;
        forget_temp(&self.path);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            remove_temp(&self.path);
            forget_temp(&self.path);
        }
    }
}

/// This process's armed temp files and the moves into place under way. A
/// second Ctrl-C exits at once, without unwinding to the guards
/// (`remove_temps_then`); creating a temp file and starting a move take
/// the same lock, so none starts behind that exit's back.
struct Live {
    temps: Vec<PathBuf>,
    placing: usize,
}

static LIVE: std::sync::Mutex<Live> = std::sync::Mutex::new(Live {
    temps: Vec::new(),
    placing: 0,
});

fn live() -> std::sync::MutexGuard<'static, Live> {
    // A panic elsewhere while holding it leaves the list itself intact.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn forget_temp(path: &Path) {
    live().temps.retain(|p| p != path);
}

/// A temp file and every side file GDAL may have left beside it (the COG
/// driver's `.ovr.tmp` while it builds overviews).
fn remove_temp(path: &Path) {
    let _ = std::fs::remove_file(path);
    for (side, _) in crate::io::side_files::side_names(path) {
        let _ = std::fs::remove_file(side);
    }
    let mut ovr_tmp = path.as_os_str().to_os_string();
    ovr_tmp.push(".ovr.tmp");
    let _ = std::fs::remove_file(ovr_tmp);
}

/// Held while files are moved into place. `s2` moves the files it replaces
/// aside into temp files before placing the new ones: a forced exit that
/// deleted those midway would lose the user's files.
pub(crate) struct Placing(());

pub(crate) fn placing() -> Placing {
    live().placing += 1;
    Placing(())
}

impl Drop for Placing {
    fn drop(&mut self) {
        live().placing -= 1;
    }
}

/// The forced exit (a second Ctrl-C): remove every armed temp file, then
/// `end(code)` (which does not return), holding the lock to the end. Never during
/// a move into place: it waits for that, and after half a minute ends
/// leaving the temp files (which the next run into the folder cleans)
/// rather than risk the files a move set aside.
pub fn remove_temps_then(end: fn(i32) -> !, code: i32) -> ! {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let live = live();
        if live.placing == 0 {
            live.temps.iter().for_each(|p| remove_temp(p));
            end(code);
        }
        drop(live);
        if std::time::Instant::now() > deadline {
            end(code);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `msg` (a GDAL warning about a file being written) with each temp name
/// of ours given as the final name it stands for: `/d/.o.tif.idfcr-...-final.tif`
/// becomes `/d/o.tif` (a long name as its bounded stem).
pub(crate) fn final_names_in(msg: &str) -> String {
    let mut out = msg.to_string();
    while let Some(mark) = out.find(TEMP_MARK) {
        // The name starts with the '.' after the last '/' (or space) before it.
        let start = out[..mark].rfind(['/', ' ', '\'']).map_or(0, |i| i + 1);
        let Some(end) = out[mark..].find(".tif").map(|e| mark + e + 4) else {
            break;
        };
        let name = out[start..mark]
            .strip_prefix('.')
            .unwrap_or(&out[start..mark])
            .to_string();
        out.replace_range(start..end, &name);
    }
    out
}

/// The output's name as it appears in its temp names. A temp name adds at
/// most 49 bytes to it, and temps nest three deep (`s2`'s staged product,
/// `--refine`'s stage 1 inside it, its working file), while file systems
/// stop at 255: a long name is cut and tagged with a hash of the whole, so
/// every valid output name gets temp names that are valid.
fn temp_stem(name: &str) -> String {
    const KEEP: usize = 95;
    // A temp file of ours (the outer one of a nested temp) is already
    // bounded (at most about 200 bytes), and is kept whole so that the
    // stale-temp cleaning still recognises its nested temps.
    if name.len() <= KEEP + 10 || (name.starts_with('.') && name.contains(TEMP_MARK)) {
        return name.to_string();
    }
    let mut cut = KEEP;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let h = name.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    });
    format!("{}~{h:08x}", &name[..cut])
}

/// A short tag of this machine for temp names, so that a run never takes
/// another machine's temp files (batch shards on NFS) for a dead process's.
fn host_tag() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    // FNV-1a, 32 bits: stable across runs and builds.
    let h = host.trim().bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    });
    format!("{h:08x}")
}

/// The tags `TempFile::beside` is called with; only these are cleaned.
const TEMP_TAGS: &[&str] = &[
    "probe", "part", "final", "pixelcr", "prob", "report", "stage", "backup",
];

/// Remove temp files that runs killed by SIGKILL, a power cut or an OOM
/// left beside `final_path` (a file such a run had moved aside to replace
/// goes back to `final_path` when that name is free). Only files that are certainly ours: named
/// `.NAME.idfcr-PID-HOST-RANDOM-TAG.tif` (or that name's GDAL side files,
/// or a nested temp of one, as `--refine`'s stage 1 makes), made on this
/// machine, owned by this user, by a process that no longer exists (Linux,
/// where /proc says so; elsewhere nothing is cleaned).
pub(crate) fn clean_stale_temps(final_path: &Path) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Some(name) = final_path
            .file_name()
            .map(|n| temp_stem(&n.to_string_lossy()))
        else {
            return;
        };
        let Ok(me) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return;
        };
        // Nested temps add a leading dot per level (`..NAME.idfcr-...`).
        let prefix = format!("{}{TEMP_MARK}", name.trim_start_matches('.'));
        let host = host_tag();
        let Ok(entries) = std::fs::read_dir(parent_dir(final_path)) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            let Some(rest) = file
                .strip_prefix('.')
                .and_then(|f| f.trim_start_matches('.').strip_prefix(&prefix))
            else {
                continue;
            };
            // PID-HOST-RANDOM-TAG.tif[...]
            let parts: Vec<&str> = rest.splitn(4, '-').collect();
            let [pid, h, rand, tail] = parts[..] else {
                continue;
            };
            let ours = h == host
                && rand.len() == 12
                && TEMP_TAGS
                    .iter()
                    // TAG.tif, its .aux.xml/.ovr/.msk, or its TAG.tfw world file
                    .any(|t| tail.starts_with(&format!("{t}.")));
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            let owner_ok = entry.metadata().map(|m| m.uid() == me).unwrap_or(false);
            if ours
                && owner_ok
                && pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                // The file a killed run had set aside to replace is the
                // user's: back to its name if that is still free.
                if tail == "backup.tif" && std::fs::symlink_metadata(final_path).is_err() {
                    let _ = std::fs::rename(entry.path(), final_path);
                } else {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// `path`'s folder, or the error that it does not exist.
pub(crate) fn require_parent_dir(path: &Path) -> Result<&Path> {
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(Error::output(
            path,
            format!("directory {} does not exist", dir.display()),
        ));
    }
    Ok(dir)
}

/// Refuse to clobber (the output, and the world file that
/// `creation_options` may add beside it), and fail early on a directory we
/// cannot write to.
pub fn check_output_path(
    path: &Path,
    overwrite: bool,
    creation_options: &[(String, String)],
) -> Result<()> {
    if path.is_dir() {
        // The name is taken, as by a file (exit 1, not a usage error): in a
        // batch it is that input's failure, and its JSON line says so alike.
        return Err(Error::output(
            path,
            "names a folder that exists; an output is a file (give another name, or move the folder)",
        ));
    }
    // A device, pipe or socket (/dev/stdout, /dev/sda): the finished raster
    // is moved over the name, which would replace the special file itself
    // (as root, in /dev). Rasters go to regular files.
    if path.metadata().is_ok_and(|m| !m.is_file()) {
        return Err(Error::output(
            path,
            "is not a regular file (a device or pipe); write the raster to a file",
        ));
    }
    crate::io::names::check_name_fits(path)?;
    // First: a killed run's backup of the file it was replacing goes back
    // to its name here, and the name is then taken (the check below must
    // see it, not the final move after all the work).
    clean_stale_temps(path);
    // symlink_metadata: a link to a missing file is a name taken too (the
    // final move would find it so, after all the work).
    if std::fs::symlink_metadata(path).is_ok() && !overwrite {
        let what = if path.exists() {
            "already exists (use --overwrite to replace it)"
        } else {
            "already exists as a link to a missing file (use --overwrite to replace the link)"
        };
        return Err(Error::output(path, what));
    }
    crate::io::side_files::check_world_file(
        path,
        overwrite,
        crate::io::side_files::writes_world_file(creation_options),
    )?;
    probe_folder(path)
}

/// Whether a file can be created beside `path`: its folder exists and a
/// probe file can be written there (the only reliable test is writing).
pub(crate) fn probe_folder(path: &Path) -> Result<()> {
    let dir = require_parent_dir(path)?;
    TempFile::beside(path, "probe").map_err(|e| {
        Error::output(
            path,
            format!("cannot write in {}: {}", dir.display(), e.kind()),
        )
    })?;
    Ok(())
}

/// Move the finished `tmp` to `final_path`. Without `overwrite`, an output
/// that appeared since the run started (another run, another program) is
/// never replaced: a hard link is created atomically only if the name is
/// free. File systems without hard links fall back to check-then-rename.
pub(crate) fn move_into_place(tmp: &Path, final_path: &Path, overwrite: bool) -> io::Result<()> {
    if overwrite {
        return std::fs::rename(tmp, final_path);
    }
    match std::fs::hard_link(tmp, final_path) {
        Ok(()) => {
            std::fs::remove_file(tmp)?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if std::fs::symlink_metadata(final_path).is_err() => {
            std::fs::rename(tmp, final_path)
        }
        Err(e) => Err(e),
    }
}

/// fsync a file, then its directory (so the rename itself is durable).
pub(crate) fn sync_file(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

pub(crate) fn sync_dir(dir: &Path) {
    // Some file systems refuse fsync on a directory; the data is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Read every block of every band (and overview) of `path` back: a file
/// that a full disk truncated fails here, not in the user's GIS.
pub fn verify_readable(path: &Path) -> std::result::Result<(), String> {
    let watch = GdalWatch::start();
    let ds = Dataset::open(path).map_err(|e| gdal_message(&e))?;
    let (w, h) = ds.raster_size();
    for b in 1..=ds.raster_count() {
        let band = ds.rasterband(b).map_err(|e| gdal_message(&e))?;
        // GDALChecksumImage reads the whole band block by block.
        unsafe {
            gdal_sys::GDALChecksumImage(band.c_rasterband(), 0, 0, w as i32, h as i32);
        }
        for o in 0..band.overview_count().unwrap_or(0) {
            if let Ok(ov) = band.overview(o as usize) {
                let (ow, oh) = ov.size();
                unsafe {
                    gdal_sys::GDALChecksumImage(ov.c_rasterband(), 0, 0, ow as i32, oh as i32);
                }
            }
        }
    }
    drop(ds);
    watch.check()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_name_final_files_not_temps() {
        let cases = [
            (
                "/d/.o.tif.idfcr-26193-4049c22c-PBIQtB0W7zCo-final.tif, band 1: clipped.",
                "/d/o.tif, band 1: clipped.",
            ),
            (".o.tif.idfcr-1-2-abc-part.tif: x", "o.tif: x"),
            // A nested temp (a temp of a temp) names the outer file.
            (
                "/d/..o.tif.idfcr-1-2-a-part.tif.idfcr-1-2-b-final.tif, band 2: y",
                "/d/o.tif, band 2: y",
            ),
            ("no temp here", "no temp here"),
        ];
        for (msg, want) in cases {
            assert_eq!(final_names_in(msg), want, "{msg}");
        }
    }

    #[test]
    fn long_output_names_get_temp_names_a_file_system_takes() {
        let dir = tempfile::tempdir().unwrap();
        // (name length, kept whole in temp names)
        for (len, whole) in [(10, true), (105, true), (106, false), (250, false)] {
            let name = format!(
                "{}.tif",
                "é".repeat((len - 4) / 2) + &"a".repeat((len - 4) % 2)
            );
            assert_eq!(name.len(), len);
            let target = dir.path().join(&name);
            let t = TempFile::beside(&target, "part").unwrap();
            let temp = t.path().file_name().unwrap().to_string_lossy().to_string();
            assert_eq!(
                temp.starts_with(&format!(".{name}.idfcr-")),
                whole,
                "{temp}"
            );
            assert!(temp.len() <= 160, "{len}: {} bytes", temp.len());
            // Nested temps (s2's staged product, --refine's stage 1 in it,
            // its working file) still fit.
            let nested = TempFile::beside(t.path(), "pixelcr").unwrap();
            let deepest = TempFile::beside(nested.path(), "part").unwrap();
            assert!(deepest.path().exists());
        }
        // A killed run's nested temps of a long name are cleaned like any.
        let long = dir.path().join("n".repeat(200) + ".tif");
        let outer = TempFile::beside(&long, "stage").unwrap();
        let middle = TempFile::beside(outer.path(), "pixelcr").unwrap();
        let nested = TempFile::beside(middle.path(), "part").unwrap();
        let (o, n) = (outer.path().to_path_buf(), nested.path().to_path_buf());
        middle.keep();
        let dead = |p: &Path| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let pid = format!("{}-", std::process::id());
            let renamed = p.with_file_name(name.replacen(&pid, "4194305-", 1));
            std::fs::rename(p, &renamed).unwrap();
            renamed
        };
        outer.keep();
        nested.keep();
        // The nested temp's own pid first (its name holds the outer's too).
        let (n_dead, o_dead) = (dead(&n), dead(&o));
        assert!(n_dead.exists() && o_dead.exists());
        clean_stale_temps(&long);
        assert!(!o_dead.exists(), "outer temp of a dead run left");
        assert!(!n_dead.exists(), "nested temp of a dead run left");
        // Two long names that share their first 95 bytes stay apart.
        let (a, b) = ("x".repeat(200) + "a.tif", "x".repeat(200) + "b.tif");
        assert_ne!(temp_stem(&a), temp_stem(&b));
    }

    #[test]
    fn temp_files_are_new_hidden_and_beside_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("scene.tif");
        let a = TempFile::beside(&target, "part").unwrap();
        let b = TempFile::beside(&target, "part").unwrap();
        assert_ne!(a.path(), b.path(), "names must not repeat");
        for t in [&a, &b] {
            assert_eq!(t.path().parent(), Some(dir.path()));
            let name = t.path().file_name().unwrap().to_string_lossy().to_string();
            let pid = format!(".scene.tif.idfcr-{}-", std::process::id());
            assert!(
                name.starts_with(&pid) && name.ends_with("-part.tif"),
                "{name}"
            );
            assert!(name.len() >= pid.len() + 12 + "-part.tif".len(), "{name}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn stale_temps_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("o.tif");
        // pid 4194305 is above Linux's pid_max limit: never alive.
        let h = host_tag();
        let dead = dir
            .path()
            .join(format!(".o.tif.idfcr-4194305-{h}-abcdefabcdef-part.tif"));
        let nested = dir.path().join(format!("..o.tif.idfcr-4194305-{h}-abcdefabcdef-pixelcr.tif.idfcr-4194305-{h}-abcdefabcdef-part.tif"));
        let mine = TempFile::beside(&target, "part").unwrap();
        // (kept: another output's, another machine's, not our naming, a user file)
        let kept = [
            dir.path()
                .join(format!(".p.tif.idfcr-4194305-{h}-abcdefabcdef-part.tif")),
            dir.path()
                .join(".o.tif.idfcr-4194305-0badbeef-abcdefabcdef-part.tif"),
            dir.path()
                .join(format!(".o.tif.idfcr-4194305-{h}-abc-part.tif")),
            dir.path()
                .join(format!(".o.tif.idfcr-4194305-{h}-abcdefabcdef-notes.txt")),
        ];
        for p in kept.iter().chain([&dead, &nested]) {
            std::fs::write(p, b"x").unwrap();
        }
        check_output_path(&target, false, &[]).unwrap();
        assert!(!dead.exists(), "a dead run's temp file stays");
        assert!(!nested.exists(), "a dead run's nested temp file stays");
        assert!(mine.path().exists(), "a live run's temp file was removed");
        for k in &kept {
            assert!(k.exists(), "{} was removed", k.display());
        }
    }

    #[test]
    fn moving_into_place_never_replaces_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, fin) = (dir.path().join("t"), dir.path().join("f"));
        // (target exists, overwrite, succeeds, final content)
        let cases = [
            (false, false, true, "new"),
            (true, false, false, "old"),
            (true, true, true, "new"),
            (false, true, true, "new"),
        ];
        for (exists, overwrite, ok, content) in cases {
            let _ = std::fs::remove_file(&fin);
            std::fs::write(&tmp, "new").unwrap();
            if exists {
                std::fs::write(&fin, "old").unwrap();
            }
            let r = move_into_place(&tmp, &fin, overwrite);
            assert_eq!(r.is_ok(), ok, "{exists} {overwrite}: {r:?}");
            assert_eq!(std::fs::read_to_string(&fin).unwrap(), content);
            assert_eq!(tmp.exists(), !ok, "{exists} {overwrite}");
        }
    }

    #[test]
    fn temp_file_guard_removes_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tif");
        let t = TempFile::beside(&target, "part").unwrap();
        let p = t.path().to_path_buf();
        assert!(p.exists());
        // GDAL's side files of the temp go with it.
        let aux = PathBuf::from(format!("{}.aux.xml", p.display()));
        let tfw = p.with_extension("tfw");
        std::fs::write(&aux, "x").unwrap();
        std::fs::write(&tfw, "x").unwrap();
        drop(t);
        assert!(!p.exists() && !aux.exists() && !tfw.exists());
        let t = TempFile::beside(&target, "part").unwrap();
        let p = t.path().to_path_buf();
        t.keep();
        assert!(p.exists());
    }
}
