"""The testees' manifests: testees/<folder>/manifest.json, one per implementation folder.

A manifest says what rows its folder gives a run (each a command line, the dialects it
speaks, what it needs installed and which environment variables it is passed), how to build
them (`build`), and their container images (`images`). testees/README.md is the format's
description; the harness knows commands and placeholders, not languages:

    {python}  the harness's interpreter       {dir}  the testee's folder
    {bin}     where built programs go          {ruby} the ruby on PATH

What a testee can do (its capabilities) is not here: it answers that itself, at `start`.
"""

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from harness.paths import TESTEES

FORMAT = "que-interop/testee"
# The folders in the order of a run's rows; any other folder comes after them, by name.
ORDER = ("python", "go", "ruby", "ruby2")


@dataclass(frozen=True)
class Row:
    """One implementation row of a testee folder."""

    name: str
    folder: Path
    command: tuple[str, ...]
    dialects: tuple[str, ...]
    needs: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    # The image the row runs in a container run, and the program it runs there.
    image: str | None = None
    program: tuple[str, ...] = ()
    target: str | None = None
    # The cell folders of conformance/ the row takes part in (`only`); () for every cell. The
    # Rails row is an application, not a port of Que: it joins the ActiveJob cells only.
    only: tuple[str, ...] = ()

    def joins(self, folder: str) -> bool:
        """Whether the row takes part in the cells of conformance/<folder>/ ("conformance" for
        the 0.14 cells, "que2" for the Que 1.x/2.x ones): every row does but one whose
        manifest names its folders (`only`). The bench asks the same for its parts."""
        return not self.only or folder in self.only


@dataclass(frozen=True)
class Manifest:
    folder: Path
    description: str
    rows: tuple[Row, ...]
    # Programs built by a tool: tool -> {program name: what the tool builds it from}.
    build: dict[str, dict[str, str]] = field(default_factory=dict)
    # Images: name -> {"inputs": {path in the build context: what produces it}}.
    images: dict[str, dict[str, Any]] = field(default_factory=dict)


class ManifestError(ValueError):
    """A manifest that breaks the format: names the file and what is wrong."""


def _load(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path}: {error}") from None
    if data.get("format") != FORMAT or data.get("version") != 1:
        raise ManifestError(f"{path}: format must be {FORMAT!r}, version 1")
    rows = []
    for name, spec in data.get("rows", {}).items():
        if not spec.get("command") or not spec.get("dialects"):
            raise ManifestError(f"{path}: row {name!r} needs a command and its dialects")
        image = spec.get("image") or {}
        rows.append(
            Row(
                name=name,
                folder=path.parent,
                command=tuple(spec["command"]),
                dialects=tuple(spec["dialects"]),
                needs=tuple(spec.get("needs", ())),
                env=tuple(spec.get("env", ())),
                image=image.get("name"),
                program=tuple(image.get("program", ())),
                target=image.get("target"),
                only=tuple(spec.get("only", ())),
            )
        )
    description, build, images = data.get("description", ""), data.get("build", {}), data.get("images", {})
    return Manifest(path.parent, description, tuple(rows), build, images)


@cache
def manifests() -> tuple[Manifest, ...]:
    """Every testee folder's manifest, in ORDER."""
    found = {path.parent.name: _load(path) for path in TESTEES.glob("*/manifest.json")}
    order = [name for name in ORDER if name in found] + sorted(set(found) - set(ORDER))
    return tuple(found[name] for name in order)


def rows() -> dict[str, Row]:
    """Every row of every manifest, by name, in run order."""
    found: dict[str, Row] = {}
    for manifest in manifests():
        for row in manifest.rows:
            if row.name in found:
                raise ManifestError(f"{manifest.folder}: row {row.name!r} is also {found[row.name].folder}'s")
            found[row.name] = row
    return found


def manifest_of(row: Row) -> Manifest:
    return next(manifest for manifest in manifests() if manifest.folder == row.folder)


def built(tool: str) -> dict[str, tuple[Path, str]]:
    """The programs `tool` builds: program name -> (its folder, what it builds it from)."""
    return {
        program: (manifest.folder, source)
        for manifest in manifests()
        for program, source in manifest.build.get(tool, {}).items()
    }
