"""The dashboard on the app servers Python teams run: a WSGI app (Django, Flask, gunicorn),
an ASGI app (Starlette, FastAPI, uvicorn), and `que web`'s own small threaded server."""

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from que.web.app import Dashboard, Request, Response

REASONS = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
}


def wsgi_app(dashboard: Dashboard) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """The dashboard as a WSGI application; mount it anywhere (its links follow SCRIPT_NAME)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        request = Request(
            method=environ["REQUEST_METHOD"],
            path=environ.get("PATH_INFO") or "/",
            query=dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
            headers=headers,
            body=environ["wsgi.input"].read(length) if length else b"",
            prefix=environ.get("SCRIPT_NAME", "").rstrip("/"),
        )
        response = dashboard.handle(request)
        start_response(f"{response.status} {REASONS.get(response.status, '')}", response.headers)
        return [response.body]

    return app


def asgi_app(dashboard: Dashboard) -> Callable[[dict[str, Any], Any, Any], Awaitable[None]]:
    """The dashboard as an ASGI application (its que.Client is the sync one: each request
    runs in a thread, so the event loop never waits on the database)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        root = scope.get("root_path", "").rstrip("/")
        request = Request(
            method=scope["method"],
            path=scope["path"].removeprefix(root) or "/",
            query=dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)),
            headers={k.decode().lower(): v.decode() for k, v in scope.get("headers", [])},
            body=body,
            prefix=root,
        )
        response: Response = await asyncio.to_thread(dashboard.handle, request)
        headers = [(k.lower().encode(), v.encode()) for k, v in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    return app


class _Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


LOCAL = ("127.0.0.1", "localhost", "::1")


def serve(dashboard: Dashboard, host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """A threaded server for `que web` (serve_forever() it). Refuses an address beyond this
    machine when the dashboard has no credentials."""
    if host not in LOCAL and dashboard.token is None and dashboard.basic is None:
        raise ValueError(f"--host {host} would show the queue beyond this machine: give --token or --basic-auth")
    return make_server(host, port, wsgi_app(dashboard), server_class=_Threaded, handler_class=_Quiet)
