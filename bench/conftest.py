"""Shared setup of the benchmarks: median ratios printed after the tables.

A benchmark that sets ``extra_info["case"]`` and ``extra_info["impl"]`` is
compared with the other implementations of the same case: the summary lists
each one's median as a multiple of easfast's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

_medians: dict[str, dict[str, float]] = defaultdict(dict)


@pytest.hookimpl(hookwrapper=True)
def pytest_benchmark_group_stats(config: Any, benchmarks: list[Any], group_by: str):
    for bench in benchmarks:
        info = bench["extra_info"]
        if "case" in info and "impl" in info:
            _medians[info["case"]][info["impl"]] = bench["median"]
    yield


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _medians:
        return
    terminalreporter.section("median ratios (other / easfast)")
    for case, impls in sorted(_medians.items()):
        base = impls.get("easfast")
        if not base:
            continue
        parts = [f"easfast {base * 1e6:.1f} us"]
        for impl, median in sorted(impls.items()):
            if impl != "easfast":
                parts.append(f"{impl} x{median / base:.2f}")
        terminalreporter.write_line(f"{case:32} " + ", ".join(parts))
