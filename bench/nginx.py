"""Run nginx on 127.0.0.1 as a fast stand-in for an EAS service.

nginx serves a fixed response body for every predict call and a static
discovery document, so a benchmark against it times the client (request
building, HTTP, response parsing) and very little server work. nginx
rejects POST on a static file with 405, and ``error_page 405 =200 $uri``
turns that into the file's content with status 200.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

#: Seconds to wait for nginx to listen or to exit.
START_TIMEOUT = 10.0

_CONFIG = """\
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    default_type application/octet-stream;
{servers}
}}
"""

_INSTANCE = """\
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 512m;
        client_body_buffer_size 16m;
        location /api/predict/ {{
            root {root}/www;
            error_page 405 =200 $uri;
        }}
    }}
"""

_DISCOVERY = """\
    server {{
        listen 127.0.0.1:{port};
        location /api/v1/servicediscovery/upstreams/ {{
            default_type application/json;
            alias {root}/www/upstreams/;
        }}
    }}
"""


def find_nginx() -> str | None:
    """Return the nginx binary's path, or None when it is not installed."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, deadline: float) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen on port {port}") from None
            time.sleep(0.02)


class NginxService:
    """nginx serving ``body`` for ``/api/predict/<service>`` on N ports."""

    def __init__(self, root: Path, service: str, body: bytes, instances: int = 3):
        binary = find_nginx()
        if binary is None:
            raise RuntimeError("nginx is not installed: apt-get install nginx-light")
        self.service = service
        self.ports = [_free_port() for _ in range(instances)]
        self.discovery_port = _free_port()

        www = root / "www"
        (www / "api" / "predict").mkdir(parents=True)
        (www / "api" / "predict" / service).write_bytes(body)
        (www / "upstreams").mkdir()
        items = [
            {"app": service, "ip": "127.0.0.1", "port": port, "weight": 100}
            for port in self.ports
        ]
        document = {"correlative": [], "endpoints": {"items": items}}
        (www / "upstreams" / service).write_text(json.dumps(document))

        servers = "".join(_INSTANCE.format(port=p, root=root) for p in self.ports)
        servers += _DISCOVERY.format(port=self.discovery_port, root=root)
        # Under root, workers run as "nobody" unless the config names a
        # user, and "nobody" cannot read pytest's private temporary directory.
        user = "user root;" if os.geteuid() == 0 else ""
        config = root / "nginx.conf"
        config.write_text(_CONFIG.format(user=user, root=root, servers=servers))

        self.process = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        try:
            for port in [*self.ports, self.discovery_port]:
                _wait_listening(port, deadline)
        except RuntimeError:
            self.stop()
            raise

    @property
    def endpoint(self) -> str:
        """The discovery endpoint, for the direct endpoint type."""
        return f"127.0.0.1:{self.discovery_port}"

    def stop(self) -> None:
        """Stop nginx by its process id and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=START_TIMEOUT)
