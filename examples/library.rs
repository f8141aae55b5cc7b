//! Using idfcr as a library: clean one raster with the bundled model and
//! print the run summary.
//!
//!     cargo run --example library -- testdata/demo/landsat8_cloudy.tif /tmp/clear.tif

use std::path::PathBuf;

use idfcr::config::{
    Device, Job, OutputFormat, OutputWords, ProgressMode, RemoveConfig, RemoveOptions, Rescale,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        eprintln!("usage: library INPUT OUTPUT");
        std::process::exit(2);
    };
    // What to do it on, and what to do: `RemoveConfig::new` checks both.
    let job = Job {
        input,
        output: PathBuf::from(output),
        mask: None,                 // Some(path): also write the cloud probability
        probability: None,          // Some(map): blend by another detector's p, not the model's
        words: OutputWords::REMOVE, // what error messages call the two outputs
    };
    let opts = RemoveOptions {
        band_idx: None, // all bands
        model: None,    // the bundled model for the input's band count
        tile_px: 480,
        panel_px: None, // column panels of max(4096, four tiles)
        overlap_px: None,
        device: Device::Auto,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        format: OutputFormat::Cog,
        creation_options: vec![("COMPRESS".into(), "ZSTD".into())],
        out_type: None,
        overwrite: true,
        raw: false,             // blend with the input by the cloud probability
        rescale: Rescale::None, // Rescale::Linear(0.0, 25500.0) for 8-bit values x 100
        progress: ProgressMode::None,
        ort_lib: None,
        model_dir: None,
        s2: Default::default(), // Sentinel-2 radiometry: detected from the input
        refine: None,           // Some(RefineOptions { .. }): the IND diffusion stage too
    };
    let cfg = match RemoveConfig::new(opts, job) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("library: error: {e}");
            std::process::exit(e.exit_code());
        }
    };
    // The library prints nothing: progress goes to what the caller gives
    // (`idfcr::progress::silent`, the CLI's display, or your own `Progress`).
    match idfcr::pipeline::remove(&cfg, idfcr::progress::silent) {
        Ok(summary) => println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("library: error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
