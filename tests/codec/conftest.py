"""Fixtures of the codec tests: Google's protobuf classes for the EAS schemas.

The project's ``.proto`` files are compiled with ``grpc_tools.protoc`` once
per session into a temporary directory, so the reference implementation
always follows the schema that ships with easfast.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

PROTO_DIR = Path(__file__).resolve().parents[2] / "src" / "easfast" / "proto"
TEST_PROTO = Path(__file__).resolve().parent / "unpacked.proto"


def _compile(proto: Path, out: Path) -> ModuleType:
    from grpc_tools import protoc

    status = protoc.main(
        ["protoc", f"-I{proto.parent}", f"--python_out={out}", str(proto)]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status} on {proto}")
    path = out / f"{proto.stem}_pb2.py"
    name = f"_easfast_test_{proto.stem}_pb2"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pb(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Google's generated classes: ``pb.tf``, ``pb.torch`` and ``pb.unpacked``."""
    out = tmp_path_factory.mktemp("pb2")
    return SimpleNamespace(
        tf=_compile(PROTO_DIR / "tf_request.proto", out),
        torch=_compile(PROTO_DIR / "pytorch_predict.proto", out),
        unpacked=_compile(TEST_PROTO, out),
    )
