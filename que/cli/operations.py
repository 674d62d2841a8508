"""The `que` commands that operate a queue rather than work it: `que web` (the dashboard),
`que health` (checks for probes) and the /metrics and /health endpoint of `que work
--metrics-port`."""

import argparse
import contextlib
import functools
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator

import psycopg

from que.cli.errors import UsageError
from que.core.errors import redact, remember_secrets
from que.core.hooks import remove_hook
from que.ops import health, http
from que.shells.client import Client


def web_command(options: argparse.Namespace) -> int:
    """`que web`: the dashboard on a threaded server, until SIGINT or SIGTERM."""
    from que import web

    basic = None
    if options.basic_auth:
        user, colon, password = options.basic_auth.partition(":")
        if not (user and colon and password):
            raise UsageError("--basic-auth must be USER:PASSWORD")
        basic = (user, password)
        remember_secrets(password)
    if options.token:
        remember_secrets(options.token)
    if not 1 <= options.refresh <= 3600:
        raise UsageError(f"--refresh must be 1 to 3600 seconds, got {options.refresh}")
    with Client(options.database_url) as client:
        dashboard = web.Dashboard(
            client, token=options.token, basic=basic, read_only=options.read_only, refresh=options.refresh
        )
        try:
            server = web.serve(dashboard, options.host, options.port)
        except ValueError as refused:
            raise UsageError(str(refused)) from None
        except OSError as error:
            raise UsageError(f"--port {options.port}: {error}") from None
        logging.getLogger("que").info(
            "dashboard on http://%s:%s/", options.host, server.server_port, extra={"event": "dashboard_started"}
        )
        previous = signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()
    return 0


def health_command(options: argparse.Namespace) -> int:
    """`que health`: every check, printed; a database that cannot be reached is a failed
    check (exit 1), not an error."""
    try:
        with Client(options.database_url) as client:
            checks = health.run(client, schema_version=options.schema_version, max_age=options.max_age)
    except (psycopg.Error, OSError) as error:
        checks = [health.Check("database", False, f"no answer: {redact(str(error)).strip().splitlines()[0]}")]
    ok = health.healthy(checks)
    if options.json:
        print(json.dumps({"healthy": ok, "checks": [check.as_dict() for check in checks]}))
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    return 0 if ok else 1


@contextlib.contextmanager
def endpoint(options: argparse.Namespace, pool_alive: Callable[[], bool]) -> Iterator[None]:
    """`que work --metrics-port`: /metrics and /health while the pool works, on a client of
    their own (a scrape never waits for a worker's connection)."""
    if options.metrics_port is None:
        yield
        return
    with Client(options.database_url, max_connections=2) as client:
        metrics = None
        try:
            import prometheus_client

            from que.contrib import prometheus

            registry = prometheus_client.CollectorRegistry()
            hook = prometheus.instrument(client, registry)
            metrics = functools.partial(prometheus_client.generate_latest, registry)
        except ImportError:
            hook = None
            logging.getLogger("que").warning(
                "serving /health only: /metrics needs pip install 'que-interop[metrics]'",
                extra={"event": "metrics_unavailable"},
            )
        try:
            endpoint = http.Endpoint(
                client,
                options.metrics_port,
                options.metrics_host,
                metrics=metrics,
                pool_alive=pool_alive,
                max_age=options.health_max_age,
            )
        except OSError as error:
            raise UsageError(f"--metrics-port {options.metrics_port}: {error}") from None
        logging.getLogger("que").info(
            "serving /metrics and /health on %s:%s",
            options.metrics_host,
            endpoint.port,
            extra={"event": "endpoint_started", "port": endpoint.port},
        )
        try:
            yield
        finally:
            endpoint.close()
            if hook is not None:
                remove_hook(hook)
