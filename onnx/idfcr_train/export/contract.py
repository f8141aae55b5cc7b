"""The model contract on the Python side: the `idfcr.*` metadata keys an
exported graph carries. The table itself is `onnx/contract_keys.json`, which
the Rust runtime embeds too (src/models/contract.rs), so both sides read one
list of keys; `check` runs in every exporter before a graph is written, so a
misspelt or missing key fails the export instead of the user's run.
"""

from __future__ import annotations

import json
import os

from idfcr_train import ONNX_DIR

TABLE_PATH = os.path.join(ONNX_DIR, "contract_keys.json")


def keys(graph: str) -> dict[str, dict]:
    """key -> its row, for the keys that `graph` ("pixel_cr" or "ind") carries."""
    with open(TABLE_PATH) as f:
        table = json.load(f)["keys"]
    return {row["key"]: row for row in table if graph in row["graphs"]}


def check(metadata: dict[str, str], graph: str) -> None:
    """Every idfcr.* key known for `graph`, every required one present."""
    known = keys(graph)
    unknown = sorted(k for k in metadata if k.startswith("idfcr.") and k not in known)
    assert not unknown, f"metadata keys not in contract_keys.json for {graph}: {unknown}"
    missing = sorted(k for k, row in known.items() if graph in row["required"] and k not in metadata)
    assert not missing, f"{graph} metadata lacks required keys {missing}"
