"""mypy --strict accepts the client modules and the typed usage example."""

from __future__ import annotations

from pathlib import Path

import pytest

# mypy and types-pycurl are in the "test" extra.
mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[1]
CHECKED = [
    "src/easfast/_auth.py",
    "src/easfast/_endpoints.py",
    "src/easfast/_health.py",
    "src/easfast/_session.py",
    "src/easfast/_transport.py",
    "src/easfast/client.py",
    "src/easfast/discovery.py",
    "src/easfast/requests.py",
    "src/easfast/retry.py",
    "tests/typing/usage.py",
]


def test_mypy_strict_passes(tmp_path: Path) -> None:
    # A fresh cache directory, so that the check leaves nothing behind and
    # an earlier run's cache cannot hide an error.
    paths = [str(ROOT / name) for name in CHECKED]
    stdout, stderr, status = mypy_api.run(
        ["--strict", "--cache-dir", str(tmp_path), *paths]
    )
    assert status == 0, stdout + stderr
