"""Tests of ``easfast demo``: the report, its checks and its exit status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from easfast import demo


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "easfast.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestDemo:
    def test_shares_follow_weights(self) -> None:
        report = demo.run(requests=80, weights=[5, 2, 1])
        assert report.ok
        assert report.requests == 80
        assert not report.errors
        assert not report.wrong
        assert [count for _, _, count in report.shares] == [50, 20, 10]

    def test_report_lists_counts_and_verdict(self) -> None:
        text = demo.format_report(demo.run(requests=16, weights=[1, 1]))
        assert "requests        16" in text
        assert "errors          0" in text
        assert "wrong answers   0" in text
        assert "p50" in text
        assert text.endswith("demo passed")

    def test_failed_report_is_not_ok(self) -> None:
        report = demo.DemoReport(requests=3, total_weight=1)
        report.wrong.append("request 2 (image 2): class 1, expected 7")
        assert not report.ok
        assert demo.format_report(report).endswith("demo FAILED")

    @pytest.mark.parametrize(
        "text, match",
        [("5,x", "expected integers"), ("0,0", "at least one must be positive"),
         ("-1,2", "weights must be >= 0")],
        ids=["not-int", "all-zero", "negative"],
    )
    def test_invalid_weights_raise(self, text: str, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            demo.parse_weights(text)


class TestDemoCommand:
    def test_exits_0_and_prints_passed(self) -> None:
        result = run_cli("--requests", "30", "--weights", "2,1")
        assert result.returncode == 0, result.stderr
        assert "demo passed" in result.stdout

    def test_invalid_requests_exit_2(self) -> None:
        result = run_cli("--requests", "0")
        assert result.returncode == 2
        assert "invalid --requests 0" in result.stderr
