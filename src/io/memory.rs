//! Whole-image buffers against the memory there is.
//!
//! The pipeline reads scenes in strips and tiles, so its memory does not grow
//! with the scene; a few commands hold a whole image (or a whole map) at
//! once: `eval` and `quality` score every pixel of an image, and `s2` builds
//! the detector's 60 m cloud map of the whole product. A raster that declares
//! an enormous size (a VRT can say 2^31 x 2^31) made their allocation
//! overflow (a panic) or abort the process with no message. They ask here
//! first, and refuse with the file's name and the size it would take what
//! could never fit (more than memory and swap, or a container's limit).

use crate::error::{Error, Result};

/// Bytes for `dims` values of `bytes_per` bytes each; None when the product
/// overflows (a declared size no machine can hold).
pub fn bytes_for(dims: &[usize], bytes_per: usize) -> Option<u64> {
    dims.iter()
        .try_fold(bytes_per as u64, |acc, &d| acc.checked_mul(d as u64))
}

/// The most memory this process could ever get, and which limit that is:
/// RAM plus swap (`/proc/meminfo`), a control group's limit (the least
/// `memory.max` or v1 `memory.limit_in_bytes` on the way from this
/// process's own group, a Slurm step's or a container's, up to the root),
/// and what `ulimit -v`/`-d` leaves beyond what is mapped already; None
/// where none of these can be read (then only sizes beyond an address
/// space are refused).
///
/// Not the memory free right now: a job that would page its way through, or
/// one started while another finishes, should run as it did; what is
/// refused is what can never fit.
pub fn ceiling() -> Option<(u64, &'static str)> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| ram_and_swap(&t))
        .map(|b| (b, "of memory and swap this machine has"));
    let group = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| cgroup_ceiling(std::path::Path::new("/sys/fs/cgroup"), &t))
        .map(|b| (b, "its control group (container or job) allows"));
    [machine, group, process_limit()]
        .into_iter()
        .flatten()
        .min_by_key(|(b, _)| *b)
}

/// The least memory limit on the way from the groups `/proc/self/cgroup`
/// names (`self_cgroup`) up to the root, under `root` (`/sys/fs/cgroup`):
/// a limit set on a Slurm job holds for the task groups nested in it.
fn cgroup_ceiling(root: &std::path::Path, self_cgroup: &str) -> Option<u64> {
    let mut files = Vec::new();
    for line in self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let (dir, file) = match controllers {
            "" => (root.to_path_buf(), "memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                (root.join("memory"), "memory.limit_in_bytes")
            }
            _ => continue,
        };
        if path.contains("..") {
            continue;
        }
        // The group and each of its ancestors, the root included.
        let mut at = std::path::PathBuf::from(path.trim().trim_start_matches('/'));
        loop {
            files.push(dir.join(&at).join(file));
            if !at.pop() {
                break;
            }
        }
    }
    files
        .iter()
        .filter_map(|f| {
            std::fs::read_to_string(f)
                .ok()
                .and_then(|t| cgroup_limit(&t))
        })
        .min()
}

/// What `ulimit -v` / `-d` (RLIMIT_AS, RLIMIT_DATA) leaves this process
/// beyond what it has mapped already (ONNX Runtime, GDAL): past it an
/// allocation fails, and Rust aborts the process with no message and no
/// clean-up.
fn process_limit() -> Option<(u64, &'static str)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let used = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb.saturating_mul(1024))
    };
    let left = |resource, field: &str| {
        // SAFETY: getrlimit writes the struct it is given.
        let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::getrlimit(resource, &mut r) } == 0;
        (ok && r.rlim_cur != libc::RLIM_INFINITY).then(|| r.rlim_cur.saturating_sub(used(field)))
    };
    [
        left(libc::RLIMIT_AS, "VmSize:").map(|b| (b, "ulimit -v leaves this process")),
        left(libc::RLIMIT_DATA, "VmData:").map(|b| (b, "ulimit -d leaves this process")),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|(b, _)| *b)
}

/// `MemTotal` + `SwapTotal` of a `/proc/meminfo` text, in bytes.
fn ram_and_swap(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let mut parts = line[name.len()..].split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    };
    field("MemTotal:")?.checked_add(field("SwapTotal:").unwrap_or(0))
}

/// A control group's memory limit; None for "max" (none) and for v1's
/// stand-in for none (a page-rounded i64::MAX).
fn cgroup_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < 1 << 60).then_some(v)
}

/// Refuse `what` of `source` when its `need` bytes (None: beyond counting)
/// are more than `ceiling` (None: unknown, then only sizes beyond what an
/// address space can hold are refused), naming the limit.
pub fn check_fits(
    source: &str,
    what: &str,
    need: Option<u64>,
    ceiling: Option<(u64, &str)>,
) -> Result<()> {
    let (limit, which) = ceiling.unwrap_or((isize::MAX as u64, "a process can address"));
    match need {
        Some(n) if n <= limit => Ok(()),
        Some(n) => Err(Error::input(
            source,
            format!(
                "{what} would take about {} in memory, more than the {} {which}",
                gigabytes(n),
                gigabytes(limit),
            ),
        )),
        None => Err(Error::input(
            source,
            format!("{what} would take more memory than any machine has (its declared size is enormous)"),
        )),
    }
}

/// `check_fits` against the most this process could ever get.
pub fn ensure_fits(source: &str, what: &str, dims: &[usize], bytes_per: usize) -> Result<()> {
    check_fits(source, what, bytes_for(dims, bytes_per), ceiling())
}

/// A strip of `rows` x (a panel of `panel` columns, or the scene's `width`
/// when narrower, plus a tile each side) holds a few buffers of `bands` + 1
/// channels (sums, the read window, exact values); a failed allocation
/// would abort with no clean-up (`--panel 100000000` on a scene a million
/// pixels wide under a 3 GB ulimit), so refuse what cannot fit.
pub fn ensure_strip_fits(
    source: &str,
    (panel, tile, rows): (usize, usize, usize),
    width: usize,
    bands: usize,
) -> Result<()> {
    let span = panel.min(width).saturating_add(tile.saturating_mul(2));
    let what =
        format!("--panel {panel}: a strip of {rows} x {span} px (a smaller --panel takes less)");
    ensure_fits(source, &what, &[rows, span, bands + 1, 6], 4)
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_limit_anywhere_above_the_group_counts() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let put = |rel: &str, text: &str| {
            std::fs::create_dir_all(r.join(rel)).unwrap();
            std::fs::write(
                r.join(rel).join(if rel.starts_with("memory") {
                    "memory.limit_in_bytes"
                } else {
                    "memory.max"
                }),
                text,
            )
            .unwrap();
        };
        // A Slurm job with 2 GB, its task group below it unlimited.
        put("job_42", "2147483648\n");
        put("job_42/step_0/task_0", "max\n");
        put("", "max\n");
        // cgroup v1: the limit on the job, read through the memory controller.
        put("memory/slurm/job_7", "1073741824\n");
        put("memory/slurm/job_7/step_0", "9223372036854771712\n");
        let cases = [
            ("0::/job_42/step_0/task_0\n", Some(2_147_483_648)),
            ("0::/\n", None),
            (
                "5:cpu:/x\n4:memory:/slurm/job_7/step_0\n",
                Some(1_073_741_824),
            ),
            ("0::/../job_42\n", None),
            ("0::/elsewhere\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(super::cgroup_ceiling(r, text), want, "{text:?}");
        }
    }

    use super::*;

    #[test]
    fn sizes_multiply_or_report_overflow() {
        let cases: &[(&[usize], usize, Option<u64>)] = &[
            (&[512, 512, 3], 4, Some(3_145_728)),
            (&[], 8, Some(8)),
            (&[0, 10], 4, Some(0)),
            (
                &[2_147_483_647, 2_147_483_647],
                1,
                Some(4_611_686_014_132_420_609),
            ),
            (&[2_147_483_647, 2_147_483_647, 3], 4, None),
            (&[usize::MAX, 2], 1, None),
            (&[1 << 40, 1 << 40], 4, None),
        ];
        for (dims, per, want) in cases {
            assert_eq!(bytes_for(dims, *per), *want, "{dims:?} x {per}");
        }
    }

    #[test]
    fn the_ceiling_is_ram_and_swap_or_a_group_limit() {
        let cases = [
            (
                "MemTotal: 100 kB\nMemAvailable: 50 kB\nSwapTotal: 28 kB\n",
                Some(131_072),
            ),
            ("MemTotal:   2048 kB\n", Some(2_097_152)),
            ("MemTotal: 5\n", Some(5)),
            ("SwapTotal: 100 kB\n", None),
            ("MemTotal: lots kB\n", None),
            ("MemTotal: 5 MB\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(ram_and_swap(text), want, "{text:?}");
        }
        let groups = [
            ("max\n", None),
            ("9223372036854771712\n", None),
            ("4294967296\n", Some(4_294_967_296)),
            ("", None),
        ];
        for (text, want) in groups {
            assert_eq!(cgroup_limit(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_buffer_fits_or_is_refused_naming_the_file() {
        let ram = Some((10, "of memory and swap this machine has"));
        assert!(check_fits("a.tif", "scoring", Some(10), ram).is_ok());
        assert!(check_fits("a.tif", "scoring", Some(10), None).is_ok());
        let cases = [
            (Some(11), ram, "memory and swap"),
            (
                Some(11),
                Some((10, "ulimit -v leaves this process")),
                "ulimit -v",
            ),
            (Some(u64::MAX), None, "a process can address"),
            (None, ram, "enormous"),
        ];
        for (need, avail, says) in cases {
            let msg = check_fits("a.tif", "scoring", need, avail)
                .unwrap_err()
                .to_string();
            assert!(msg.contains("a.tif") && msg.contains(says), "{msg}");
        }
    }
}
