"""The HTTP endpoint of `que work --metrics-port N`: /metrics (Prometheus' text format, when
the metrics extra is installed) and /health (the checks of que.ops.health as JSON, 200 when
healthy, 503 when not). Read-only: it changes nothing, so it needs no credentials; it binds
to 127.0.0.1 unless told otherwise."""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from que.ops import health


class Endpoint:
    """Serves in a daemon thread until close()."""

    def __init__(
        self,
        client: Any,
        port: int,
        host: str = "127.0.0.1",
        *,
        metrics: Callable[[], bytes] | None = None,
        pool_alive: Callable[[], bool] | None = None,
        max_age: float | None = None,
    ) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics" and metrics is not None:
                    self._send(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/health":
                    checks = health.run(endpoint.client, max_age=endpoint.max_age, pool_alive=endpoint.pool_alive)
                    ok = health.healthy(checks)
                    body = json.dumps({"healthy": ok, "checks": [c.as_dict() for c in checks]}).encode()
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b"not found: /metrics and /health are served here\n", "text/plain")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the job log

        self.client = client
        self.pool_alive = pool_alive
        self.max_age = max_age
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="que-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
