//! One error type for the library, with enough context to print a single
//! useful line: which file, and what is wrong with it.

use std::path::PathBuf;

/// Everything that can go wrong in `idfcr`. Each variant names the thing it
/// is about (a path, a model, a setting) so the message stands on its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the settings do not make sense (exit code 2).
    #[error("{0}")]
    Usage(String),

    /// The input raster cannot be used.
    #[error("{path}: {msg}")]
    Input { path: String, msg: String },

    /// The model file is missing, corrupt, or does not fit the input.
    #[error("model {path}: {msg}")]
    Model { path: PathBuf, msg: String },

    /// No usable ONNX Runtime shared library.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// The output cannot be written.
    #[error("{path}: {msg}")]
    Output { path: PathBuf, msg: String },

    /// Ctrl-C or SIGTERM arrived; partial outputs were removed (exit code 130).
    #[error("interrupted; no output was left behind")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(path: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Input {
            path: path.into(),
            msg: msg.to_string(),
        }
    }

    pub fn model(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::Model {
            path: path.into(),
            msg: msg.to_string(),
        }
    }

    pub fn output(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::Output {
            path: path.into(),
            msg: msg.to_string(),
        }
    }

    /// The process exit code that conventions assign to this error: 2 for
    /// usage errors, 130 for interruption, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Interrupted => 130,
            _ => 1,
        }
    }
}

/// GDAL's own message from one of its errors, without the crate's wrapping
/// ("CPL error class ...", "returned a NULL pointer"), on one line.
pub fn gdal_message(e: &gdal::errors::GdalError) -> String {
    use gdal::errors::GdalError;
    let msg = match e {
        GdalError::CplError { msg, .. } => msg.clone(),
        GdalError::NullPointer { msg, .. } if !msg.is_empty() => msg.clone(),
        other => other.to_string(),
    };
    msg.lines().next().unwrap_or("").trim().to_string()
}
