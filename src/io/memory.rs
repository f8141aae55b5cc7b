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

/// The most memory this process could ever get: RAM plus swap
/// (`/proc/meminfo`), capped by a control group's limit (its own group's
/// or a container's `memory.max`, cgroup v1's `memory.limit_in_bytes`) and
/// by `ulimit -v`/`-d`; None where none of these can be read (then only
/// sizes beyond an address space are refused).
///
/// Not the memory free right now: a job that would page its way through, or
/// one started while another finishes, should run as it did; what is
/// refused is what can never fit.
pub fn ceiling_bytes() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| ram_and_swap(&t));
    // This process's own control group (a Slurm job's or systemd unit's,
    // nested below the root), then the root's (a container's).
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| own_cgroup_v2(&t))
        .map(|g| format!("/sys/fs/cgroup{g}/memory.max"));
    let group = own
        .iter()
        .map(String::as_str)
        .chain([
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ])
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| cgroup_limit(&t))
        });
    [machine, group, process_limit()]
        .into_iter()
        .flatten()
        .min()
}

/// The cgroup v2 path of this process (`0::/PATH` in `/proc/self/cgroup`);
/// None for the root or v1.
fn own_cgroup_v2(text: &str) -> Option<String> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    (path.starts_with('/') && path != "/" && !path.contains("..")).then(|| path.to_string())
}

/// `ulimit -v` / `-d` (RLIMIT_AS, RLIMIT_DATA): past it an allocation
/// fails, and Rust aborts the process with no message and no clean-up.
fn process_limit() -> Option<u64> {
    let limit = |resource| {
        // SAFETY: getrlimit writes the struct it is given.
        let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::getrlimit(resource, &mut r) } == 0;
        (ok && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
    };
    [limit(libc::RLIMIT_AS), limit(libc::RLIMIT_DATA)]
        .into_iter()
        .flatten()
        .min()
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
/// address space can hold are refused).
pub fn check_fits(source: &str, what: &str, need: Option<u64>, ceiling: Option<u64>) -> Result<()> {
    let limit = ceiling.unwrap_or(isize::MAX as u64);
    match need {
        Some(n) if n <= limit => Ok(()),
        Some(n) => Err(Error::input(
            source,
            format!(
                "{what} would take about {} in memory, more than the {} {}",
                gigabytes(n),
                gigabytes(limit),
                if ceiling.is_some() {
                    "of memory and swap this machine (container, or ulimit) allows"
                } else {
                    "a process can address"
                }
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
    check_fits(source, what, bytes_for(dims, bytes_per), ceiling_bytes())
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_cgroup_paths() {
        let cases = [
            (
                "0::/system.slice/slurmstepd.scope/job_42\n",
                Some("/system.slice/slurmstepd.scope/job_42"),
            ),
            ("0::/\n", None),
            ("12:memory:/docker/abc\n", None),
            ("0::/../etc\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(super::own_cgroup_v2(text).as_deref(), want, "{text:?}");
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
        assert!(check_fits("a.tif", "scoring", Some(10), Some(10)).is_ok());
        assert!(check_fits("a.tif", "scoring", Some(10), None).is_ok());
        let cases = [
            (Some(11), Some(10), "memory and swap"),
            (Some(u64::MAX), None, "a process can address"),
            (None, Some(10), "enormous"),
        ];
        for (need, avail, says) in cases {
            let msg = check_fits("a.tif", "scoring", need, avail)
                .unwrap_err()
                .to_string();
            assert!(msg.contains("a.tif") && msg.contains(says), "{msg}");
        }
    }
}
