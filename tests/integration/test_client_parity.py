"""Every public method of Client and AsyncClient, on a table of each dialect.

The table of RECIPES says how to call each method and what it must give; the first test
fails when either client has a public method without a recipe, so a new method cannot
miss a cell. Each cell calls the method on a real table (schema version 3: Que 0.x; 5:
Que 1.x; 7: Que 2) with a job or two in it, and the method either works (its result is checked) or
raises que.UnsupportedByDialect, whose message names the dialect.
"""

import asyncio
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

import que
from que.aio import AsyncClient
from tests.conftest import fresh_database


@dataclass(frozen=True)
class Recipe:
    """How to call a method (`call(client, table_version)`, awaited for AsyncClient) and what it must give
    on each dialect: a check of the result, or UNSUPPORTED."""

    call: Callable[[Any, int], Any]
    check: dict[str, Callable[[Any], bool] | str]


UNSUPPORTED = "unsupported"
DIALECTS = ("0.14", "1", "2")
# The table each dialect's cells run on.
VERSIONS = {"0.14": 3, "1": 5, "2": 7}


def same(check: Callable[[Any], bool]) -> dict[str, Callable[[Any], bool] | str]:
    return dict.fromkeys(DIALECTS, check)


def is_none(value: Any) -> bool:
    return value is None


def is_true(value: Any) -> bool:
    return value is True


RECIPES: dict[str, Recipe] = {
    "close": Recipe(lambda c, v: c.close(), same(is_none)),
    "connect": Recipe(lambda c, v: c.connect(), same(lambda conn: not conn.closed)),
    "connection": Recipe(lambda c, v: c.connection(), same(lambda cm: cm is not None)),
    "migrate": Recipe(lambda c, v: c.migrate(v), same(is_none)),
    "db_version": Recipe(lambda c, v: c.db_version(), {d: lambda found, v=v: found == v for d, v in VERSIONS.items()}),
    "dialect": Recipe(lambda c, v: c.dialect(), {d: lambda found, d=d: str(found) == d for d in DIALECTS}),
    "refresh_dialect": Recipe(
        lambda c, v: c.refresh_dialect(), {d: lambda found, d=d: str(found) == d for d in DIALECTS}
    ),
    "enqueue": Recipe(lambda c, v: c.enqueue("Parity", 1, queue="parity"), same(lambda job: job.job_class == "Parity")),
    "enqueue_many": Recipe(
        lambda c, v: c.enqueue_many([que.NewJob("Parity", [2], queue="parity")]), same(lambda jobs: len(jobs) == 1)
    ),
    "lock_job": Recipe(
        lambda c, v: c.lock_job("parity"),
        {"0.14": lambda locked: locked is not None, "1": UNSUPPORTED, "2": UNSUPPORTED},
    ),
    "job_stats": Recipe(lambda c, v: c.job_stats(), same(lambda rows: [r["job_class"] for r in rows] == ["Parity"])),
    "job_states": Recipe(
        lambda c, v: c.job_states(),
        same(lambda rows: {(r["queue"], r["state"], r["count"]) for r in rows} >= {("parity", "ready", 1)}),
    ),
    "worker_states": Recipe(lambda c, v: c.worker_states(), same(lambda rows: rows == [])),
    "dead_jobs": Recipe(lambda c, v: c.dead_jobs("parity"), same(lambda jobs: jobs == [])),
    "retry_dead": Recipe(lambda c, v: c.retry_dead(queue="parity"), same(lambda n: n == 0)),
    "repair_dead": Recipe(lambda c, v: c.repair_dead(), {"0.14": lambda n: n == 0, "1": UNSUPPORTED, "2": UNSUPPORTED}),
    "overview": Recipe(
        lambda c, v: c.overview(),
        same(lambda rows: [(r["queue"], r["ready"], r["working"]) for r in rows] == [("parity", 1, 0)]),
    ),
    "jobs": Recipe(lambda c, v: c.jobs("Parity"), same(lambda jobs: [j.args for j in jobs] == [[0]])),
    "job_page": Recipe(
        lambda c, v: c.job_page(queue="parity", state="ready"), same(lambda jobs: [j.args for j in jobs] == [[0]])
    ),
    "job_action": Recipe(lambda c, v: c.job_action("expire", 1), {"0.14": UNSUPPORTED, "1": is_true, "2": is_true}),
    "lockers": Recipe(lambda c, v: c.lockers(), same(lambda rows: rows == [])),
    "clear": Recipe(lambda c, v: c.clear(), same(is_none)),
    "connection_limit": Recipe(lambda c, v: c.connection_limit(), same(lambda n: n > 0)),
}
# Opening is the constructor's work in the sync client, an awaited open() in the async one.
ASYNC_ONLY = {"open"}


def public_methods(cls: type) -> set[str]:
    return {name for name, member in inspect.getmembers(cls) if callable(member) and not name.startswith("_")}


@pytest.mark.parametrize("cls", [que.Client, AsyncClient], ids=["sync", "async"])
def test_every_public_method_has_a_recipe(cls: type) -> None:
    methods = public_methods(cls) - (ASYNC_ONLY if cls is AsyncClient else set())
    assert methods == set(RECIPES), (
        f"methods without a recipe: {sorted(methods - set(RECIPES))}; "
        f"recipes without a method: {sorted(set(RECIPES) - methods)}"
    )


@pytest.fixture(params=[3, 5, 7], ids=["v3", "v5", "v7"])
def table(request: pytest.FixtureRequest, database_url: str) -> Iterator[tuple[str, int]]:
    url = fresh_database(database_url, f"parity_v{request.param}")
    with que.Client(url) as client:
        client.migrate(request.param)
    yield url, request.param


def dialect_of(version: int) -> str:
    return next(d for d, v in VERSIONS.items() if v == version)


def expected(version: int, name: str) -> Callable[[Any], bool] | str:
    return RECIPES[name].check[dialect_of(version)]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_method_works_or_says_the_dialect_has_none(name: str, table: tuple[str, int]) -> None:
    url, version = table
    check = expected(version, name)
    with que.Client(url) as client:
        client.enqueue("Parity", 0, queue="parity")
        outcome(lambda: RECIPES[name].call(client, version), check, version)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_an_async_method_works_or_says_the_dialect_has_none(name: str, table: tuple[str, int]) -> None:
    url, version = table
    check = expected(version, name)

    async def main() -> None:
        async with AsyncClient(url) as client:
            await client.enqueue("Parity", 0, queue="parity")

            async def call() -> Any:
                value = RECIPES[name].call(client, version)
                if inspect.isawaitable(value):
                    return await value
                if hasattr(value, "__aenter__"):  # connection(): a context manager
                    async with value as conn:
                        return conn
                return value

            try:
                result = await call()
            except que.UnsupportedByDialect as refused:
                assert check == UNSUPPORTED, f"{name} refused on v{version}: {refused}"
                assert f"dialect {dialect_of(version)} (" in str(refused), str(refused)
                return
            assert check != UNSUPPORTED, f"{name} worked on v{version}, expected a refusal: {result!r}"
            assert callable(check)
            assert check(result), f"{name} on v{version} gave {result!r}"
            if isinstance(result, psycopg.AsyncConnection):
                await result.close()

    asyncio.run(main())


def outcome(call: Callable[[], Any], check: Callable[[Any], bool] | str, version: int) -> None:
    try:
        result = call()
        if hasattr(result, "__enter__") and not isinstance(result, psycopg.Connection):
            with result as conn:
                result = conn
    except que.UnsupportedByDialect as refused:
        assert check == UNSUPPORTED, f"refused on v{version}: {refused}"
        assert f"dialect {dialect_of(version)} (" in str(refused), str(refused)
        return
    assert check != UNSUPPORTED, f"worked on v{version}, expected a refusal: {result!r}"
    assert callable(check)
    assert check(result), f"on v{version} gave {result!r}"
    if isinstance(result, psycopg.Connection) and not result.closed:
        result.close()
