"""que.contrib.django in a real Django project (written to a temp folder) against a real
PostgreSQL: settings from DATABASES, `manage.py que migrate | enqueue | stats | work`, and
a job whose handler uses the Django ORM."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from harness.lab import wait_until
from tests.conftest import fresh_database

SETTINGS = """
SECRET_KEY = "test"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
                  "que.contrib.django", "shop"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware"]
ROOT_URLCONF = "site_urls"
LOGIN_URL = "/login/"
ALLOWED_HOSTS = ["testserver"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": {name!r}, "USER": {user!r},
                          "HOST": {host!r}, "PORT": {port!r}}}}}
QUE = {{"APP": "shop.jobs"}}
USE_TZ = True
"""

JOBS = """
from django.db import connection

def greet(name):
    with connection.cursor() as cursor:  # the ORM's connection, in the worker's thread
        cursor.execute("INSERT INTO shop_greeting (name) VALUES (%s)", [name])

handlers = {"Shop::Greet": greet}
"""


URLS = """
from django.urls import include, path

urlpatterns = [path("ops/que/", include("que.contrib.django.urls"))]
"""

# Run inside the project (manage.py shell): Django's own test client, users and sessions.
STAFF_CHECK = """
import json, re
from django.contrib.auth.models import User
from django.test import Client
import que

from que.contrib.django import client as que_client

que_client().migrate()
job = que_client().enqueue("Shop::Greet", "<script>alert(1)</script>", queue="mail")
User.objects.create_user("clerk", password="pw")
User.objects.create_user("boss", password="pw", is_staff=True)
found = {}
browser = Client()
found["anonymous"] = [browser.get("/ops/que/").status_code, browser.get("/ops/que/")["Location"]]
browser.login(username="clerk", password="pw")
found["not staff"] = browser.get("/ops/que/").status_code
browser.login(username="boss", password="pw")
page = browser.get(f"/ops/que/jobs/{job.job_id}")
html = page.content.decode()
found["staff"] = [page.status_code, "&lt;script&gt;" in html, "<script>" in html, "/ops/que/jobs/" in html]
token = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
form = {"action": "delete", "job_id": str(job.job_id), "next": "/jobs"}
found["forged"] = browser.post("/ops/que/jobs/action", {**form, "csrf": "nope"}).status_code
done = browser.post("/ops/que/jobs/action", {**form, "csrf": token})
found["delete"] = [done.status_code, done["Location"], que_client().jobs()]
print(json.dumps(found))
"""


def project(folder: Path, url: str) -> Path:
    parts = conninfo_to_dict(url)
    (folder / "site_urls.py").write_text(textwrap.dedent(URLS))
    (folder / "shop").mkdir()
    (folder / "shop" / "__init__.py").write_text("")
    (folder / "shop" / "jobs.py").write_text(textwrap.dedent(JOBS))
    (folder / "site_settings.py").write_text(
        SETTINGS.format(
            name=parts["dbname"], user=parts.get("user", "postgres"), host=parts["host"], port=parts["port"]
        )
    )
    (folder / "manage.py").write_text(
        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_settings')\n"
        "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n"
    )
    return folder / "manage.py"


def manage(script: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QUE_DATABASE_URL", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=script.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        **kw,
    )


def test_manage_py_que_runs_on_the_projects_database(tmp_path: Path, database_url: str) -> None:
    url = fresh_database(database_url, "django_project")
    script = project(tmp_path, url)
    migrated = manage(script, "que", "migrate")
    assert migrated.returncode == 0 and "schema version 3 (was 0)" in migrated.stdout, migrated.stderr
    enqueued = manage(script, "que", "enqueue", "Shop::Greet", '["ann"]')
    assert enqueued.returncode == 0, enqueued.stderr
    assert json.loads(enqueued.stdout)["job_class"] == "Shop::Greet"
    stats = manage(script, "que", "stats", "--json")
    assert stats.returncode == 0 and json.loads(stats.stdout)[0]["count"] == 1, stats.stdout + stats.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE shop_greeting (name text)")
        env = {k: v for k, v in os.environ.items() if k not in ("QUE_DATABASE_URL", "DATABASE_URL")}
        worker = subprocess.Popen(
            [sys.executable, str(script), "que", "work", "--workers", "1", "--wake-interval", "0.05"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,), 30, "the job")
        finally:
            worker.send_signal(signal.SIGTERM)
            _, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err[-2000:]
        assert conn.execute("SELECT name FROM shop_greeting").fetchall() == [("ann",)]


def test_a_project_without_postgresql_is_told_so(tmp_path: Path, database_url: str) -> None:
    script = project(tmp_path, database_url)
    settings = tmp_path / "site_settings.py"
    settings.write_text(settings.read_text().replace("django.db.backends.postgresql", "django.db.backends.sqlite3"))
    done = manage(script, "que", "stats")
    assert done.returncode != 0 and "que needs PostgreSQL" in done.stderr, done.stderr[-2000:]


def test_the_dashboard_in_urls_py_is_for_staff(tmp_path: Path, database_url: str) -> None:
    """Mounted with include("que.contrib.django.urls"): Django's login decides who sees it,
    its own CSRF token guards changes, and what it shows is escaped."""
    url = fresh_database(database_url, "django_staff")
    script = project(tmp_path, url)
    migrated = manage(script, "migrate", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    done = manage(script, "shell", "-c", STAFF_CHECK)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["anonymous"] == [302, "/login/?next=/ops/que/"]
    assert found["not staff"] == 403
    assert found["staff"] == [200, True, False, True], "escaped, no script, links under the mount"
    assert found["forged"] == 403
    assert found["delete"] == [303, "/ops/que/jobs?note=delete%3A%201%20of%201%20job", []]
