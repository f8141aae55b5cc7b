"""QGIS Processing script: remove clouds from a raster layer with idfcr.

Install: Processing Toolbox > Scripts > Add Script to Toolbox... and pick this
file (or copy it into your profile's processing/scripts folder). The `idfcr`
binary must be on PATH, or set its full path in the advanced "idfcr binary"
parameter.

The algorithm calls the binary with an argument list (no shell), passes the
layer source verbatim (it may be a SENTINEL2_L2A:... subdataset or a
/vsizip/ path), shows progress from `--progress gdal`, stops the run when
the user cancels, and raises on a non-zero exit with idfcr's error line.
"""

import queue
import shutil
import subprocess
import threading

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

DEVICES = ["auto", "cpu", "cuda"]
FORMATS = ["GTiff", "COG"]


def gdal_progress(text, state):
    """Feed stdout text of `--progress gdal` ("0...10...20...") and return
    the percentage reached so far. `state` keeps the partial number."""
    pct = state.get("pct", 0.0)
    for ch in text:
        if ch.isdigit():
            state["num"] = state.get("num", "") + ch
            continue
        if state.get("num"):
            pct = float(state.pop("num"))
        if ch == ".":
            pct += 2.5
    if state.get("num"):
        pct = max(pct, float(state["num"]))
    state["pct"] = min(pct, 100.0)
    return state["pct"]


def pump_chars(stream, sink):
    """Put each character of `stream` on the queue `sink`, then None."""
    for ch in iter(lambda: stream.read(1), ""):
        sink.put(ch)
    sink.put(None)


class IdfcrRemoveClouds(QgsProcessingAlgorithm):
    INPUT, OUTPUT, MASK = "INPUT", "OUTPUT", "MASK"
    CLOUD_MASK, CLOUD_VALUES = "CLOUD_MASK", "CLOUD_VALUES"
    MODEL, DEVICE, FORMAT, TILE, OVERLAP, CO, BINARY = "MODEL", "DEVICE", "FORMAT", "TILE", "OVERLAP", "CO", "BINARY"
    MODEL_NAME = "MODEL_NAME"

    def name(self):
        return "idfcr_remove"

    def displayName(self):
        return "Remove clouds (IDF-CR)"

    def group(self):
        return "idfcr"

    def groupId(self):
        return "idfcr"

    def shortHelpString(self):
        return "Removes clouds with the IDF-CR Pixel-CR model; keeps georeferencing, nodata and band names."

    def createInstance(self):
        return IdfcrRemoveClouds()

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Cloudy raster"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Cloud-free raster"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.MASK, "Cloud probability", optional=True,
                                                                  createByDefault=False))
        self.addParameter(QgsProcessingParameterMapLayer(
            self.CLOUD_MASK, "Your own cloud mask, a raster or cloud polygons (blend by it instead of the "
            "model's cloud probability)", optional=True))
        advanced = [
            QgsProcessingParameterString(self.CLOUD_VALUES, "Cloud mask values that are cloud (comma-separated; "
                                         "empty: a binary mask or probabilities 0..1)", optional=True),
            QgsProcessingParameterFile(self.MODEL, "Model (.onnx; empty: bundled default)", optional=True,
                                       extension="onnx"),
            QgsProcessingParameterString(self.MODEL_NAME, "Or a bundled model by name (`idfcr models` lists them, "
                                         "e.g. pixel_cr_rice1 for haze)", optional=True),
            QgsProcessingParameterEnum(self.DEVICE, "Device", options=DEVICES, defaultValue=0),
            QgsProcessingParameterEnum(self.FORMAT, "Output format", options=FORMATS, defaultValue=0),
            QgsProcessingParameterNumber(self.TILE, "Tile size (px)", defaultValue=480, minValue=32, maxValue=8192),
            QgsProcessingParameterNumber(self.OVERLAP, "Tile overlap (px, 0: from the model)", defaultValue=0,
                                         minValue=0),
            QgsProcessingParameterString(self.CO, "Creation options (KEY=VALUE, space separated)", optional=True),
            QgsProcessingParameterString(self.BINARY, "idfcr binary", defaultValue="idfcr"),
        ]
        for p in advanced:
            p.setFlags(p.flags() | p.FlagAdvanced)
            self.addParameter(p)

    def build_args(self, parameters, context):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("no input raster layer")
        binary = self.parameterAsString(parameters, self.BINARY, context) or "idfcr"
        exe = shutil.which(binary) or binary
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        args = [exe, "remove", layer.source(), out, "--overwrite", "--progress", "gdal",
                "--device", DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                "--format", FORMATS[self.parameterAsEnum(parameters, self.FORMAT, context)],
                "--tile", str(self.parameterAsInt(parameters, self.TILE, context))]
        overlap = self.parameterAsInt(parameters, self.OVERLAP, context)
        if overlap:
            args += ["--overlap", str(overlap)]
        model = self.parameterAsFile(parameters, self.MODEL, context)
        model_name = (self.parameterAsString(parameters, self.MODEL_NAME, context) or "").strip()
        if model and model_name:
            raise QgsProcessingException("give a model file or a bundled model's name, not both")
        if model or model_name:
            args += ["--model", model or model_name]
        mask = self.parameterAsOutputLayer(parameters, self.MASK, context) if parameters.get(self.MASK) else None
        if mask:
            args += ["--mask", mask]
        cloud_mask = self.parameterAsLayer(parameters, self.CLOUD_MASK, context)
        if cloud_mask is not None and cloud_mask.providerType() not in ("gdal", "ogr"):
            # A scratch (memory), database or web layer has no file idfcr could open.
            raise QgsProcessingException(
                f"cloud mask layer '{cloud_mask.name()}' is not a file ({cloud_mask.providerType()} layer): "
                "save it as a GeoPackage or GeoTIFF first")
        if cloud_mask is not None:
            # A vector layer's source names its layer within the file ("clouds.gpkg|layername=x"),
            # which idfcr reads in the same syntax; a filter on the layer it cannot apply.
            path, *options = cloud_mask.source().split("|")
            picks = [o for o in options if o.startswith(("layername=", "layerid="))]
            if any(o.startswith("subset=") for o in options):
                raise QgsProcessingException(
                    f"cloud mask layer '{cloud_mask.name()}' has a filter, which idfcr cannot apply: "
                    "save the filtered features as their own layer first")
            args += ["--cloud-mask", "|".join([path] + picks[:1])]
            values = self.parameterAsString(parameters, self.CLOUD_VALUES, context)
            if values:
                args += ["--cloud-values", values]
        for kv in (self.parameterAsString(parameters, self.CO, context) or "").split():
            args += ["--co", kv]
        return args, out, mask

    def processAlgorithm(self, parameters, context, feedback):
        args, out, mask = self.build_args(parameters, context)
        feedback.pushInfo("running: " + " ".join(args))
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=0) as proc:
            # Both pipes are read by threads, so that Cancel is seen while
            # idfcr prints nothing (loading the model, writing a COG at the
            # end) and a long stderr cannot fill its pipe and stall the run.
            chars, err_parts = queue.Queue(), []
            threading.Thread(target=pump_chars, args=(proc.stdout, chars), daemon=True).start()
            err_reader = threading.Thread(target=lambda: err_parts.append(proc.stderr.read()), daemon=True)
            err_reader.start()
            state = {}
            while True:
                try:
                    ch = chars.get(timeout=0.2)
                except queue.Empty:
                    ch = ""
                if ch is None:
                    break
                if ch:
                    feedback.setProgress(gdal_progress(ch, state))
                if feedback.isCanceled():
                    proc.terminate()  # idfcr removes its partial files on SIGTERM
                    proc.wait()
                    raise QgsProcessingException("cancelled")
            code = proc.wait()
            err_reader.join()
            err = "".join(err_parts).strip()
        if code != 0:
            raise QgsProcessingException(err or f"idfcr exited with code {code}")
        if err:
            feedback.reportError(err, fatalError=False)
        result = {self.OUTPUT: out}
        if mask:
            result[self.MASK] = mask
        return result
