"""A real HTTP server for a fake API: a Starlette app on a free loopback port, in its own thread.

Its own thread and event loop, so that services running as separate processes and code on the
test's own loop can call it alike.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

STARTUP_TIMEOUT_SECONDS = 10


class ThreadedHttpServer:
    def __init__(self, name: str, routes: list[Route]):
        self.name = name
        self.routes = routes
        self.port: int | None = None
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # Binding the socket here, rather than letting uvicorn pick a port,
        # makes the port known before the server thread runs.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(Starlette(routes=self.routes), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name}: server thread exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: server did not start in time")
            time.sleep(0.01)

    @property
    def open_connections(self) -> int:
        """The TCP connections the server holds open now (kept alive between requests included)."""
        return len(self._server.server_state.connections) if self._server is not None else 0

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
        self._socket.close()
        self._server = None
