"""A TCP forwarder on 127.0.0.1 for the tests: in front of a simulated router or the lab VM.

- ``allow=N`` lets N connections through and refuses every later one: from the deploy's side,
  exactly what a firewall change that blocks new SSH connections looks like (the open
  connection goes on working);
- ``delay`` holds every server → client chunk back a little: a slow link.
"""

from __future__ import annotations

import socket
import threading
import time


class TcpProxy:
    def __init__(self, target_port: int, *, allow: int | None = None, delay: float = 0.0):
        self.target_port = target_port
        self.allow = allow
        self.delay = delay
        self.accepted = 0
        self.refused = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.allow is not None and self.accepted >= self.allow:
                self.refused += 1
                client.close()  # like a closed port: the SSH handshake fails
                continue
            self.accepted += 1
            client.settimeout(None)
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for src, dst, delay in ((client, upstream, 0.0), (upstream, client, self.delay)):
                threading.Thread(target=self._pump, args=(src, dst, delay), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while data := src.recv(65536):
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()
