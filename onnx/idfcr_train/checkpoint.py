"""Checkpoint files: written atomically (a killed process never leaves a
half-written checkpoint; the previous one stays until the new one is
complete), read on CPU.

Model-specific loaders build on these: `pixel_cr.load_checkpoint`,
`ind.load_checkpoint`, `detector.load_detector`.
"""

from __future__ import annotations

import os

import torch


def save_atomic(obj: dict, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_state(path: str) -> dict:
    return torch.load(path, map_location="cpu")
