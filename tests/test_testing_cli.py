"""``easfast serve`` as a subprocess, and the command's argument checks."""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import signal
import subprocess
import sys
import threading

import pytest

from easfast import cli

READY_TIMEOUT = 30.0


class ServeProcess:
    """``python -m easfast.cli serve ...`` with its output read by a thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "easfast.cli", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until_ready(self) -> dict[str, list[str]]:
        """Return the printed items by key, once the ready line comes."""
        items: dict[str, list[str]] = {}
        while True:
            line = self.lines.get(timeout=READY_TIMEOUT)
            if line is None:
                raise AssertionError(
                    f"serve exited early: {self.process.stderr.read()}"
                )
            if line == cli.READY_LINE:
                return items
            key, _, value = line.partition(" ")
            items.setdefault(key, []).append(value)

    def remaining_lines(self) -> list[str]:
        lines = []
        while (line := self.lines.get(timeout=READY_TIMEOUT)) is not None:
            lines.append(line)
        return lines

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(READY_TIMEOUT)
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def serve():
    started: list[ServeProcess] = []

    def start(*args: str) -> ServeProcess:
        process = ServeProcess(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def post(address: str, path: str, body: bytes) -> tuple[int, bytes]:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_json(address: str, path: str) -> object:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


class TestServe:
    @pytest.mark.parametrize(
        "stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"]
    )
    def test_serves_until_signal(self, serve, stop_signal):
        process = serve("--instances", "2", "--weights", "3,1", "--processor", "string")
        items = process.read_until_ready()

        assert items["service"] == ["mnist"]
        assert items["processor"] == ["string"]
        assert items["token"] == ["none"]
        instances = [value.split() for value in items["instance"]]
        assert [(weight_word, weight) for _, weight_word, weight in instances] == [
            ("weight", "3"),
            ("weight", "1"),
        ]
        gateway = items["gateway"][0]
        assert items["predict_url"] == [f"http://{gateway}/api/predict/mnist"]

        assert post(gateway, "/api/predict/mnist", b"abc") == (200, b"cba")
        assert post(instances[1][0], "/api/predict/mnist", b"xy") == (200, b"yx")
        upstream = get_json(
            items["discovery"][0], "/api/v1/servicediscovery/upstreams/mnist"
        )
        listed = [(i["port"], i["weight"]) for i in upstream["endpoints"]["items"]]
        assert listed == [
            (int(instances[0][0].split(":")[1]), 3),
            (int(instances[1][0].split(":")[1]), 1),
        ]

        process.process.send_signal(stop_signal)
        assert process.process.wait(READY_TIMEOUT) == 0
        assert process.remaining_lines() == ["stopped"]

    def test_duration_ends_by_itself(self, serve):
        process = serve(
            "--instances", "1", "--processor", "string", "--duration", "0.5"
        )
        items = process.read_until_ready()
        assert len(items["instance"]) == 1
        assert process.process.wait(READY_TIMEOUT) == 0
        assert process.remaining_lines() == ["stopped"]

    def test_token_is_required_and_not_printed(self, serve):
        process = serve(
            "--instances", "1", "--processor", "string", "--token", "s3cret"
        )
        items = process.read_until_ready()
        assert items["token"] == ["set"]
        assert "s3cret" not in repr(items)
        assert post(items["gateway"][0], "/api/predict/mnist", b"x")[0] == 401


class TestArguments:
    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (
                ["--instances", "2", "--weights", "1,2,3"],
                "got 3 weights for 2 instances",
            ),
            (["--weights", "5,x"], "invalid weights '5,x'"),
            (["--weights", "5,-1,1"], "weights must be >= 0"),
            (["--instances", "0"], "invalid instance count '0'"),
            (["--duration", "0"], "invalid duration '0'"),
            (["--duration", "soon"], "invalid duration 'soon'"),
            (["--processor", "onnx"], "invalid choice: 'onnx'"),
            (["--service", "a b"], "invalid service name 'a b'"),
        ],
        ids=[
            "weight-count",
            "weight-text",
            "weight-sign",
            "instances",
            "duration-zero",
            "duration-text",
            "processor",
            "service",
        ],
    )
    def test_invalid_serve_argument_exits_2(self, capsys, argv, message):
        with pytest.raises(SystemExit) as exited:
            status = cli.main(["serve", *argv])
            raise SystemExit(status)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err

    def test_help_names_units(self, capsys):
        with pytest.raises(SystemExit):
            cli.main(["serve", "--help"])
        text = capsys.readouterr().out
        assert "--duration SECONDS" in text
        assert "stop after this many seconds" in text
        assert "number of service instances" in text
        assert "comma-separated weight of each instance" in text

    def test_command_is_required(self, capsys):
        with pytest.raises(SystemExit) as exited:
            cli.main([])
        assert exited.value.code == 2
        assert "COMMAND" in capsys.readouterr().err

    def test_demo_import_failure_exits_2(self, capsys):
        args = argparse.Namespace(import_error=ImportError("no module named x"))
        assert cli._demo_unavailable(args) == 2
        err = capsys.readouterr().err
        assert "the demo cannot be imported (no module named x)" in err
