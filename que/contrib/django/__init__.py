"""que in a Django project: add "que.contrib.django" to INSTALLED_APPS, then

    python manage.py que migrate                  # que_jobs in the project's database
    python manage.py que work                     # the handlers of settings.QUE["APP"]
    python manage.py que stats | dead | retry | enqueue | health | web
    path("que/", include("que.contrib.django.urls"))      # urls.py: the dashboard, for staff

Every `que` command runs with the connection settings of `settings.DATABASES` (the alias
`settings.QUE["DATABASE"]`, default "default"; PostgreSQL only), so nothing is configured
twice. `que work` takes its handlers from `settings.QUE["APP"]` ("module[:attr]", as `que
work --app`) unless --app is given. Enqueue from a view inside its transaction with
`client().enqueue(..., conn=django.db.connection)`: the job exists once the transaction
commits."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import make_conninfo

from que.shells.client import Client

_clients: dict[str, Client] = {}


def que_settings() -> dict[str, Any]:
    found = getattr(settings, "QUE", {})
    if not isinstance(found, dict):
        raise ImproperlyConfigured(f"settings.QUE must be a dict, got {found!r}")
    return found


def database_url(alias: str | None = None) -> str:
    """A libpq URL for the Django database `alias` (settings.QUE["DATABASE"], default "default")."""
    alias = alias or que_settings().get("DATABASE", "default")
    try:
        database = settings.DATABASES[alias]
    except KeyError:
        raise ImproperlyConfigured(f"settings.DATABASES has no {alias!r} for que (settings.QUE['DATABASE'])") from None
    if "postgresql" not in database.get("ENGINE", ""):
        raise ImproperlyConfigured(f"que needs PostgreSQL: DATABASES[{alias!r}] uses {database.get('ENGINE')!r}")
    parts = {
        "dbname": database.get("NAME"),
        "user": database.get("USER"),
        "password": database.get("PASSWORD"),
        "host": database.get("HOST"),
        "port": str(database["PORT"]) if database.get("PORT") else None,
        **{key: str(value) for key, value in database.get("OPTIONS", {}).items() if isinstance(value, str | int)},
    }
    return make_conninfo("", **{key: value for key, value in parts.items() if value})


def client(alias: str | None = None) -> Client:
    """A que.Client on the Django database (one per alias, for the life of the process)."""
    url = database_url(alias)
    if url not in _clients:
        _clients[url] = Client(url)
    return _clients[url]
