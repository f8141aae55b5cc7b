//! Arguments of `idfcr s2` (a Sentinel-2 product in, one cleaned raster per
//! group out), turned into its validated config; the shared processing
//! options are in `args`.

use std::path::PathBuf;

use clap::ValueEnum;

use super::args::ProcessingArgs;
use super::cloud_mask_args::CloudMaskArgs;
use crate::error::{Error, Result};
use crate::sentinel2::detector::CloudDetector;

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum CloudDetectorArg {
    Auto,
    S2cloudless,
    Model,
}

/// `idfcr s2`: a Sentinel-2 product in, one cleaned raster per group out.
/// The shared processing options read as they apply here: bands are found
/// by name (`-b` is refused, so not listed), one `--model` serves one
/// group, and no IND model reads Sentinel-2 bands (`--refine` and its
/// options are refused, so not listed).
#[derive(clap::Args, Debug)]
#[command(
    mut_arg("bands", |a| a.hide(true)),
    mut_arg("refine", |a| a.hide(true)),
    mut_arg("ind_model", |a| a.hide(true)),
    mut_arg("steps", |a| a.hide(true)),
    mut_arg("sampler", |a| a.hide(true)),
    mut_arg("seed", |a| a.hide(true)),
    mut_arg("refine_tile", |a| a.hide(true)),
    mut_arg("model", |a| a.help("ONNX model (a file, or a bundled model's name such as s2_10m) for the one group given with --groups; default: each group's bundled model (onnx/models/s2_*.onnx)")),
    mut_arg("tile_px", |a| a.help("Tile size in px of each group's own grid (a 60 m tile covers six times the ground of a 10 m one)")),
)]
pub struct S2Args {
    /// A .SAFE folder, its .zip, its MTD_MSIL1C.xml/MTD_MSIL2A.xml, a SENTINEL2_L1C:/SENTINEL2_L2A: subdataset, or a band-stacked raster.
    pub input: String,
    /// Folder for the outputs (created if missing).
    pub out_dir: PathBuf,
    /// Output file name: {product} and {group} are replaced.
    #[arg(long, default_value = "{product}_idfcr_{group}.tif")]
    pub name: String,
    /// Also write each group's cloud probability p (what the output is
    /// blended by) under this name, e.g. '{product}_cloud_{group}.tif'.
    #[arg(long = "mask-name", value_name = "NAME")]
    pub mask_name: Option<String>,
    /// Groups to process, comma-separated (10m,20m,60m; default: all the input has).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Also write all cleaned bands on the 10 m grid in one raster ({group} = stack10m; 20/60 m bands repeated, values unchanged).
    #[arg(long)]
    pub stack: bool,
    /// Where the cloud probability p (what each output is blended by) comes from: s2cloudless on the ten L1C bands (auto: when the input has them, so not for L2A), or each group model's own.
    #[arg(long = "cloud-detector", value_enum, default_value_t = CloudDetectorArg::Auto)]
    pub cloud_detector: CloudDetectorArg,
    /// Replace existing outputs.
    #[arg(long)]
    pub overwrite: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud_mask: CloudMaskArgs,
    #[command(flatten)]
    pub opts: ProcessingArgs,
}

impl S2Args {
    pub fn into_config(self) -> Result<crate::pipeline::s2::S2RunConfig> {
        self.opts.stdout_is_free(self.json, "--json")?;
        if !self.name.contains("{group}") {
            return Err(Error::Usage(format!(
                "--name {}: must contain {{group}} so that the groups do not overwrite each other",
                self.name
            )));
        }
        if !self.opts.bands.is_empty() {
            return Err(Error::Usage(
                "-b does not apply to s2 (bands are found by name); use --groups, or `idfcr remove` on one subdataset".into(),
            ));
        }
        if self.opts.refine {
            return Err(Error::Usage(
                "--refine does not apply to s2: no IND model reads Sentinel-2 bands yet".into(),
            ));
        }
        // The extension as `remove` checks OUTPUT's, unless a placeholder
        // stands in it ('{product}.{group}'): its value decides.
        let checked = |what: &str, pattern: &str| {
            let path = std::path::Path::new(pattern);
            match path.extension().map(|e| e.to_string_lossy().contains('{')) {
                Some(true) => Ok(()),
                _ => crate::config::check_output_name(what, path),
            }
        };
        checked("--name", &self.name)?;
        let groups = crate::sentinel2::bands::parse_groups(&self.groups)?;
        if let Some(m) = &self.mask_name {
            if !m.contains("{group}") || *m == self.name {
                return Err(Error::Usage(format!(
                    "--mask-name {m}: must contain {{group}} and differ from --name"
                )));
            }
            checked("--mask-name", m)?;
        }
        let groups = (!groups.is_empty()).then_some(groups);
        let cloud_mask = self.cloud_mask.spec(self.opts.raw)?;
        let cloud_detector = self.cloud_detector.checked(
            cloud_mask.is_some(),
            self.opts.raw,
            self.mask_name.is_some(),
            "--mask-name",
        )?;
        let options = self.opts.into_options(self.overwrite)?;
        Ok(crate::pipeline::s2::S2RunConfig {
            cloud_mask,
            input: self.input,
            out_dir: self.out_dir,
            name: self.name,
            mask_name: self.mask_name,
            groups,
            options,
            stack: self.stack,
            cloud_detector,
        })
    }
}

impl CloudDetectorArg {
    /// The choice, refused where nothing would read it: a cloud mask
    /// replaces any detector, and a raw run (the model's output
    /// everywhere) reads no p unless it is written (`p_option`), as
    /// --cloud-mask with --raw is refused.
    pub(crate) fn checked(
        self,
        cloud_mask: bool,
        raw: bool,
        writes_p: bool,
        p_option: &str,
    ) -> Result<CloudDetector> {
        let (name, detector) = match self {
            CloudDetectorArg::Auto => return Ok(CloudDetector::Auto),
            CloudDetectorArg::S2cloudless => ("s2cloudless", CloudDetector::S2cloudless),
            CloudDetectorArg::Model => ("model", CloudDetector::Model),
        };
        if cloud_mask {
            return Err(Error::Usage("--cloud-mask replaces the cloud detector: give one of --cloud-mask and --cloud-detector".into()));
        }
        if raw && !writes_p {
            return Err(Error::Usage(format!(
                "--cloud-detector {name} with --raw: the raw output is the model's everywhere, so no detector would run; drop one (or write its p with {p_option})"
            )));
        }
        Ok(detector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detector_nothing_would_read_is_refused() {
        use CloudDetectorArg as A;
        // (choice, --cloud-mask given, --raw, p written, refused with)
        let cases = [
            (A::Auto, true, true, false, None),
            (A::S2cloudless, false, false, false, None),
            (A::Model, false, true, true, None),
            (
                A::S2cloudless,
                true,
                false,
                false,
                Some("--cloud-mask replaces"),
            ),
            (A::Model, true, false, true, Some("--cloud-mask replaces")),
            (
                A::S2cloudless,
                false,
                true,
                false,
                Some("--cloud-detector s2cloudless with --raw"),
            ),
            (
                A::Model,
                false,
                true,
                false,
                Some("write its p with --mask"),
            ),
        ];
        for (arg, mask, raw, writes, want) in cases {
            let got = arg.checked(mask, raw, writes, "--mask");
            match (got, want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{arg:?}: {e}"),
                (got, want) => panic!("{arg:?} {mask} {raw} {writes}: {got:?}, want {want:?}"),
            }
        }
    }
}
