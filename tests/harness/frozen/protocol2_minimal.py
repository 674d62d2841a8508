# FROZEN: the minimal testee of conformance/PROTOCOL.md as the text stood on 2026-12-07,
# testee protocol version 2. Never edit it: tests/harness/test_protocol_versions.py runs it
# against every later change of the harness, which must keep accepting it.
import json
import os
import sys
import time
from datetime import datetime

import psycopg

import que  # your port here

NAME = "minimal"
state = {}


def record(received):
    job = que.current_job()
    state["results"].execute(
        f"INSERT INTO {state['table']} (impl, pid, job_id, job_class, received, raw) VALUES (%s, %s, %s, %s, %s, %s)",
        [NAME, os.getpid(), job.job_id, job.job_class, received, job.args_json],
    )


def echo(*args):
    record(json.dumps(list(args), ensure_ascii=False))


def fail(message="failed", *rest):
    raise RuntimeError(message)


def sleep(milliseconds=0, *rest):
    time.sleep(milliseconds / 1000)
    record(None)


def start(req):
    state["client"] = que.Client(req["database_url"])
    state["results"] = psycopg.connect(req["database_url"], autocommit=True)
    state["table"] = req["results_table"]
    state["handlers"] = {"QueConformance::Echo": echo, "QueConformance::Fail": fail, "QueConformance::Sleep": sleep}
    state["workers"] = {}  # one worker per queue asked for
    capabilities = {
        "enqueue_returns_job_id": True,
        "enqueue_run_at": True,
        "number_model": "exact",
        "args_encoding": "ruby-json-dump",
        "last_error_format": "python",
    }
    return {
        "name": NAME,
        "version": que.__version__,
        "language": "Python",
        "protocol": 2,
        "dialects": ["0.14"],
        "capabilities": capabilities,
    }


def enqueue(req):
    options = {key: req[key] for key in ("queue", "priority") if key in req}
    if "run_at" in req:
        options["run_at"] = datetime.fromisoformat(req["run_at"])
    args = que.loads(req.get("args_json", "[]"))
    return {"job_id": state["client"].enqueue(req["job_class"], *args, **options).job_id}


def work_one(req):
    queue = req.get("queue", "")
    if queue not in state["workers"]:
        state["workers"][queue] = que.Worker(state["client"], state["handlers"], queue=queue)
    return {"worked": state["workers"][queue].work_one()}


OPS = {
    "start": start,
    "enqueue": enqueue,
    "work_one": work_one,
    "stop": lambda req: {},
}

for line in sys.stdin:
    req = json.loads(line)
    try:
        reply = {"id": req["id"], "ok": True, "result": OPS[req["op"]](req)}
    except Exception as error:
        reply = {"id": req["id"], "ok": False, "error": {"type": type(error).__name__, "message": str(error)}}
    print(json.dumps(reply), flush=True)
    if req["op"] == "stop":
        break
