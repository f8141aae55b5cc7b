//! `idfcr models`: the bundled cloud-removal models a `--model NAME` can
//! name, with what each was trained on and how it scored, read from the
//! models' own metadata (so the listing cannot drift from the files).

use std::path::PathBuf;

use crate::config::Device;
use crate::error::Result;
use crate::models::pixel_cr::open_graph;
use crate::models::registry::{bundled_names, first_file, model_dirs};

#[derive(clap::Args, Debug)]
pub struct ModelsArgs {
    /// Folder searched first for the bundled models (before IDFCR_MODEL_DIR).
    #[arg(long = "model-dir", value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, then the usual places).
    #[arg(long = "ort-lib")]
    pub ort_lib: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One bundled model as the listing shows it.
#[derive(Debug, serde::Serialize)]
pub struct ModelEntry {
    pub name: String,
    pub path: PathBuf,
    pub version: Option<String>,
    pub bands: Option<usize>,
    pub band_names: Vec<String>,
    pub training_data: Option<String>,
    /// Mean validation PSNR of the model's raw output and of doing
    /// nothing, as its export recorded them (`idfcr.scores`).
    pub validation_psnr: Option<f64>,
    pub doing_nothing_psnr: Option<f64>,
    /// The model card beside the file (`NAME.md`), when there is one.
    pub card: Option<PathBuf>,
    /// Why the file could not be read as a model (the others are listed).
    pub error: Option<String>,
}

impl ModelsArgs {
    /// Every bundled model, each read from its file. A file that is not a
    /// model is listed with its error, and the run then fails (exit 1).
    pub fn run(&self) -> Result<Vec<ModelEntry>> {
        crate::config::check_model_folders(self.model_dir.as_deref())?;
        // No ONNX Runtime reads no model: say so once, not once per model.
        crate::models::runtime::environment(self.ort_lib.as_deref())?;
        let dirs = model_dirs(self.model_dir.as_deref());
        let mut entries = Vec::new();
        for name in bundled_names(&dirs) {
            let Some(path) = first_file(&dirs, &format!("{name}.onnx")) else {
                continue;
            };
            entries.push(self.entry(name, path));
        }
        Ok(entries)
    }

    fn entry(&self, name: String, path: PathBuf) -> ModelEntry {
        let mut e = ModelEntry {
            name,
            path,
            version: None,
            bands: None,
            band_names: Vec::new(),
            training_data: None,
            validation_psnr: None,
            doing_nothing_psnr: None,
            card: None,
            error: None,
        };
        e.card = Some(e.path.with_extension("md")).filter(|c| c.is_file());
        let graph = match open_graph(
            &e.path,
            crate::models::contract::GraphKind::PixelCr,
            Device::Cpu,
            1,
            1,
            self.ort_lib.as_deref(),
        ) {
            Ok(g) => g,
            Err(err) => {
                // The message alone: the listing names the file on its own line.
                e.error = Some(match err {
                    crate::error::Error::Model { msg, .. } => msg,
                    other => other.to_string(),
                });
                return e;
            }
        };
        let m = &graph.meta;
        e.version = m.text("idfcr.version").map(str::to_string);
        e.bands = m.text("idfcr.bands").and_then(|b| b.parse().ok());
        e.band_names = m.list("idfcr.band_names");
        e.training_data = m.text("idfcr.training_data").map(str::to_string);
        if let Some(scores) = m
            .text("idfcr.scores")
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        {
            e.validation_psnr = scores["psnr"].as_f64();
            e.doing_nothing_psnr = scores["baseline_psnr"].as_f64();
        }
        e
    }
}

/// The listing as text: one block per model.
pub fn table(entries: &[ModelEntry]) -> String {
    if entries.is_empty() {
        return "no bundled models found (set IDFCR_MODEL_DIR or pass --model-dir)\n".into();
    }
    let mut out = String::new();
    for e in entries {
        out.push_str(&e.name);
        if let Some(v) = &e.version {
            out.push_str(&format!(" {v}"));
        }
        out.push('\n');
        if let Some(err) = &e.error {
            out.push_str(&format!("  cannot be read: {err}\n"));
        }
        if let Some(b) = e.bands {
            let names = if e.band_names.is_empty() {
                String::new()
            } else {
                format!(" ({})", e.band_names.join(" "))
            };
            out.push_str(&format!("  bands: {b}{names}\n"));
        }
        if let Some(t) = &e.training_data {
            out.push_str(&format!("  trained on: {t}\n"));
        }
        if let (Some(p), Some(n)) = (e.validation_psnr, e.doing_nothing_psnr) {
            out.push_str(&format!(
                "  validation: {p:.2} dB (raw output) against {n:.2} dB for doing nothing, on scenes it never trained on\n"
            ));
        }
        out.push_str(&format!("  file: {}\n", e.path.display()));
        if let Some(card) = &e.card {
            out.push_str(&format!("  card: {}\n", card.display()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, error: Option<&str>) -> ModelEntry {
        ModelEntry {
            name: name.into(),
            path: PathBuf::from(format!("/m/{name}.onnx")),
            version: error.is_none().then(|| "0.1".into()),
            bands: error.is_none().then_some(3),
            band_names: if error.is_none() {
                vec!["red".into(), "green".into(), "blue".into()]
            } else {
                Vec::new()
            },
            training_data: error.is_none().then(|| "RICE1".into()),
            validation_psnr: error.is_none().then_some(25.456),
            doing_nothing_psnr: error.is_none().then_some(20.5),
            card: error
                .is_none()
                .then(|| PathBuf::from(format!("/m/{name}.md"))),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn the_table_shows_what_each_file_says() {
        let t = table(&[
            entry("pixel_cr_rice1", None),
            entry("broken", Some("not a model")),
        ]);
        for want in [
            "pixel_cr_rice1 0.1\n",
            "  bands: 3 (red green blue)\n",
            "  trained on: RICE1\n",
            "  validation: 25.46 dB (raw output) against 20.50 dB for doing nothing",
            "  file: /m/pixel_cr_rice1.onnx\n  card: /m/pixel_cr_rice1.md\n",
            "broken\n  cannot be read: not a model\n  file: /m/broken.onnx\n",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
        assert!(table(&[]).contains("no bundled models found"));
    }
}
