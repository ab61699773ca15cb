"""A TCP server on 127.0.0.1 that responds to every request with fixed bytes.

The simulator speaks correct HTTP. This server sends replies it cannot,
such as an HTTP/0.9 body without a status line or a 429 with a
``Retry-After`` header, to reach the client paths that handle them.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self


class CannedServer:
    """Send ``reply`` to each request, then close the connection.

    ``request_count`` counts the requests read. Use it as a context manager,
    or call ``stop()``.
    """

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.request_count = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=f"canned-server-{self.port}")
        self._thread.start()

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop accepting connections and wait for the accept thread."""
        self._stopping.set()
        self._thread.join(5.0)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,),
                             daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(5.0)
        with connection:
            try:
                if not _read_request(connection):
                    return
                with self._lock:
                    self.request_count += 1
                connection.sendall(self.reply)
                connection.shutdown(socket.SHUT_WR)
                # Wait for the client to close, so that it reads the whole
                # reply before the connection goes away.
                while connection.recv(4096):
                    pass
            except OSError:
                return


def _read_request(connection: socket.socket) -> bool:
    # Read one request head and its Content-Length body; False on EOF.
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True
