//! Whole-image buffers against the memory there is.
//!
//! The pipeline reads scenes in strips and tiles, so its memory does not grow
//! with the scene; a few commands hold a whole image (or a whole map) at
//! once: `eval` and `quality` score every pixel of an image, and `s2` builds
//! the detector's 60 m cloud map of the whole product. A raster that declares
//! an enormous size (a VRT can say 2^31 x 2^31) made their allocation
//! overflow (a panic) or abort the process with no message. They ask here
//! first, and refuse with the file's name and the size it would take.

use crate::error::{Error, Result};

/// Bytes for `dims` values of `bytes_per` bytes each; None when the product
/// overflows (a declared size no machine can hold).
pub fn bytes_for(dims: &[usize], bytes_per: usize) -> Option<u64> {
    dims.iter()
        .try_fold(bytes_per as u64, |acc, &d| acc.checked_mul(d as u64))
}

/// `MemAvailable` of `/proc/meminfo` (the kernel's estimate of what can be
/// allocated without swapping), in bytes; None where there is no such file.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Refuse `what` of `source` when its `need` bytes (None: beyond counting)
/// are more than `available` (None: unknown, then only sizes beyond what an
/// address space can hold are refused).
pub fn check_fits(
    source: &str,
    what: &str,
    need: Option<u64>,
    available: Option<u64>,
) -> Result<()> {
    let limit = available.unwrap_or(isize::MAX as u64);
    match need {
        Some(n) if n <= limit => Ok(()),
        Some(n) => Err(Error::input(
            source,
            format!(
                "{what} would take about {} in memory, more than the {} {}",
                gigabytes(n),
                gigabytes(limit),
                if available.is_some() { "this machine has free" } else { "a process can address" }
            ),
        )),
        None => Err(Error::input(
            source,
            format!("{what} would take more memory than any machine has (its declared size is enormous)"),
        )),
    }
}

/// `check_fits` against this machine's available memory.
pub fn ensure_fits(source: &str, what: &str, dims: &[usize], bytes_per: usize) -> Result<()> {
    check_fits(source, what, bytes_for(dims, bytes_per), available_bytes())
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests {
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
    fn mem_available_is_read_in_bytes() {
        let cases = [
            (
                "MemTotal: 100 kB\nMemAvailable:   2048 kB\n",
                Some(2_097_152),
            ),
            ("MemAvailable: 5\n", Some(5)),
            ("MemTotal: 100 kB\n", None),
            ("MemAvailable: lots kB\n", None),
            ("MemAvailable: 5 MB\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_mem_available(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_buffer_fits_or_is_refused_naming_the_file() {
        assert!(check_fits("a.tif", "scoring", Some(10), Some(10)).is_ok());
        assert!(check_fits("a.tif", "scoring", Some(10), None).is_ok());
        let cases = [
            (Some(11), Some(10), "this machine has free"),
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
