//! `--cloud-mask` and its options: the user's own cloud mask instead of the
//! model's cloud probability (read by `io::cloud_mask`).

use crate::error::{Error, Result};

const CLOUD_MASK: &str = "Your own cloud mask";

/// `--cloud-mask` and how to read it.
#[derive(clap::Args, Debug, Default)]
pub struct CloudMaskArgs {
    /// Blend by this cloud mask instead of the model's cloud probability: a
    /// one-band raster on the input's pixel grid, or georeferenced over the
    /// input's extent at any resolution (a 20 m scene classification over
    /// 10 m bands). A float mask holds probabilities 0..1; an integer mask is
    /// 0 (clear) and one other value (cloud), or classes with --cloud-values.
    /// Or cloud polygons (GeoPackage, shapefile, GeoJSON; any CRS); of a
    /// file of several layers, name one: 'clouds.gpkg|layername=clouds'.
    /// Beyond its clouds and their feathered edges the input comes back bit
    /// for bit, and tiles over clear ground are not run.
    #[arg(id = "cloud_mask", long = "cloud-mask", value_name = "FILE", help_heading = CLOUD_MASK)]
    pub file: Option<String>,
    /// Values of --cloud-mask that are cloud, comma-separated (Sentinel-2
    /// scene classification: 3,8,9,10 with shadows and cirrus; Fmask: 2,4)
    #[arg(id = "cloud_values", long = "cloud-values", value_name = "V,V,...", requires = "cloud_mask", help_heading = CLOUD_MASK, allow_negative_numbers = true)]
    pub values: Option<String>,
    /// Grow the mask's clouds by this many pixels (of the input) [default: 0]
    #[arg(id = "cloud_mask_grow", long = "cloud-mask-grow", value_name = "PX", requires = "cloud_mask", help_heading = CLOUD_MASK, allow_negative_numbers = true)]
    pub grow_px: Option<usize>,
    /// Feathering: p falls from 1 to 0 over twice this many pixels (of the
    /// input) beyond the grown clouds, so that no seam shows [default: 4]
    #[arg(id = "cloud_mask_feather", long = "cloud-mask-feather", value_name = "PX", requires = "cloud_mask", help_heading = CLOUD_MASK, allow_negative_numbers = true)]
    pub feather_px: Option<usize>,
}

impl CloudMaskArgs {
    /// `remove`: read the mask against the job's input into its probability.
    pub fn apply(&self, cfg: &mut crate::config::RemoveConfig) -> Result<()> {
        let Some((file, spec)) = self.spec(cfg.opts.raw)? else {
            return Ok(());
        };
        let taken = std::iter::once(&cfg.job.output).chain(&cfg.job.mask);
        if taken
            .into_iter()
            .any(|o| crate::io::names::same_target(o, std::path::Path::new(&file)))
        {
            return Err(Error::Usage(format!(
                "--cloud-mask {file}: that is an output of this run; the mask would be replaced by what it made"
            )));
        }
        let input =
            crate::io::reader::InputRaster::open(&cfg.job.input, cfg.opts.band_idx.as_deref())?;
        cfg.job.probability = Some(crate::io::cloud_mask::read(&file, &input, &spec)?);
        Ok(())
    }

    /// The mask's path and how to read it, when one is given.
    /// `raw`: the run writes the model's output everywhere, which no mask
    /// would change (refused rather than read and ignored).
    pub fn spec(
        &self,
        raw: bool,
    ) -> Result<Option<(String, crate::io::cloud_mask::CloudMaskSpec)>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        if raw {
            return Err(Error::Usage(
                "--cloud-mask with --raw: the raw output is the model's everywhere, whatever the mask says; drop one".into(),
            ));
        }
        let cloud_values = match &self.values {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| {
                            Error::Usage(format!("--cloud-values {text}: `{v}` is not a number"))
                        })
                })
                .collect::<Result<Vec<f64>>>()?,
        };
        Ok(Some((
            file.clone(),
            crate::io::cloud_mask::CloudMaskSpec {
                cloud_values,
                grow_px: self.grow_px.unwrap_or(0),
                feather_px: self.feather_px.unwrap_or(4),
            },
        )))
    }
}
