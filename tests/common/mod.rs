//! Helpers shared by the integration tests: fixture paths, GeoTIFF
//! generation in temp dirs, running the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gdal::raster::{Buffer, RasterCreationOptions};
use gdal::spatial_ref::SpatialRef;
use gdal::{Dataset, DriverManager, GeoTransform, Metadata};

pub const GEO: GeoTransform = [500000.0, 10.0, 0.0, 4200000.0, 0.0, -10.0];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_model(name: &str) -> PathBuf {
    repo().join("testdata/models").join(format!("{name}.onnx"))
}

/// Run the idfcr binary with `args` in `cwd`.
pub fn idfcr(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run idfcr")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A smooth, image-like test pattern with some texture, 8-bit range.
pub fn pattern(b: usize, y: usize, x: usize) -> f64 {
    let (yf, xf) = (y as f64, x as f64);
    let v = 120.0
        + 60.0 * ((xf / 17.0 + b as f64).sin() * (yf / 23.0).cos())
        + 20.0 * ((xf * yf) / 97.0).sin();
    v.clamp(1.0, 255.0)
}

/// Write a GTiff of type T with `bands` bands, values from `f(band_idx, row, col)`.
pub fn write_tiff<T: gdal::raster::GdalType + Copy>(
    path: &Path,
    w: usize,
    h: usize,
    bands: usize,
    nodata: Option<f64>,
    f: impl Fn(usize, usize, usize) -> T,
) {
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver
        .create_with_band_type_with_options::<T, _>(
            path,
            w,
            h,
            bands,
            &RasterCreationOptions::new(),
        )
        .unwrap();
    ds.set_geo_transform(&GEO).unwrap();
    ds.set_spatial_ref(&SpatialRef::from_epsg(32633).unwrap())
        .unwrap();
    ds.set_metadata_item("SENSOR", "test-pattern", "").unwrap();
    for b in 0..bands {
        let mut band = ds.rasterband(b + 1).unwrap();
        let data: Vec<T> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (y, x)))
            .map(|(y, x)| f(b, y, x))
            .collect();
        let mut buf = Buffer::new((w, h), data);
        band.write((0, 0), (w, h), &mut buf).unwrap();
        if nodata.is_some() {
            band.set_no_data_value(nodata).unwrap();
        }
        band.set_description(&format!("band {}", b + 1)).unwrap();
    }
    ds.close().unwrap();
}

/// A 3-band Byte GeoTIFF with the test pattern; nodata 0 in the rectangle `hole` (x0, y0, x1, y1).
pub fn rgb_tiff(path: &Path, w: usize, h: usize, hole: Option<(usize, usize, usize, usize)>) {
    write_tiff::<u8>(path, w, h, 3, Some(0.0), |b, y, x| match hole {
        Some((x0, y0, x1, y1)) if x >= x0 && x < x1 && y >= y0 && y < y1 => 0,
        _ => pattern(b, y, x) as u8,
    });
}

/// All bands as f64, band-major.
pub fn read_all(path: &Path) -> (Vec<Vec<f64>>, usize, usize) {
    let ds = Dataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    let bands = (1..=ds.raster_count())
        .map(|b| {
            ds.rasterband(b)
                .unwrap()
                .read_as::<f64>((0, 0), (w, h), (w, h), None)
                .unwrap()
                .data()
                .to_vec()
        })
        .collect();
    (bands, w, h)
}

/// Files in `dir`, sorted, as names.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// `path` opened for update (to add metadata, masks, GCPs to a fixture).
pub fn open_update(path: impl AsRef<Path>) -> Dataset {
    Dataset::open_ex(
        path.as_ref(),
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Tag bands 1-3 of a raster blue, green, red (a BGR file, as PlanetScope's
/// or a Sentinel-2 stack in wavelength order would be).
pub fn tag_blue_green_red(path: impl AsRef<Path>) {
    use gdal::raster::ColorInterpretation::{BlueBand, GreenBand, RedBand};
    let ds = open_update(path);
    for (i, c) in [BlueBand, GreenBand, RedBand].into_iter().enumerate() {
        let mut band = ds.rasterband(i + 1).unwrap();
        band.set_color_interpretation(c).unwrap();
    }
    ds.close().unwrap();
}
