"""The dashboard without a server: a request in, a response out (que.web.servers adapts it
to WSGI and ASGI). Reads through a que.Client (client.overview, job_page, lockers) and
changes jobs only through POST with a CSRF token, behind a token or basic auth when one is
set, and never in read-only mode."""

import base64
import hashlib
import hmac
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from que.web import pages

STATES = ("ready", "scheduled", "failing", "dead", "finished")
COOKIE = "que_token"


@dataclass
class Request:
    method: str
    path: str  # below the dashboard's mount point, starting with /
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    prefix: str = ""  # where the dashboard is mounted (SCRIPT_NAME, root_path)

    def form(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def cookies(self) -> dict[str, str]:
        found = {}
        for part in self.headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name:
                found[name] = value
        return found


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


# Nothing the dashboard serves may run a script or be framed: escaping keeps user data text,
# and the policy keeps it so should a page ever slip.
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]


class Dashboard:
    """`client`: a que.Client. `token` or `basic` ((user, password)) guard every page;
    `read_only` hides and refuses every change. `secret` keys the CSRF tokens (random per
    process unless given: give one when several processes serve the dashboard)."""

    def __init__(
        self,
        client: Any,
        *,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        read_only: bool = False,
        secret: bytes | None = None,
        refresh: int = 5,
    ) -> None:
        self.client = client
        self.token = token
        self.basic = basic
        self.read_only = read_only
        self.secret = secret or secrets.token_bytes(32)
        self.refresh = refresh

    # -- auth and CSRF ----------------------------------------------------------------

    def _authenticated(self, request: Request) -> bool:
        if self.token is None and self.basic is None:
            return True
        given = request.headers.get("authorization", "")
        if self.token is not None:
            bearer = given.removeprefix("Bearer ") if given.startswith("Bearer ") else request.cookies().get(COOKIE, "")
            if bearer and hmac.compare_digest(bearer.encode(), self.token.encode()):
                return True
        if self.basic is not None and given.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(given[6:]).decode().partition(":")
            except ValueError:
                return False
            return hmac.compare_digest(f"{user}\0{password}".encode(), "\0".join(self.basic).encode())
        return False

    def csrf_token(self) -> str:
        return hmac.new(self.secret, b"que-web csrf", hashlib.sha256).hexdigest()

    def _csrf_ok(self, request: Request, form: Mapping[str, list[str]]) -> bool:
        origin = request.headers.get("origin")
        if origin and urllib.parse.urlsplit(origin).netloc != request.headers.get("host", ""):
            return False
        return hmac.compare_digest((form.get("csrf") or [""])[0].encode(), self.csrf_token().encode())

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path == "/login" and self.token is not None:
            return self._login(request)
        if not self._authenticated(request):
            headers = [("WWW-Authenticate", 'Basic realm="que"')] if self.basic is not None else []
            body = pages.denied(request.prefix, token=self.token is not None)
            return self._page(401, body, headers)
        try:
            if request.method == "POST":
                return self._post(request)
            if request.method not in ("GET", "HEAD"):
                return self._page(405, pages.message(request.prefix, "405", "GET and POST only"))
            return self._get(request)
        except ValueError as bad:
            return self._page(400, pages.message(request.prefix, "400", str(bad)))

    def _login(self, request: Request) -> Response:
        given = request.query.get("token", "")
        if not (self.token and hmac.compare_digest(given.encode(), self.token.encode())):
            return self._page(401, pages.denied(request.prefix, token=True))
        cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path={request.prefix or '/'}"
        return Response(303, b"", [("Location", f"{request.prefix}/"), ("Set-Cookie", cookie), *SECURITY_HEADERS])

    def _get(self, request: Request) -> Response:
        path, q = request.path, request.query
        view = pages.View(request.prefix, self.csrf_token(), self.read_only, self.client.dialect().keeps_rows)
        if path in ("/", ""):
            return self._page(200, view.overview(self.client.overview(), self.refresh, q.get("note")))
        if path == "/jobs":
            filters = self._filters(q)
            jobs = self.client.job_page(**filters, before=_int(q.get("before")), limit=50)
            return self._page(200, view.jobs(jobs, filters, more=len(jobs) == 50, note=q.get("note")))
        if path.startswith("/jobs/"):
            job_id = _int(path.removeprefix("/jobs/"))
            found = self.client.job_page(before=job_id + 1, limit=1) if job_id else []
            if not found or found[0].job_id != job_id:
                return self._page(404, pages.message(request.prefix, "404", f"no job {job_id}"))
            return self._page(200, view.job(found[0], q.get("note")))
        if path == "/lockers":
            return self._page(200, view.lockers(self.client.lockers()))
        return self._page(404, pages.message(request.prefix, "404", f"no page {path}"))

    def _post(self, request: Request) -> Response:
        form = request.form()
        if self.read_only:
            return self._page(403, pages.message(request.prefix, "403", "this dashboard is read-only"))
        if not self._csrf_ok(request, form):
            return self._page(403, pages.message(request.prefix, "403", "the form's CSRF token is missing or wrong"))
        back = _relative((form.get("next") or ["/jobs"])[0])
        if request.path == "/jobs/action":
            action = (form.get("action") or [""])[0]
            ids = [_int(value) for value in form.get("job_id", [])]
            done = sum(self.client.job_action(action, job_id) for job_id in ids if job_id)
            note = f"{action}: {done} of {len(ids)} job{'s' if len(ids) != 1 else ''}"
        elif request.path == "/dead/retry":
            done = self.client.retry_dead(queue=(form.get("queue") or [""])[0] or None)
            note = f"retried {done} dead job{'s' if done != 1 else ''}"
        else:
            return self._page(404, pages.message(request.prefix, "404", f"no action {request.path}"))
        separator = "&" if "?" in back else "?"
        location = f"{request.prefix}{back}{separator}note={urllib.parse.quote(note)}"
        return Response(303, b"", [("Location", location), *SECURITY_HEADERS])

    def _filters(self, q: Mapping[str, str]) -> dict[str, Any]:
        state = q.get("state") or None
        if state is not None and state not in STATES:
            raise ValueError(f"state {state!r}: one of {', '.join(STATES)}")
        return {
            "state": state,
            # An empty queue box means any queue; Que 0.x's queue '' is asked for as queue_empty=1.
            "queue": "" if q.get("queue_empty") == "1" else (q.get("queue") or None),
            "job_class": q.get("job_class") or None,
            "text": q.get("q") or None,
        }

    def _page(self, status: int, html: str, headers: list[tuple[str, str]] | None = None) -> Response:
        body = html.encode("utf-8")
        return Response(
            status, body, [("Content-Type", "text/html; charset=utf-8"), *SECURITY_HEADERS, *(headers or [])]
        )


def _int(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        found = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a job id") from None
    if not 0 < found < 2**63:
        raise ValueError(f"{value!r} is not a job id")
    return found


def _relative(path: str) -> str:
    """Only a path of this dashboard may be a redirect's target (no open redirect)."""
    parts = urllib.parse.urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return "/jobs"
    return path
