"""A Que 2-only port for the harness's tests: `python que2_only_testee.py`.

It says it speaks the Que 2 dialect only (PROTOCOL.md, `dialects`): a start in another
dialect is answered Unavailable with `"dialects": ["2"]`; a Que 2 start is handed, with
every later line, to the reference Python testee (testees.python.threads) running beside it.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    child: subprocess.Popen[str] | None = None
    for line in sys.stdin:
        request = json.loads(line)
        if child is None:
            if request.get("op") == "start" and request.get("dialect") != "2":
                asked = request.get("dialect", "0.14")
                error = {"type": "Unavailable", "message": f"speaks Que 2 only, not {asked}", "dialects": ["2"]}
                print(json.dumps({"id": request["id"], "ok": False, "error": error}), flush=True)
                continue
            if request.get("op") == "stop":
                print(json.dumps({"id": request["id"], "ok": True, "result": {}}), flush=True)
                return
            command = [sys.executable, "-m", "testees.python.threads"]
            child = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(line)
        child.stdin.flush()
        answer = child.stdout.readline()
        if request.get("op") == "start":
            reply = json.loads(answer)
            if reply.get("ok"):
                reply["result"].update(name="que2-only", dialects=["2"])
            answer = json.dumps(reply) + "\n"
        sys.stdout.write(answer)
        sys.stdout.flush()
        if request.get("op") == "stop":
            break
    if child is not None:
        child.wait(30)


if __name__ == "__main__":
    main()
