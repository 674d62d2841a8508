"""A TCP relay between clients and PostgreSQL that can hold the server's replies: a test
makes two messages (a statement's result and a notification, say) reach a client in one
read, which the real server alone does only on a race."""

import contextlib
import socket
import threading
from typing import Self


class Relay:
    """Listens on 127.0.0.1 and relays each connection to (host, port). While held, what the
    server sends is kept per connection; release() sends each connection what it kept, in one
    write."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._held = False
        self._kept: dict[socket.socket, bytearray] = {}
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def hold(self) -> None:
        with self._lock:
            self._held = True

    def kept(self) -> bytes:
        with self._lock:
            return b"".join(self._kept.values())

    def release(self) -> None:
        with self._lock:
            self._held = False
            for client, kept in self._kept.items():
                if kept:
                    client.sendall(kept)
                    kept.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._kept[client] = bytearray()
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies_to: socket.socket | None) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if replies_to is not None and self._held:
                        self._kept[replies_to] += data
                        continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
