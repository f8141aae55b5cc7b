//! QGIS cloud polygons as the user's cloud mask (`--cloud-mask
//! clouds.gpkg|layername=clouds`): the layer picked the way QGIS names it,
//! burnt onto the input's grid (`cloud_mask` reads every other kind).

use gdal::Dataset;
use ndarray::Array2;

use crate::error::{Error, Result};
use crate::io::reader::InputRaster;

/// Cloud polygons (a GeoPackage, shapefile or GeoJSON digitised in QGIS,
/// in any CRS) burnt onto the input's grid, shrunk as a raster mask would
/// be (no side over `max_map_px`): every pixel a polygon touches is cloud.
/// Returns the map, the shrink factor and the number of polygons.
pub(super) fn polygons(
    ds: &Dataset,
    path: &str,
    pick: Option<LayerPick>,
    input: &InputRaster,
    max_map_px: usize,
) -> Result<(Array2<f32>, usize, usize)> {
    use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform};
    use gdal::vector::LayerAccess;
    let unplaced = || {
        let why = if crate::io::same_grid::gcps_of(&input.ds).is_empty() {
            "holds polygons, and the input has no georeferencing (or no CRS) to place them on"
        } else {
            "holds polygons, and the input is placed by ground control points (GCPs), not a grid, to place them on: warp it onto a grid first (gdalwarp)"
        };
        Error::input(path, why)
    };
    let gt = input.ds.geo_transform().map_err(|_| unplaced())?;
    let mut srs = input.ds.spatial_ref().map_err(|_| unplaced())?;
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let (iw, ih) = (input.width, input.height);
    let k = iw.max(ih).div_ceil(max_map_px).max(1);
    let (w, h) = (iw.div_ceil(k), ih.div_ceil(k));
    let gdal_err =
        |e: gdal::errors::GdalError| Error::input(path, format!("cannot burn its polygons: {e}"));
    let mut map = gdal::DriverManager::get_driver_by_name("MEM")
        .and_then(|d| d.create_with_band_type::<u8, _>("", w, h, 1))
        .map_err(gdal_err)?;
    let kf = k as f64;
    map.set_geo_transform(&[gt[0], gt[1] * kf, gt[2] * kf, gt[3], gt[4] * kf, gt[5] * kf])
        .and_then(|()| map.set_spatial_ref(&srs))
        .map_err(gdal_err)?;
    let mut geometries = Vec::new();
    for mut layer in cloud_layers(ds, path, pick)? {
        let transform = match layer.spatial_ref() {
            Some(mut from) if from != srs => {
                from.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
                Some(CoordTransform::new(&from, &srs).map_err(gdal_err)?)
            }
            Some(_) => None,
            // A shapefile without its .prj: its coordinates may be degrees
            // over a UTM scene, which burns nothing (as a raster mask without
            // a coordinate system is refused).
            None if layer.feature_count() > 0 => {
                return Err(Error::input(
                    path,
                    format!(
                        "layer {} has no coordinate system and the input has one; assign it (ogr2ogr -a_srs) if its coordinates are the input's",
                        layer.name()
                    ),
                ));
            }
            None => None,
        };
        for feature in layer.features() {
            if let Some(g) = feature.geometry() {
                geometries.push(match &transform {
                    Some(t) => g.transform(t).map_err(gdal_err)?,
                    None => g.clone(),
                });
            }
        }
    }
    if !geometries.is_empty() {
        let burn = vec![1.0; geometries.len()];
        let opts = gdal::raster::RasterizeOptions {
            all_touched: true,
            ..Default::default()
        };
        gdal::raster::rasterize(&mut map, &[1], &geometries, &burn, Some(opts))
            .map_err(gdal_err)?;
    }
    let buf = map
        .rasterband(1)
        .and_then(|b| b.read_as::<u8>((0, 0), (w, h), (w, h), None))
        .map_err(gdal_err)?;
    if !geometries.is_empty() && buf.data().iter().all(|&v| v == 0) {
        // Clouds the user drew somewhere else (another scene, another
        // place) would pass the whole input through as "clear".
        return Err(Error::input(
            path,
            format!(
                "none of its {} polygons touches the input's extent; are they drawn over this scene?",
                geometries.len()
            ),
        ));
    }
    let p = Array2::from_shape_vec((h, w), buf.data().iter().map(|&v| v as f32).collect())
        .expect("the buffer is h x w");
    Ok((p, k, geometries.len()))
}

/// One layer of a vector file, as QGIS names it in a layer's source
/// ("clouds.gpkg|layername=clouds", "clouds.gpkg|layerid=0").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LayerPick {
    Name(String),
    Id(usize),
}

/// Split QGIS's "FILE|layername=NAME" (or "|layerid=N") into the file and
/// the layer; other "|key=value" options (a subset filter) are refused
/// rather than ignored: they would widen the clouds to the whole layer.
pub(super) fn split_layer(path: &str) -> Result<(&str, Option<LayerPick>)> {
    // A file whose own name holds a "|" is that file.
    let whole = std::path::Path::new(path).exists();
    let Some((file, options)) = path.split_once('|').filter(|_| !whole) else {
        return Ok((path, None));
    };
    let mut pick = None;
    for option in options.split('|') {
        pick = Some(match option.split_once('=') {
            Some(("layername", name)) if !name.is_empty() => LayerPick::Name(name.to_string()),
            Some(("layerid", id)) => LayerPick::Id(id.parse().map_err(|_| {
                Error::Usage(format!("--cloud-mask {path}: layerid={id} is not a layer number"))
            })?),
            _ => {
                return Err(Error::Usage(format!(
                    "--cloud-mask {path}: only |layername=NAME or |layerid=N can follow the file name, not |{option}"
                )))
            }
        });
    }
    Ok((file, pick))
}

/// The layers whose polygons are cloud: the one picked, or the file's only
/// one. A file of several layers (clouds next to an area of interest, say)
/// without a pick is refused: burning them all would call the whole scene
/// cloud.
fn cloud_layers<'a>(
    ds: &'a Dataset,
    path: &str,
    pick: Option<LayerPick>,
) -> Result<Vec<gdal::vector::Layer<'a>>> {
    use gdal::vector::LayerAccess;
    let names = || -> String { ds.layers().map(|l| l.name()).collect::<Vec<_>>().join(", ") };
    match pick {
        Some(LayerPick::Name(n)) => ds.layer_by_name(&n).map(|l| vec![l]).map_err(|_| {
            Error::input(path, format!("has no layer {n:?}; its layers: {}", names()))
        }),
        Some(LayerPick::Id(i)) => ds.layer(i).map(|l| vec![l]).map_err(|_| {
            Error::input(
                path,
                format!(
                    "has no layer {i} (layers 0 to {}: {})",
                    ds.layer_count().saturating_sub(1),
                    names()
                ),
            )
        }),
        None if ds.layer_count() > 1 => Err(Error::input(
            path,
            format!(
                "holds {} layers ({}); name the cloud layer: --cloud-mask '{path}|layername=NAME'",
                ds.layer_count(),
                names()
            ),
        )),
        None => Ok(ds.layers().collect()),
    }
}
