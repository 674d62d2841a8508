"""The dashboard inside a Django project, for its staff: include `que.contrib.django.urls`
in urls.py (`path("que/", include("que.contrib.django.urls"))`). Django's own login decides
who sees it: anonymous visitors go to settings.LOGIN_URL, signed-in users who are not
staff get 403. Changes still need the dashboard's CSRF token (keyed by SECRET_KEY, so every
process of the project agrees), and settings.QUE["WEB_READ_ONLY"] makes it read-only."""

import hashlib
import urllib.parse
from functools import cache

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt

from que.contrib.django import client, que_settings
from que.web import Dashboard, Request


@cache
def dashboard() -> Dashboard:
    secret = hashlib.sha256(b"que-web " + settings.SECRET_KEY.encode()).digest()
    return Dashboard(client(), read_only=bool(que_settings().get("WEB_READ_ONLY")), secret=secret)


@csrf_exempt  # the dashboard's forms carry its own CSRF token, checked on every POST
def view(request: HttpRequest, path: str = "") -> HttpResponse:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not (user.is_active and user.is_staff):
        return HttpResponseForbidden("the que dashboard is for staff")
    below = "/" + path
    prefix = request.path[: len(request.path) - len(below)] if request.path.endswith(below) else request.path
    found = dashboard().handle(
        Request(
            method=request.method or "GET",
            path=below,
            query=dict(urllib.parse.parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)),
            headers={name.lower(): value for name, value in request.headers.items()},
            # Django has parsed the form already, whatever its encoding: hand it on as the
            # dashboard reads forms.
            body=urllib.parse.urlencode(list(request.POST.lists()), doseq=True).encode() if request.POST else b"",
            prefix=prefix.rstrip("/"),
        )
    )
    response = HttpResponse(found.body, status=found.status)
    for name, value in found.headers:
        response[name] = value
    return response
