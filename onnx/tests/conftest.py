"""Shared fixtures. Tests that check the real `idfcr` binary fail (never
skip) when it is missing: CI builds it with `cargo test` before pytest runs,
and a silently skipped comparison would look like a passing one."""

import os

import pytest

BINARY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "target", "debug", "idfcr")


@pytest.fixture
def idfcr_binary() -> str:
    assert os.path.exists(BINARY), f"{BINARY} is missing: build it first (cargo build), these tests run it"
    return BINARY
