"""A bounded atheris run over the decoders, seeded with valid messages."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from easfast import _core as core

if sys.platform == "linux" and platform.machine() == "x86_64":
    # The test extra installs atheris here, so a failed import is a failure.
    import atheris  # noqa: F401
else:
    pytest.skip(
        "atheris publishes wheels for Linux x86_64 only", allow_module_level=True
    )

FUZZ_SCRIPT = Path(__file__).with_name("fuzz_decoders.py")
#: Inputs per run; set EASFAST_FUZZ_RUNS for a longer session.
RUNS = int(os.environ.get("EASFAST_FUZZ_RUNS", "20000"))


def seed_bodies() -> list[bytes]:
    """Return valid messages of every schema, for libFuzzer to mutate."""
    tensors = {
        "f": np.arange(6, dtype=np.float32).reshape(2, 3),
        "d": np.array(-0.5),
        "i": np.array([-1, 300, 2**31 - 1], np.int32),
        "l": np.array([[-(2**63), 2**40]], np.int64),
        "u": np.array([255, 0], np.uint8),
        "w": np.zeros((0, 2), np.uint16),
        "s": np.array([b"a\x00", b""], object),
    }
    with_bool = dict(tensors, b=np.array([True, False]))
    return [
        core.encode_tf_response(with_bool),
        core.encode_tf_request("predict_images", with_bool, ["f", "s"]),
        core.encode_torch_response(list(tensors.values()), tensors),
        core.encode_torch_request(list(tensors.values()), tensors, [0, -1], 2),
        core.encode_tf_response({"q": (core.DT_QINT8, np.array([-128], np.int8))}),
    ]


@pytest.mark.fuzz
def test_decoders_survive_fuzzing(tmp_path, record_property, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, body in enumerate(seed_bodies()):
        (corpus / f"seed{index}").write_bytes(body)
    command = [
        sys.executable,
        str(FUZZ_SCRIPT),
        f"-runs={RUNS}",
        "-seed=20240601",
        "-max_len=4096",
        "-timeout=10",
        "-max_total_time=100",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={tmp_path}/",
        str(corpus),
    ]

    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=160
    )

    log = done.stderr
    assert done.returncode == 0, f"fuzzing found a failure:\n{log[-4000:]}"
    match = re.search(r"Done (\d+) runs in (\d+) second", log)
    assert match, f"libFuzzer printed no summary:\n{log[-2000:]}"
    inputs = int(match.group(1))
    assert inputs > 0
    record_property("fuzz_inputs", inputs)
    with capsys.disabled():
        print(f"\natheris: {inputs} inputs through 4 decoders without a failure")
