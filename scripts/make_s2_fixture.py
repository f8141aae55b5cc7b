#!/usr/bin/env python3
"""Build a tiny but valid Sentinel-2 SAFE product that GDAL's SENTINEL2 driver opens.

    python3 scripts/make_s2_fixture.py --out /tmp/s2 --level L2A --baseline 05.09 [--zip]

Writes `<out>/<PRODUCT>.SAFE/` (and `<out>/<PRODUCT>.zip` with --zip) in the
SAFE_COMPACT layout: the product metadata (MTD_MSIL1C.xml or MTD_MSIL2A.xml)
with the granule list, special values, quantification value and, for
processing baseline 04.00 and later, the per-band radiometric offsets
(RADIO_ADD_OFFSET for L1C, BOA_ADD_OFFSET for L2A); the tile metadata
(MTD_TL.xml) with the UTM geocoding at 10, 20 and 60 m; and lossless
JPEG 2000 band files. It prints the product path.

The pixel values are a known function of band, ground position and level,
so tests can check what comes out (see `dn()`): every band is a smooth ramp
over the ground plus a per-band constant, and a triangle in the upper-left
corner (ground x + y below a threshold) is DN 0, the nodata border a tile
at the edge of a swath has. The L2A product also carries bands GDAL lists in
other resolution groups (B02 at 20 m, AOT, SCL) so that band selection by
name, not position, is exercised.

Needs Python's GDAL bindings (Debian: python3-gdal) with the JP2OpenJPEG
driver.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import zipfile

import numpy as np
from osgeo import gdal, osr

# Band identifiers in the product metadata's band_id order.
BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
NATIVE_RES = {"B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10,
              "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20}
EPSG = 32633
ULX, ULY = 399960.0, 5000040.0
OFFSET = -1000
# Ground distance (m) from the upper-left corner, x + y, below which pixels are nodata.
NODATA_EDGE_M = 1500.0


def file_band(b: str) -> str:
    """B1 -> B01, B8A -> B8A (the file name spelling)."""
    return b if b == "B8A" else f"B{int(b[1:]):02d}"


# Relative brightness of a thick cloud per band (as in the training code).
CLOUD = {"B1": 0.9, "B2": 0.9, "B3": 0.86, "B4": 0.95, "B5": 0.98, "B6": 1.0, "B7": 1.02,
         "B8": 1.01, "B8A": 1.05, "B9": 0.6, "B10": 0.025, "B11": 0.76, "B12": 0.62}


def dn(band: str, res: int, size_10m: int, level: str, baseline_new: bool, cloud: bool = False) -> np.ndarray:
    """The DN image of `band` at `res` metres: a ramp over the ground plus a
    band constant (plus the +1000 offset for baseline >= 04.00), with the
    nodata triangle at DN 0; with `cloud`, a bright soft cloud over the
    centre (cloud opacity 0.9 at its middle)."""
    n = size_10m * 10 // res
    centre = ((np.arange(n) + 0.5) * res).astype(np.float32)  # metres from the corner
    gx, gy = np.meshgrid(centre, centre)
    idx = BANDS.index(band)
    refl = 0.05 + 0.01 * idx + 0.1 * (gx + gy) / (2 * size_10m * 10)  # reflectance
    # Field texture, so that the ground is not trivially smooth.
    refl = refl + 0.02 * np.sin(gx / 170.0) * np.cos(gy / 230.0)
    if level == "L2A":
        refl = refl + 0.002
    if cloud:
        half = size_10m * 10 / 2
        a = 0.9 * np.exp(-((gx - half) ** 2 + (gy - half) ** 2) / (2 * (size_10m * 10 / 8) ** 2))
        refl = refl * (1 - a) + 0.6 * CLOUD[band] * a
    value = np.round(refl * 10000) + (-OFFSET if baseline_new else 0)
    value[(gx + gy) < NODATA_EDGE_M] = 0
    return value.astype(np.uint16)


# Band files as tiled GeoTIFF under their .jp2 names (GDAL opens files by
# content): for large benchmark products, where JPEG 2000 encoding would
# take minutes per band. Real products and the test fixtures use JPEG 2000.
GTIFF_BANDS = False


def write_jp2(path: str, data: np.ndarray, res: int) -> None:
    mem = gdal.GetDriverByName("MEM").Create("", data.shape[1], data.shape[0], 1, gdal.GDT_UInt16)
    mem.SetGeoTransform((ULX, res, 0, ULY, 0, -res))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    mem.SetProjection(srs.ExportToWkt())
    mem.GetRasterBand(1).WriteArray(data)
    if GTIFF_BANDS:
        out = gdal.GetDriverByName("GTiff").CreateCopy(path, mem, options=["TILED=YES", "BLOCKXSIZE=1024", "BLOCKYSIZE=1024"])
    else:
        drv = gdal.GetDriverByName("JP2OpenJPEG")
        if drv is None:
            sys.exit("make_s2_fixture: GDAL has no JP2OpenJPEG driver")
        out = drv.CreateCopy(path, mem, options=["REVERSIBLE=YES", "QUALITY=100", "YCBCR420=NO"])
    if out is None:
        sys.exit(f"make_s2_fixture: cannot write {path}")
    out = None
    aux = path + ".aux.xml"
    if os.path.exists(aux):
        os.remove(aux)


def product_xml(level: str, baseline: str, uri: str, granule_dir: str, image_files: list[str]) -> str:
    new = float(baseline) >= 4.0
    l1c = level == "L1C"
    root = "Level-1C_User_Product" if l1c else "Level-2A_User_Product"
    xsd = "User_Product_Level-1C.xsd" if l1c else "User_Product_Level-2A.xsd"
    files = "\n".join(f"            <IMAGE_FILE>{granule_dir}/{f}</IMAGE_FILE>" for f in image_files)
    gid = f"S2B_OPER_MSI_{'L1C' if l1c else 'L2A'}_TL_2BPS_20230823T120234_A033753_T33TUG_N{baseline}"
    if l1c:
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offsets = ("<Radiometric_Offset_List>\n" + "\n".join(
            f'          <RADIO_ADD_OFFSET band_id="{i}">{OFFSET}</RADIO_ADD_OFFSET>' for i in range(13))
            + "\n        </Radiometric_Offset_List>") if new else ""
    else:
        quant = ("<QUANTIFICATION_VALUES_LIST>\n"
                 '          <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>\n'
                 '          <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>\n'
                 '          <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>\n'
                 "        </QUANTIFICATION_VALUES_LIST>")
        offsets = ("<BOA_ADD_OFFSET_VALUES_LIST>\n" + "\n".join(
            f'          <BOA_ADD_OFFSET band_id="{i}">{OFFSET}</BOA_ADD_OFFSET>' for i in range(13))
            + "\n        </BOA_ADD_OFFSET_VALUES_LIST>") if new else ""
    spectral = "\n".join(
        f'          <Spectral_Information bandId="{i}" physicalBand="{b}"><RESOLUTION>{NATIVE_RES[b]}</RESOLUTION></Spectral_Information>'
        for i, b in enumerate(BANDS))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/{xsd}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="https://psd-14.sentinel2.eo.esa.int/PSD/{xsd}">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2023-08-23T09:55:59.024Z</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>2023-08-23T09:55:59.024Z</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{uri}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{level[1:]}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>2023-08-23T12:02:34.000000Z</GENERATION_TIME>
      <Datatake datatakeIdentifier="GS2B_20230823T095559_033753_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME>
        <DATATAKE_SENSING_START>2023-08-23T09:55:59.024Z</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>122</SENSING_ORBIT_NUMBER>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule granuleIdentifier="{gid}" imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      {quant}
      {offsets}
      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:{root}>
"""


def tile_xml(level: str, size_10m: int) -> str:
    root = "Level-1C_Tile_ID" if level == "L1C" else "Level-2A_Tile_ID"
    xsd = "S2_PDI_Level-1C_Tile_Metadata.xsd" if level == "L1C" else "S2_PDI_Level-2A_Tile_Metadata.xsd"
    sizes = "\n".join(
        f'      <Size resolution="{r}"><NROWS>{size_10m * 10 // r}</NROWS><NCOLS>{size_10m * 10 // r}</NCOLS></Size>'
        for r in (10, 20, 60))
    geo = "\n".join(
        f'      <Geoposition resolution="{r}"><ULX>{ULX:.0f}</ULX><ULY>{ULY:.0f}</ULY><XDIM>{r}</XDIM><YDIM>-{r}</YDIM></Geoposition>'
        for r in (10, 20, 60))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/{xsd}">
  <n1:General_Info>
    <SENSING_TIME>2023-08-23T10:05:35.271949Z</SENSING_TIME>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding metadataLevel="Brief">
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone 33N</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:{EPSG}</HORIZONTAL_CS_CODE>
{sizes}
{geo}
    </Tile_Geocoding>
  </n1:Geometric_Info>
</n1:{root}>
"""


def build(out: str, level: str, baseline: str, size_10m: int, make_zip: bool, cloud: bool = False) -> str:
    if size_10m % 6:
        sys.exit("make_s2_fixture: --size must be a multiple of 6 (the 60 m grid)")
    level = level.upper()
    bl = baseline.replace(".", "")
    uri = f"S2B_MSI{level}_20230823T095559_N{bl}_R122_T33TUG_20230823T120234.SAFE"
    safe = os.path.join(out, uri)
    if os.path.exists(safe):
        shutil.rmtree(safe)
    granule = f"GRANULE/{level}_T33TUG_A033753_20230823T095553"
    img = os.path.join(safe, granule, "IMG_DATA")
    prefix = "T33TUG_20230823T095559"
    new = float(baseline) >= 4.0
    image_files = []
    if level == "L1C":
        os.makedirs(img)
        for b in BANDS:
            name = f"{prefix}_{file_band(b)}"
            write_jp2(os.path.join(img, name + ".jp2"), dn(b, NATIVE_RES[b], size_10m, level, new, cloud), NATIVE_RES[b])
            image_files.append(f"IMG_DATA/{name}")
    else:
        # L2A has no B10; the 20 m folder also holds B02 (resampled), which
        # must not end up in the 20 m group; AOT and SCL are not reflectance.
        per_res = {10: ["B2", "B3", "B4", "B8", "AOT", "WVP"],
                   20: ["B2", "B5", "B6", "B7", "B8A", "B11", "B12", "AOT", "WVP", "SCL"],
                   60: ["B1", "B9", "AOT", "WVP", "SCL"]}
        for res, bands in per_res.items():
            d = os.path.join(img, f"R{res}m")
            os.makedirs(d, exist_ok=True)
            for b in bands:
                if b in ("AOT", "WVP", "SCL"):
                    n = size_10m * 10 // res
                    data = np.full((n, n), 4 if b == "SCL" else 120, np.uint16)
                    fb = b
                else:
                    data = dn(b, res, size_10m, level, new, cloud)
                    fb = file_band(b)
                name = f"{prefix}_{fb}_{res}m"
                write_jp2(os.path.join(d, name + ".jp2"), data, res)
                image_files.append(f"IMG_DATA/R{res}m/{name}")
    if level == "L2A":
        # Cloud and snow probabilities, which GDAL lists in the 20 and 60 m groups.
        qi = os.path.join(safe, granule, "QI_DATA")
        os.makedirs(qi)
        for kind in ("CLDPRB", "SNWPRB"):
            for res in (20, 60):
                n = size_10m * 10 // res
                write_jp2(os.path.join(qi, f"MSK_{kind}_{res}m.jp2"), np.zeros((n, n), np.uint16), res)
    with open(os.path.join(safe, granule, "MTD_TL.xml"), "w") as f:
        f.write(tile_xml(level, size_10m))
    with open(os.path.join(safe, f"MTD_MSI{level}.xml"), "w") as f:
        f.write(product_xml(level, baseline, uri, granule, image_files))
    if make_zip:
        zpath = os.path.join(out, uri[:-5] + ".zip")
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
            for dirpath, _, files in os.walk(safe):
                for fn in sorted(files):
                    full = os.path.join(dirpath, fn)
                    z.write(full, os.path.relpath(full, out))
        return zpath
    return safe


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write the product into")
    ap.add_argument("--level", choices=["L1C", "L2A"], default="L1C")
    ap.add_argument("--baseline", default="05.09", help="processing baseline, e.g. 03.01 (no offset) or 05.09")
    ap.add_argument("--size", type=int, default=192, help="10 m grid size in pixels (multiple of 6)")
    ap.add_argument("--zip", action="store_true", help="also write <PRODUCT>.zip and print its path")
    ap.add_argument("--cloud", action="store_true", help="put a bright soft cloud over the centre")
    ap.add_argument("--gtiff-bands", action="store_true",
                    help="write band files as GeoTIFF under their .jp2 names (fast; for big benchmark products)")
    a = ap.parse_args(argv)
    global GTIFF_BANDS
    GTIFF_BANDS = a.gtiff_bands
    os.makedirs(a.out, exist_ok=True)
    print(build(a.out, a.level, a.baseline, a.size, a.zip, a.cloud))


if __name__ == "__main__":
    main()
