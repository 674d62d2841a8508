"""A misbehaving testee for tests of the protocol client: `python fake_testee.py MODE`.

Modes: good, crash-on-enqueue, hang-on-enqueue, garbage-on-enqueue, wrong-id,
error-on-enqueue, unavailable, old-protocol, exit-at-once, and the schema breakers
string-job-id, unknown-capability, lock-without-job-id, error-without-message, and
enqueue-only (declares it; answers a worker op with a crash, which the harness must never
let happen). `start` echoes the database URL it was given as its version.
"""

import json
import os
import sys
import time

FOREVER_SECONDS = 3600  # hangs: the harness must kill it at its deadline
mode = sys.argv[1]
if mode == "exit-at-once":
    sys.exit(3)
for line in sys.stdin:
    req = json.loads(line)
    op = req["op"]
    reply: dict[str, object] = {"id": req["id"], "ok": True, "result": {}}
    if op == "start":
        if mode == "unavailable":
            reply = {"id": req["id"], "ok": False, "error": {"type": "Unavailable", "message": "no library here"}}
        else:
            protocol = 0 if mode == "old-protocol" else 1
            reply["result"] = {
                "name": "fake",
                "version": req["database_url"],
                "language": "Python",
                "protocol": protocol,
                "capabilities": {"lock": True},
            }
            if mode == "enqueue-only":
                reply["result"]["capabilities"] = {"enqueue_only": True}
            if mode == "unknown-capability":
                reply["result"]["capabilities"] = {"lock": True, "crash_job": True}
    elif op == "enqueue":
        if mode == "crash-on-enqueue":
            print("about to crash", file=sys.stderr, flush=True)
            os._exit(7)
        if mode == "hang-on-enqueue":
            time.sleep(FOREVER_SECONDS)
        if mode == "garbage-on-enqueue":
            print("this is not json", flush=True)
            continue
        if mode == "wrong-id":
            reply["id"] = req["id"] + 100
        if mode == "error-without-message":
            reply = {"id": req["id"], "ok": False, "error": {"type": "ValueError"}}
        elif mode == "error-on-enqueue":
            reply = {"id": req["id"], "ok": False, "error": {"type": "ValueError", "message": "bad job"}}
        else:
            reply.setdefault("result", {})
            if reply.get("ok"):
                reply["result"] = {"job_id": "5" if mode == "string-job-id" else 5}
    elif mode == "enqueue-only" and op in ("work_one", "work", "lock", "release"):
        os._exit(9)
    elif op == "lock":
        job = {"queue": "", "priority": 100} if mode == "lock-without-job-id" else {"job_id": 5, "queue": ""}
        reply["result"] = {"job": job}
    print(json.dumps(reply), flush=True)
    if op == "stop":
        break
