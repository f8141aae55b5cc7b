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


def held_out_on_resume(state: dict | None, now: str) -> str | None:
    """The validation blocks to record for a run that may resume `state`:
    this run's (`now`) for a fresh start, else those no run so far trained on
    (`still_held_out`). Every trainer stores this, so a resumed run that
    moves a validation block into training cannot erase the record."""
    if not state:
        return now
    return still_held_out(state.get("meta", {}).get("val_blocks"), now)


def still_held_out(before: str | None, now: str) -> str | None:
    """The blocks a resumed checkpoint has never trained on: those held out by
    every run so far. A run may move a held-out block into training (never
    the reverse: a block once trained on stays seen), and the scoring tools
    read this field to refuse scoring on seen scenes. A checkpoint that
    stored no split keeps none: what its earlier runs saw is unknown."""
    if not before:
        return None
    now_set = set(now.split(","))
    # "none" (not ""): an empty field reads as "no split recorded" and would
    # switch the check off.
    return ",".join(b for b in str(before).split(",") if b in now_set) or "none"

