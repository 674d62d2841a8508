"""The dashboard's HTML. Every value from the database (queue and class names, args, error
messages and backtraces: user data) goes through `e()`, so it shows as text; the pages carry
no script at all (live refresh is a meta refresh)."""

import html
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from que.core.job import Job

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#cfe0ff;text-decoration:none} header b{font-size:16px}
main{padding:16px 20px} table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{border-bottom:1px solid #e3e6ee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f4f6fa} td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f4f6fa;padding:8px;overflow:auto;white-space:pre-wrap;word-break:break-all}
.note{background:#e8f5e9;padding:6px 10px;margin-bottom:10px} .bad{color:#b3261e}
form.inline{display:inline} button{cursor:pointer} input,select{margin-right:6px}
"""


def e(value: Any) -> str:
    """Text for HTML, attributes included."""
    return html.escape("" if value is None else str(value), quote=True)


def _hidden(name: str, value: Any) -> str:
    return f'<input type="hidden" name="{e(name)}" value="{e(value)}">'


def _layout(prefix: str, title: str, body: str, refresh: int | None = None, note: str | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    flash = f'<div class="note" id="note">{e(note)}</div>' if note else ""
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{meta}<title>{e(title)} · que</title>'
        f"<style>{STYLE}</style></head><body><header><b>que</b>"
        f'<a href="{e(prefix)}/">Queues</a><a href="{e(prefix)}/jobs?state=failing">Failing</a>'
        f'<a href="{e(prefix)}/jobs">Jobs</a><a href="{e(prefix)}/lockers">Lockers</a></header>'
        f"<main><h1>{e(title)}</h1>{flash}{body}</main></body></html>"
    )


def message(prefix: str, title: str, text: str) -> str:
    return _layout(prefix, title, f'<p class="bad" id="message">{e(text)}</p>')


def denied(prefix: str, token: bool) -> str:
    how = "Open <code>/login?token=…</code> with the dashboard's token." if token else "Sign in."
    return _layout(prefix, "Sign in", f"<p>This dashboard needs credentials. {how}</p>")


@dataclass
class View:
    prefix: str
    csrf: str
    read_only: bool
    keeps_rows: bool  # Que 1.x/2.x: finished rows, and jobs can be expired

    def url(self, path: str, **query: Any) -> str:
        shown = {k: v for k, v in query.items() if v is not None}
        return f"{self.prefix}{path}" + (f"?{urllib.parse.urlencode(shown)}" if shown else "")

    def _queue_link(self, queue: str, state: str | None = None) -> str:
        extra = {"queue_empty": "1"} if queue == "" else {}
        label = e(queue) if queue else "<i>(the empty queue)</i>"
        return f'<a href="{e(self.url("/jobs", queue=queue or None, state=state, **extra))}">{label}</a>'

    def overview(self, rows: Sequence[Mapping[str, Any]], refresh: int, note: str | None = None) -> str:
        states = ["ready", "scheduled", "working", "failing", "dead"] + (["finished"] if self.keeps_rows else [])
        head = "".join(f"<th>{s}</th>" for s in states)
        lines = []
        for row in rows:
            cells = "".join(
                f'<td class="n" data-state="{s}">'
                + (self._count_link(row["queue"], s, row[s]) if s != "working" else str(int(row[s])))
                + "</td>"
                for s in states
            )
            age = row["oldest_due_age"]
            lines.append(
                f'<tr data-queue="{e(row["queue"])}"><td>{self._queue_link(row["queue"])}</td>{cells}'
                f'<td class="n">{"—" if age is None else f"{age:.1f} s"}</td></tr>'
            )
        table = (
            f'<table id="queues"><tr><th>queue</th>{head}<th>oldest due job waited</th></tr>{"".join(lines)}</table>'
            if lines
            else "<p>No jobs.</p>"
        )
        dead = "" if self.read_only else self._form("/dead/retry", "Retry every dead job", "retry-dead", next_="/")
        return _layout(self.prefix, "Queues", table + dead + f"<p>Refreshes every {refresh} s.</p>", refresh, note)

    def _count_link(self, queue: str, state: str, count: Any) -> str:
        if not count:
            return "0"
        extra = {"queue_empty": "1"} if queue == "" else {}
        return f'<a href="{e(self.url("/jobs", queue=queue or None, state=state, **extra))}">{int(count)}</a>'

    def _form(self, path: str, label: str, name: str, next_: str, fields: Mapping[str, Any] | None = None) -> str:
        hidden = "".join(_hidden(k, v) for k, v in (fields or {}).items())
        return (
            f'<form class="inline" method="post" action="{e(self.prefix + path)}">'
            f"{_hidden('csrf', self.csrf)}{_hidden('next', next_)}"
            f'{hidden}<button name="{e(name)}">{e(label)}</button></form>'
        )

    def _actions(self) -> list[str]:
        return ["retry", "delete", *(["expire"] if self.keeps_rows else [])]

    def jobs(self, jobs: Sequence[Job], filters: Mapping[str, Any], more: bool, note: str | None = None) -> str:
        here = self.url("/jobs", **{k if k != "text" else "q": v for k, v in filters.items()})
        here_path = here.removeprefix(self.prefix)
        options = "".join(
            f'<option value="{s}"{" selected" if filters["state"] == s else ""}>{s}</option>'
            for s in ("ready", "scheduled", "failing", "dead", *(["finished"] if self.keeps_rows else []))
        )
        search = (
            f'<form method="get" action="{e(self.prefix)}/jobs" id="filters">'
            f'<select name="state"><option value="">any state</option>{options}</select>'
            f'<input name="queue" placeholder="queue" value="{e(filters["queue"])}">'
            f'<input name="job_class" placeholder="job class" value="{e(filters["job_class"])}">'
            f'<input name="q" placeholder="error text" value="{e(filters["text"])}"><button>Filter</button></form>'
        )
        rows = []
        for job in jobs:
            pick = (
                ""
                if self.read_only
                else f'<td><input type="checkbox" name="job_id" value="{job.job_id}" form="bulk"></td>'
            )
            first = (job.last_error or "").split("\n", 1)[0]
            link = e(self.url(f"/jobs/{job.job_id}"))
            rows.append(
                f'<tr data-job="{job.job_id}">{pick}<td><a href="{link}">{job.job_id}</a></td>'
                f"<td>{e(job.job_class)}</td><td>{e(job.queue)}</td><td class=n>{job.priority}</td>"
                f"<td>{e(job.run_at.isoformat(timespec='seconds'))}</td><td class=n>{job.error_count}</td>"
                f'<td class="error">{e(first[:200])}</td><td>{self._row_actions(job, here_path)}</td></tr>'
            )
        pick_head = "" if self.read_only else "<th></th>"
        table = (
            f'<table id="jobs"><tr>{pick_head}<th>id</th><th>class</th><th>queue</th><th>priority</th><th>run_at</th>'
            f"<th>errors</th><th>last error</th><th></th></tr>{''.join(rows)}</table>"
            if rows
            else '<p id="empty">No jobs match.</p>'
        )
        bulk = ""
        if not self.read_only and rows:
            buttons = "".join(
                f'<button name="action" value="{a}">{a.capitalize()} selected</button>' for a in self._actions()
            )
            bulk = (
                f'<form id="bulk" method="post" action="{e(self.prefix)}/jobs/action">'
                f"{_hidden('csrf', self.csrf)}{_hidden('next', here_path)}"
                f"{buttons}</form>"
            )
        pager = ""
        if more and jobs:
            nxt = self.url(
                "/jobs", **{k if k != "text" else "q": v for k, v in filters.items()}, before=jobs[-1].job_id
            )
            pager = f'<p><a id="next" href="{e(nxt)}">Older jobs →</a></p>'
        return _layout(self.prefix, "Jobs", search + bulk + table + pager, note=note)

    def _row_actions(self, job: Job, back: str) -> str:
        if self.read_only:
            return ""
        return " ".join(
            self._form("/jobs/action", action.capitalize(), action, back, {"action": action, "job_id": job.job_id})
            for action in self._actions()
        )

    def job(self, job: Job, note: str | None = None) -> str:
        fields = [
            ("id", job.job_id),
            ("class", job.job_class),
            ("queue", job.queue),
            ("priority", job.priority),
            ("run_at", job.run_at.isoformat()),
            ("error_count", job.error_count),
        ]
        if self.keeps_rows:
            fields += [("finished_at", job.finished_at), ("expired_at", job.expired_at)]
        table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in fields)
        parts = [
            f'<table id="job">{table}</table>',
            "<h2>args</h2>",
            f'<pre id="args">{e(_pretty(job.args_json))}</pre>',
        ]
        if self.keeps_rows:
            parts += ["<h2>kwargs</h2>", f'<pre id="kwargs">{e(_pretty(job.kwargs_json))}</pre>']
            parts += ["<h2>data</h2>", f'<pre id="data">{e(_pretty(job.data_json))}</pre>']
        if job.last_error:
            parts += ["<h2>last error</h2>", f'<pre id="error">{e(job.last_error)}</pre>']
        if job.last_error_backtrace:
            parts += ["<h2>backtrace</h2>", f'<pre id="backtrace">{e(job.last_error_backtrace)}</pre>']
        parts.append(self._row_actions(job, f"/jobs/{job.job_id}"))
        return _layout(self.prefix, f"Job {job.job_id}", "".join(parts), note=note)

    def lockers(self, rows: Sequence[Mapping[str, Any]]) -> str:
        if not rows:
            return _layout(self.prefix, "Lockers", '<p id="empty">No session works a job now.</p>')
        names = list(rows[0])
        head = "".join(f"<th>{e(n)}</th>" for n in names)
        body = "".join("<tr>" + "".join(f"<td>{e(row[n])}</td>" for n in names) + "</tr>" for row in rows)
        what = "registered lockers (que_lockers)" if self.keeps_rows else "sessions holding job locks"
        return _layout(self.prefix, "Lockers", f'<p>The {what}.</p><table id="lockers"><tr>{head}</tr>{body}</table>')


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
