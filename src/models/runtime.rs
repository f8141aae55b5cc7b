//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! ort is built with `load-dynamic`: nothing is downloaded at build time and
//! the binary works with whichever ONNX Runtime the user has. Search order:
//! `--ort-lib`, `ORT_DYLIB_PATH`, next to the executable, the project cache
//! (`scripts/setup.sh` fills it), then an installed Python `onnxruntime` or
//! `onnxruntime-gpu` package. Without a library ort would panic; we return a
//! clear error that says how to get one instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// CUDA when the loaded ONNX Runtime can use it, else CPU (with a warning).
    Auto,
    Cpu,
    /// CUDA or fail with ORT's reason.
    Cuda,
}

/// The process-wide ORT environment. ONNX Runtime allows one per process,
/// so it is created on first use and shared (this matters in `cargo test`).
static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// Where `scripts/setup.sh` puts the library for this checkout.
pub fn project_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".cache")
        .join("onnxruntime")
}

/// `libonnxruntime.so*` (or the platform's name) inside `dir`, newest name last.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let prefix = if cfg!(windows) {
        "onnxruntime"
    } else {
        "libonnxruntime"
    };
    let suffix = if cfg!(windows) {
        ".dll"
    } else if cfg!(target_os = "macos") {
        ".dylib"
    } else {
        ".so"
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(prefix)
                && name.contains(suffix)
                && !name.contains("providers")
                && p.is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// The `capi` folder of an installed Python onnxruntime package, if any.
fn python_package_dir() -> Option<PathBuf> {
    for python in ["python3", "python"] {
        // A missing python3 is no reason to skip `python`.
        let Ok(out) = Command::new(python)
            .args([
                "-c",
                "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
            ])
            .stderr(std::process::Stdio::null())
            .output()
        else {
            continue;
        };
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            return Some(Path::new(&dir).join("capi"));
        }
    }
    None
}

/// Resolve the library path by the documented search order.
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::Runtime(format!(
                "--ort-lib {}: no such file",
                p.display()
            )))
        };
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::Runtime(format!(
                "ORT_DYLIB_PATH={}: no such file",
                p.display()
            )))
        };
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let candidates = [exe_dir, Some(project_cache_dir())];
    if let Some(p) = candidates.iter().flatten().find_map(|d| library_in(d)) {
        return Ok(p);
    }
    if let Some(p) = python_package_dir().and_then(|d| library_in(&d)) {
        return Ok(p);
    }
    Err(Error::Runtime(
        "no ONNX Runtime library found (looked at --ort-lib, ORT_DYLIB_PATH, next to the executable, \
         the project cache .cache/onnxruntime, and a Python onnxruntime package); run scripts/setup.sh, \
         `pip install onnxruntime` (or onnxruntime-gpu for CUDA), or point ORT_DYLIB_PATH at libonnxruntime.so"
            .into(),
    ))
}

/// The shared environment, loading the library on first call. Later calls
/// return the same environment whatever path they pass.
pub fn environment(explicit: Option<&Path>) -> Result<&'static ort::environment::Environment> {
    // The error is kept as text (the ORT errors are not Clone) and becomes
    // Error::Runtime again on every call.
    let entry = ENVIRONMENT.get_or_init(|| {
        let path = find_library(explicit).map_err(|e| match e {
            Error::Runtime(msg) => msg,
            other => other.to_string(),
        })?;
        // Library users who did not set it (the binary does, in main):
        // see main.rs on ORT_DISABLE_TELEMETRY.
        if std::env::var_os("ORT_DISABLE_TELEMETRY").is_none() {
            std::env::set_var("ORT_DISABLE_TELEMETRY", "1");
        }
        let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
        // Microsoft's builds (the PyPI wheel we install) record usage events
        // by default; a tool that runs on other people's data must not.
        builder
            .with_name("idfcr")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("{}: {e}", path.display()))
    });
    entry.as_ref().map_err(|msg| Error::Runtime(msg.clone()))
}
