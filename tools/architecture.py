"""Draw docs/architecture.png: the layers of que/ and of the suite, as the code has them.

Each box is a layer (tools/layers.py), listing its modules; each arrow, the imports from one
layer into another (how many), read from the code each time this runs, so the picture
cannot drift from it.

    python tools/architecture.py [--out docs/architecture.png]
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from tools.layers import QUE_LAYERS, SUITE_LAYERS, graph, layer_of  # noqa: E402

# Where each layer's box stands: (column, row from the bottom), and its caption.
QUE_BOXES = {
    "que.core": ((0.5, 0), "core: jobs, errors, JSON, backoff, handlers"),
    "que.engine": ((0.5, 1), "engine: sans-I/O sessions, wire, a locker's books"),
    "que.dialects": ((0, 2), "dialects: the protocol seam (0.x, 1.x, 2.x)"),
    "que.drivers": ((1, 2), "drivers: the I/O seam (threads, asyncio)"),
    "que.shells": ((0.5, 3), "shells: asyncio source -> generated sync"),
    "que": ((0.5, 4), "que, que.aio, que.cli, que.contrib"),
}
FACADES = ("que", "que.aio", "que.errors", "que.cli", "que.contrib")
SUITE_BOXES = {
    "harness": ((2.2, 1), "harness: PostgreSQL, testee processes"),
    "testees": ((3.35, 1), "testees/<folder>: one per implementation"),
    "conformance": ((2.75, 2), "conformance: the judge and its model"),
    "mutation": ((2.2, 3), "mutation: mutants, judged by the cells"),
    "bench": ((3.35, 3), "bench: make bench"),
    "chaos": ((3.35, 4), "chaos: make chaos"),
}


def box_of(module: str) -> str | None:
    found = layer_of(module, QUE_LAYERS)
    if found is not None:
        return "que" if found[0] in FACADES else found[0]
    suite = layer_of(module, SUITE_LAYERS)
    return None if suite is None else suite[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "architecture.png")
    options = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    packages = ["que", *(prefix for prefix, _ in SUITE_LAYERS if (ROOT / prefix).is_dir())]
    edges = graph(packages)
    members: dict[str, list[str]] = {}
    arrows: Counter[tuple[str, str]] = Counter()
    for module, targets in edges.items():
        source = box_of(module)
        if source is None:
            continue
        members.setdefault(source, []).append(module)
        for target in targets:
            into = box_of(target)
            if into is not None and into != source:
                arrows[(source, into)] += 1

    boxes = {**QUE_BOXES, **SUITE_BOXES}
    fig, ax = plt.subplots(figsize=(16, 9))
    width, height = 1.0, 0.62
    centre: dict[str, tuple[float, float]] = {}
    for name, ((column, row), caption) in boxes.items():
        x, y = column * 1.1 if column < 2 else column, row * 0.95
        centre[name] = (x + width / 2, y + height / 2)
        colour = "#dbe8f5" if name in QUE_BOXES else "#f5e6d3"
        ax.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.02", fc=colour, ec="#555"))
        ax.text(x + 0.03, y + height - 0.07, caption, fontsize=7.8, weight="bold", va="top")
        names = sorted({m.removeprefix(name + ".") for m in members.get(name, [])} - {name})
        names = [n for n in names if not n.split(".")[-1].startswith("test_")]
        if len(names) > 24:
            names = [*names[:23], f"... {len(names) - 23} more"]
        listing = ", ".join(names)
        lines, line = [], ""
        for word in listing.split(", "):
            if len(line) + len(word) > 52:
                lines.append(line.rstrip(", "))
                line = ""
            line += word + ", "
        lines.append(line.rstrip(", "))
        ax.text(x + 0.03, y + height - 0.2, "\n".join(lines[:6]), fontsize=6.5, va="top", family="monospace")
    for (source, into), count in sorted(arrows.items()):
        if source not in centre or into not in centre:
            continue
        (x1, y1), (x2, y2) = centre[source], centre[into]
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1 - height / 2 + 0.02 if y2 < y1 else y1),
                (x2, y2 + height / 2 - 0.02 if y2 < y1 else y2),
                arrowstyle="-|>",
                mutation_scale=12,
                color="#888",
                lw=0.6 + min(count, 40) / 20,
                connectionstyle="arc3,rad=0.05",
            )
        )
    ax.set_xlim(-0.1, 4.45)
    ax.set_ylim(-0.15, 4.75)
    ax.axis("off")
    ax.set_title(
        "que-interop: the library (blue) and the suite (sand); arrows are imports, each layer only "
        "down (tools/layers.py)",
        fontsize=11,
    )
    options.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(options.out, dpi=110, bbox_inches="tight")
    print(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
