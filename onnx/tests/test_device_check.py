"""scripts/device_check.sh runs end to end on CPU with --smoke (the same
code path the GPU machine runs, at tiny sizes)."""

import json
import os
import subprocess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def test_device_check_smoke(tmp_path, idfcr_binary):
    subprocess.run([os.path.join(ROOT, "scripts", "device_check.sh"), "--smoke", "--out", str(tmp_path)],
                   check=True, capture_output=True)
    r = json.loads((tmp_path / "device_check.json").read_text())
    assert r["device"] == "cpu" and r["smoke"]
    graphs = {p["graph"] for p in r["parity"]}
    assert {"testdata/models/tiny_conv.onnx", "testdata/models/ind_tiny_denoiser.onnx"} <= graphs
    assert [t["tile"] for t in r["throughput"]] == [64, 128]
    assert all(t["seconds"] > 0 and t["peak_rss_mb"] > 0 for t in r["throughput"])
    assert r["refine"]["steps"] == 2
    assert r["training"]["steps"] == 2 and (tmp_path / "pixel_cr_rgb.pt").exists()
