"""The implementations of one run: started once, restarted when a test kills one.

The suite asks the fleet for an implementation by name; it gets a started Testee, or
the test is reported unavailable with the reason (never passed). Tests branch on the
capabilities a testee declares at `start`, not on its name.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from harness import implementations, lab, manifests, owners, results
from harness.implementations import Implementation
from harness.postgres import Database
from harness.testee import Info, NotSpoken, Testee, Unavailable

# Testees run in a non-UTC local time zone: a port that reads the local clock's zone
# where the protocol needs the server's (or UTC) fails the time-zone cells.
TESTEE_TZ = "Asia/Kathmandu"

# The Que dialect of this run: "0.14" (the default) or "2" (Ruby Que 2.x's protocol).
DIALECT = os.environ.get("QUE_CONFORMANCE_DIALECT", "0.14")
BUILTINS = tuple(implementations.speaking(DIALECT))


def configured_names() -> list[str]:
    """Names in run order: QUE_CONFORMANCE_IMPLS built-ins of the run's dialect, then
    testee1.. from QUE_CONFORMANCE_TESTEES."""
    names = [n.strip() for n in os.environ.get("QUE_CONFORMANCE_IMPLS", ",".join(BUILTINS)).split(",") if n.strip()]
    names += [f"testee{i + 1}" for i, _ in enumerate(outside_commands())]
    return names


def outside_commands() -> list[str]:
    raw = os.environ.get("QUE_CONFORMANCE_TESTEES", "[]")
    commands = json.loads(raw)
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ValueError(f"QUE_CONFORMANCE_TESTEES must be a JSON list of command lines, got {raw!r}")
    return commands


@dataclass
class Member:
    impl: Implementation
    testee: Testee | None = None
    info: Info | None = None
    unavailable: str | None = None
    # The testee said it does not speak this run's dialect: its cells are not applicable.
    not_spoken: str | None = None
    restarts: int = 0
    declared: dict[str, Any] = field(default_factory=dict)


class Fleet:
    def __init__(self, db: Database, build: bool = True) -> None:
        self.db = db
        self.env = {"TZ": TESTEE_TZ}
        builtins = [n for n in configured_names() if n in BUILTINS]
        unknown = [n for n in configured_names() if n not in BUILTINS and not n.startswith("testee")]
        if unknown:
            raise ValueError(f"unknown implementations {unknown}; built-ins are {', '.join(BUILTINS)}")
        network = db.network if os.environ.get("QUE_CONFORMANCE_CONTAINERS") else None
        found = implementations.resolve(builtins, outside_commands(), build=build, network=network)
        self.members = {impl.name: Member(impl, unavailable=impl.unavailable) for impl in found}

    def names(self, folder: str | None = None) -> list[str]:
        """The rows of the run; with `folder`, those that take part in its cells."""
        return [name for name in self.members if folder is None or joins(name, folder)]

    def _start(self, member: Member) -> None:
        impl = member.impl
        try:
            # Kept before the handshake, so an interrupted start is still stopped at the end.
            member.testee = Testee(
                impl.command, cwd=impl.cwd, env={**self.env, **impl.env}, label=impl.name, on_exit=impl.on_exit
            )
            url = self.db.container_url if impl.in_container and self.db.container_url else self.db.url
            member.info = member.testee.start(url, results.TABLE, dialect=DIALECT)
        except NotSpoken as error:
            member.unavailable = member.not_spoken = f"{error} (its start said so)"
        except Unavailable as error:
            member.unavailable = str(error)

    def get(self, name: str) -> Testee:
        """A started testee, or skip the test as unavailable (with the reason). A testee that
        never answered its last request (the cell that sent it ended first) is killed and
        started again: its late answer must not reach the next cell."""
        member = self.members[name]
        if member.testee is not None and member.testee.busy:
            member.testee.kill()
        if member.unavailable is None and (member.testee is None or not member.testee.alive()):
            if member.testee is not None:
                member.restarts += 1
            self._start(member)
        if member.not_spoken is not None:
            pytest.skip(f"not applicable: {member.not_spoken}")
        if member.unavailable is not None:
            pytest.skip(f"unavailable: {name}: {member.unavailable}")
        assert member.testee is not None
        return member.testee

    def available(self, name: str) -> bool:
        """Whether row `name` is in this run and runs here (started, if it was not)."""
        member = self.members.get(name)
        if member is None:
            return False
        if member.unavailable is None and (member.testee is None or not member.testee.alive()):
            self._start(member)
        return member.unavailable is None

    def speaking(self, folder: str) -> list[str]:
        """The rows of `folder`'s cells that speak this run's dialect (started, if they were
        not): all but the testees that said they do not."""
        for name in self.names(folder):
            self.available(name)
        return [name for name in self.names(folder) if self.members[name].not_spoken is None]

    def why_unavailable(self, name: str) -> str:
        member = self.members.get(name)
        if member is None:
            return f"the {name} row is not in this run"
        return f"{name} is unavailable: {member.unavailable}" if member.unavailable else f"{name} runs"

    def info(self, name: str) -> Info:
        self.get(name)
        info = self.members[name].info
        assert info is not None
        return info

    def summary(self) -> dict[str, Any]:
        out = {}
        for name, member in self.members.items():
            out[name] = {
                "command": member.impl.describe(),
                "backend": member.impl.backend,
                "image": member.impl.image,
                "image_note": member.impl.image_note or None,
                "available": member.unavailable is None and member.info is not None,
                "unavailable_reason": member.unavailable,
                "not_spoken": member.not_spoken,
                "version": member.info.version if member.info else None,
                "language": member.info.language if member.info else None,
                "capabilities": member.info.capabilities if member.info else None,
            }
        return out

    def stop(self) -> None:
        for member in self.members.values():
            if member.testee is not None:
                member.testee.stop()

    def owner_of(self, conn: psycopg.Connection[Any], pids: list[int]) -> dict[int, str]:
        """Backend pid -> the name of the running testee whose session it is."""
        ports = owners.backend_ports(conn, pids)
        found = {}
        for name, member in self.members.items():
            if member.testee is None or not member.testee.alive():
                continue
            mine = owners.client_ports(member.testee.pid)
            found.update({pid: name for pid, port in ports.items() if port in mine})
        return found

    def clean(self, conn: psycopg.Connection[Any]) -> list[str]:
        """After a cell: kill every testee still answering a request the cell sent (it
        would act on the next cell's database), name every advisory lock still held, then
        restore a clean state: the owning testees are killed (and started again when next
        needed), any other session holding a lock is ended, and que_jobs is emptied."""
        problems = []
        for name, member in self.members.items():
            if member.testee is not None and member.testee.busy and member.testee.alive():
                problems.append(f"{name} was still answering {member.testee.last_op} when the cell ended; killed it")
                member.testee.kill()
        locks = lab.advisory_locks(conn)
        if not locks:
            return problems
        pids = sorted({lock.pid for lock in locks})
        owned = self.owner_of(conn, pids)
        for lock in locks:
            name = owned.get(lock.pid)
            member = self.members.get(name) if name else None
            after = member.testee.last_op if member and member.testee else None
            holder = name or f"a session that is no testee's (backend {lock.pid})"
            problems.append(
                f"job {lock.key}: advisory lock still held by {holder}" + (f" after {after}" if after else "")
            )
        for name in set(owned.values()):
            testee = self.members[name].testee
            if testee is not None:
                testee.kill()
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS t(pid)", [pids])
        lab.wait_until(lambda: not lab.advisory_locks(conn), 30, "the leftover locks to end with their sessions")
        lab.reset(conn)
        return problems


def joins(name: str, folder: str) -> bool:
    """Whether row `name` takes part in the cells of conformance/<folder>/ (a row from no
    manifest, a container or a --testee, takes part in all; see harness.manifests.Row.joins)."""
    row = manifests.rows().get(name)
    return row is None or row.joins(folder)


def require_worker(info: Info) -> None:
    """Mark the cell not applicable for a testee that only enqueues (for cells that work
    jobs in threads, where the testee's own refusal would not reach the cell)."""
    if info.can("enqueue_only"):
        pytest.skip(f"not applicable: {info.name} declares enqueue_only")


def require(info: Info, capability: str, why: str = "") -> None:
    """Mark the cell not applicable when the testee does not declare `capability`."""
    if not info.can(capability):
        pytest.skip(f"not applicable: {info.name} does not declare {capability}{': ' + why if why else ''}")
