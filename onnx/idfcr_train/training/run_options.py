"""The options every trainer takes to run on a CPU budget and resume: crop
and batch, learning rate, the wall-clock budget, checkpoint cadence,
threads, seed and --resume. Each trainer gives its own defaults."""

from __future__ import annotations

import argparse


def add_run_options(ap: argparse.ArgumentParser, *, crop: int = 128, batch: int = 8, lr: float, hours: float = 1.0,
                    threads: int = 0) -> None:
    ap.add_argument("--crop", type=int, default=crop)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--hours", type=float, default=hours, help="wall-clock budget of this run")
    ap.add_argument("--save-minutes", type=float, default=5.0, help="write the checkpoint this often")
    ap.add_argument("--threads", type=int, default=threads, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from --ckpt when it exists")
