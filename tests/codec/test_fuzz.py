"""A bounded atheris run over the decoders, seeded with valid messages.

With clang on PATH the run is guided by the decoder's own C code: the test
builds an instrumented copy of easfast._core (sanitizer coverage plus
AddressSanitizer) in a temporary directory and fuzzes that copy. Without
clang it falls back to the ordinary extension, which gives libFuzzer only the
harness's Python branches. The mode that ran, the input count and libFuzzer's
final coverage appear in an "atheris fuzzing" section of the terminal summary.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from easfast import _core as core

if sys.platform == "linux" and platform.machine() == "x86_64":
    # The test extra installs atheris here, so a failed import is a failure.
    import atheris
else:
    pytest.skip(
        "atheris publishes wheels for Linux x86_64 only", allow_module_level=True
    )

FUZZ_SCRIPT = Path(__file__).with_name("fuzz_decoders.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_PACKAGE = REPO_ROOT / "src" / "easfast"

#: Inputs per run. For a longer session raise EASFAST_FUZZ_RUNS and
#: EASFAST_FUZZ_SECONDS together.
RUNS = int(os.environ.get("EASFAST_FUZZ_RUNS", "50000"))
#: Wall-clock limit of the fuzzing subprocess in seconds, startup excluded.
#: libFuzzer stops at whichever of RUNS and this limit comes first.
MAX_TOTAL_TIME = int(os.environ.get("EASFAST_FUZZ_SECONDS", "30"))

#: Clang flags of the instrumented build. fuzzer-no-link adds libFuzzer's
#: coverage counters and comparison hooks without linking libFuzzer itself,
#: which atheris's preloaded runtime provides.
SANITIZER_CFLAGS = "-fsanitize=fuzzer-no-link,address -g"
#: Sanitizer runtime with libFuzzer linked in, shipped by atheris. Preloading
#: it is atheris's documented way to load an instrumented extension: see
#: native_extension_fuzzing.md in github.com/google/atheris.
ASAN_PRELOAD = "asan_with_fuzzer.so"
#: Environment switches of setup.py that must not leak into this build.
BUILD_SWITCHES = ("EASFAST_DEBUG", "EASFAST_CYTHON_TRACE", "EASFAST_ANNOTATE")
INSTALL_HINT = "install clang and libclang-rt-14-dev (Debian/Ubuntu package names)"


@dataclass
class FuzzTarget:
    """The easfast build one fuzzing run loads, and how to start it."""

    mode: str
    description: str
    #: Directory placed first on PYTHONPATH, or None for the installed easfast.
    python_path: Path | None = None
    environment: dict[str, str] = field(default_factory=dict)


class FuzzSummary:
    """Pytest plugin that prints the fuzzing results in the terminal summary."""

    name = "easfast-fuzz-summary"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.lines:
            return
        terminalreporter.section("atheris fuzzing")
        for line in self.lines:
            terminalreporter.write_line(line)


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


def build_instrumented_package(work_dir: Path) -> Path:
    """Build easfast with a clang-instrumented _core under work_dir.

    Returns the directory to put first on PYTHONPATH. The sources are copied
    first, so the build never writes next to the in-place extension in src/.
    """
    source_root = work_dir / "src"
    package = source_root / "easfast"
    shutil.copytree(
        SOURCE_PACKAGE,
        package,
        ignore=shutil.ignore_patterns("*.so", "*.c", "*.html", "__pycache__"),
    )
    shutil.copy2(REPO_ROOT / "setup.py", work_dir / "setup.py")

    environment = {
        key: value for key, value in os.environ.items() if key not in BUILD_SWITCHES
    }
    # EASFAST_DEBUG=1 makes setup.py compile with -O0 -g -UNDEBUG, so C
    # assertions stay enabled. Clang 14 compiled the instrumented _core.c in
    # 2 s at -O0 against 17 s at -O1 (measured once on a 2-core x86_64 VM).
    environment.update(
        CC="clang",
        CFLAGS=SANITIZER_CFLAGS,
        EASFAST_DEBUG="1",
    )
    command = [
        sys.executable,
        "setup.py",
        "--quiet",
        "build_ext",
        f"--build-lib={source_root}",
        f"--build-temp={work_dir / 'build'}",
    ]
    done = subprocess.run(
        command,
        cwd=work_dir,
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"the clang build of easfast._core failed with status {done.returncode}; "
        f"it needs Cython and setuptools in this venv ('.[test]' installs "
        f"them) and clang's sanitizer runtime ({INSTALL_HINT}):\n{output[-4000:]}"
    )
    built = list(package.glob("_core*.so"))
    assert len(built) == 1, f"expected one _core*.so in {package}, found {built}"
    return source_root


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> FuzzTarget:
    """The instrumented build when clang is on PATH, else the installed one."""
    if shutil.which("clang") is None:
        return FuzzTarget(
            mode="python-only",
            description=(
                "clang is not on PATH, so easfast._core is not instrumented and "
                "libFuzzer is guided by the harness's Python branches only; "
                f"{INSTALL_HINT} for coverage of the decoder's C code"
            ),
        )

    preload = Path(atheris.path()) / ASAN_PRELOAD
    assert preload.is_file(), (
        f"{preload} is missing, and native fuzzing preloads it; reinstall "
        f"atheris from a wheel, or take clang off PATH to fuzz in Python-only mode"
    )
    python_path = build_instrumented_package(tmp_path_factory.mktemp("fuzz-build"))
    return FuzzTarget(
        mode="native",
        description=(
            "easfast._core built by clang with sanitizer coverage and "
            "AddressSanitizer, so libFuzzer is guided by the decoder's C code"
        ),
        python_path=python_path,
        environment={
            "LD_PRELOAD": str(preload),
            # LeakSanitizer checks each input whose mallocs and frees do not
            # balance, so a buffer the decoder never frees is a finding.
            # atheris's documentation warns of leak reports from CPython's
            # own allocations: none came up in 50000 inputs on CPython 3.11.
            "ASAN_OPTIONS": "detect_leaks=1",
            # Route every Python object through malloc, so that ASan also
            # detects overruns of the input bytes object and of decoded
            # buffers, which pymalloc's arenas would otherwise hide.
            "PYTHONMALLOC": "malloc",
        },
    )


@pytest.fixture(scope="session")
def fuzz_summary(pytestconfig: pytest.Config) -> FuzzSummary:
    summary = FuzzSummary()
    pytestconfig.pluginmanager.register(summary, FuzzSummary.name)
    return summary


def describe_artifacts(directory: Path) -> str:
    """Return the inputs libFuzzer saved as findings, for the failure message."""
    lines = []
    for path in sorted(directory.iterdir()):
        data = path.read_bytes()
        lines.append(f"{path} ({len(data)} bytes): {data[:512]!r}")
    return "\n".join(lines) or "libFuzzer saved no input"


@pytest.mark.fuzz
def test_decoders_survive_fuzzing(
    tmp_path: Path,
    fuzz_target: FuzzTarget,
    fuzz_summary: FuzzSummary,
    record_property,
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, body in enumerate(seed_bodies()):
        (corpus / f"seed{index}").write_bytes(body)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [
        sys.executable,
        str(FUZZ_SCRIPT),
        f"-runs={RUNS}",
        "-seed=20240601",
        "-max_len=4096",
        "-timeout=10",
        f"-max_total_time={MAX_TOTAL_TIME}",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    environment = dict(os.environ, **fuzz_target.environment)
    if fuzz_target.python_path is not None:
        inherited = os.environ.get("PYTHONPATH")
        entries = [str(fuzz_target.python_path)] + ([inherited] if inherited else [])
        environment["PYTHONPATH"] = os.pathsep.join(entries)

    done = subprocess.run(
        command,
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=MAX_TOTAL_TIME + 120,
    )

    log = done.stderr
    assert done.returncode == 0, (
        f"fuzzing in {fuzz_target.mode} mode found a failure; the input that "
        f"triggered it:\n{describe_artifacts(artifacts)}\n"
        f"libFuzzer output:\n{log[-6000:]}"
    )
    loaded = re.search(r"easfast\._core loaded from (\S+)", log)
    assert loaded, f"the harness did not report its easfast._core:\n{log[-2000:]}"
    loaded_core = Path(loaded.group(1))
    native_counters = 0
    if fuzz_target.python_path is None:
        assert loaded_core == Path(core.__file__)
    else:
        assert loaded_core.is_relative_to(fuzz_target.python_path), (
            f"the harness loaded {loaded_core}, not the instrumented build "
            f"under {fuzz_target.python_path}"
        )
        counters = re.search(r"Loaded \d+ modules\s+\((\d+) inline 8-bit counters", log)
        assert counters, (
            f"libFuzzer registered no coverage counters of the instrumented "
            f"easfast._core:\n{log[-2000:]}"
        )
        native_counters = int(counters.group(1))
        assert native_counters > 0
    summary = re.search(r"Done (\d+) runs in (\d+) second", log)
    assert summary, f"libFuzzer printed no summary:\n{log[-2000:]}"
    inputs = int(summary.group(1))
    assert inputs > 0
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", log)
    assert coverage, f"libFuzzer printed no coverage figure:\n{log[-2000:]}"
    edges, features = (int(value) for value in coverage[-1])
    assert edges > 0
    assert features > 0

    record_property("fuzz_mode", fuzz_target.mode)
    record_property("fuzz_inputs", inputs)
    record_property("fuzz_cov", edges)
    record_property("fuzz_ft", features)
    fuzz_summary.lines += [
        f"mode: {fuzz_target.mode} ({fuzz_target.description})",
        (
            f"{inputs} inputs through 4 decoders without a failure "
            f"(limits: {RUNS} inputs, {MAX_TOTAL_TIME} s)"
        ),
        f"libFuzzer final coverage: cov: {edges} ft: {features}"
        + (
            f" ({native_counters} coverage counters in the instrumented _core)"
            if native_counters
            else ""
        ),
    ]
