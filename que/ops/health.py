"""Health checks for probes (Kubernetes liveness and readiness, a load balancer, a cron
alert): `que health` runs them from outside, `que work --metrics-port` answers them at
/health from inside the pool. Each check says ok or why not; the probe is healthy when
every check is.

- database: the server answers a query within the client's connect timeout;
- schema: que_jobs is at a version que works (3, 5 or 7), or at the one asked for;
- pool: (inside `que work` only) every member of this pool (its locker, its workers) is alive;
- oldest_due: the oldest due job of each queue has waited less than a bound, if one is given.
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from que.dialects.schema import CURRENT_VERSION

WORKABLE = (3, 5, 7)  # the table versions que works: Que 0.x, 1.x, 2.x


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_database(client: Any) -> tuple[Check, int | None]:
    """(the database check, the table's schema version or None when unreachable)."""
    try:
        version: int = client.db_version()
    except (psycopg.Error, OSError) as error:
        return Check("database", False, f"no answer: {str(error).strip().splitlines()[0]}"), None
    return Check("database", True, "answers"), version


def check_schema(version: int, expected: int | None) -> Check:
    if expected is not None and version != expected:
        return Check("schema", False, f"que_jobs is at version {version}, {expected} was asked for")
    if version not in WORKABLE:
        hint = "no que_jobs table" if version == 0 else f"version {version}"
        return Check("schema", False, f"{hint}: que works versions {WORKABLE} (migrate to {CURRENT_VERSION} or 7)")
    return Check("schema", True, f"version {version}")


def check_oldest_due(overview: Sequence[dict[str, Any]], max_age: float) -> Check:
    late = {row["queue"]: row["oldest_due_age"] for row in overview if (row["oldest_due_age"] or 0.0) >= max_age}
    if late:
        shown = ", ".join(f"{queue!r}: {age:.1f} s" for queue, age in sorted(late.items()))
        return Check("oldest_due", False, f"due jobs waiting {max_age:g} s or more: {shown}")
    worst = max((row["oldest_due_age"] or 0.0 for row in overview), default=0.0)
    return Check("oldest_due", True, f"the oldest due job waited {worst:.1f} s (bound {max_age:g} s)")


def run(
    client: Any,
    *,
    schema_version: int | None = None,
    max_age: float | None = None,
    pool_alive: Callable[[], bool] | None = None,
) -> list[Check]:
    """Every check that applies, in order; stops after the database check fails."""
    database, version = check_database(client)
    checks = [database]
    if version is None:
        return checks
    checks.append(check_schema(version, schema_version))
    if pool_alive is not None:
        alive = pool_alive()
        checks.append(Check("pool", alive, "every worker and the locker run" if alive else "a member of the pool died"))
    if max_age is not None and version in WORKABLE:
        try:
            checks.append(check_oldest_due(client.overview(), max_age))
        except psycopg.Error as error:
            checks.append(Check("oldest_due", False, f"the overview failed: {str(error).strip().splitlines()[0]}"))
    return checks


def healthy(checks: Sequence[Check]) -> bool:
    return all(check.ok for check in checks)
