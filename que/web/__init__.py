"""A web dashboard for a que queue: queues by state, failing jobs with their errors, args
as JSON, filters and pagination, retry/delete/expire per job and in bulk, retry every dead
job, the lockers. On every table version.

    que web --port 8080                          # localhost, no credentials needed
    que web --host 0.0.0.0 --token SECRET        # beyond localhost: --token or --basic-auth
    app = que.web.wsgi_app(que.web.Dashboard(client, token=...))     # mount in WSGI
    app = que.web.asgi_app(que.web.Dashboard(client, read_only=True))   # or ASGI

Safe by default: every change is a POST with a CSRF token, everything shown is escaped
(args and errors are user data), the pages run no script, and `read_only` hides and
refuses every change.
"""

from que.web.app import Dashboard, Request, Response
from que.web.servers import asgi_app, serve, wsgi_app

__all__ = ["Dashboard", "Request", "Response", "asgi_app", "serve", "wsgi_app"]
