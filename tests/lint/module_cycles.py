#!/usr/bin/env python3
"""Fails when two modules of src/ depend on each other, directly or through
others (`make lint`).

A module depends on another when its code names it: `use crate::x`,
`crate::x::...` in a path, or `use crate::{x, ...}`. Comments
(doc links included) are not code and don't count. A child module
(`src/a/b.rs`) counts as its top-level module (`a`); `main.rs` and the
binaries are wiring, not modules of the library, and are left out.

Each cycle is printed as the modules caught in it and, for each of their
imports of one another, the file and line that makes it, so the fix starts
at the right line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CRATE_PATH = re.compile(r"\bcrate::(?:\{\s*)?([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^}]*)\}", re.S)
LINE_COMMENT = re.compile(r"//.*")
BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
STRING = re.compile(r'"(?:\\.|[^"\\])*"')


def module_of(src: Path, path: Path) -> str:
    rel = path.relative_to(src)
    top = rel.parts[0]
    return top[:-3] if top.endswith(".rs") else top


def code_of(text: str) -> str:
    """The text without comments and string literals, lines kept in place."""
    keep_lines = lambda m: "\n" * m.group(0).count("\n")  # noqa: E731
    text = BLOCK_COMMENT.sub(keep_lines, text)
    text = STRING.sub('""', text)
    return "\n".join(LINE_COMMENT.sub("", line) for line in text.split("\n"))


def edges(src: Path) -> dict[str, dict[str, tuple[str, int]]]:
    """module -> {module it depends on: (file, line) of the first mention}."""
    graph: dict[str, dict[str, tuple[str, int]]] = {}
    for path in sorted(src.rglob("*.rs")):
        if path.name == "main.rs" and path.parent == src or "bin" in path.relative_to(src).parts:
            continue
        me = module_of(src, path)
        if me == "lib":
            continue
        found = graph.setdefault(me, {})
        code = code_of(path.read_text())
        mentions: list[tuple[int, str]] = []
        for m in CRATE_PATH.finditer(code):
            mentions.append((m.start(), m.group(1)))
        for m in USE_GROUP.finditer(code):
            for item in re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", m.group(1)):
                mentions.append((m.start(), item))
        for at, other in mentions:
            if other in (me, "self", "super") or other[0].isupper():
                continue
            line = code.count("\n", 0, at) + 1
            found.setdefault(other, (str(path), line))
    known = set(graph)
    return {m: {o: w for o, w in deps.items() if o in known} for m, deps in graph.items()}


def cycles(graph: dict[str, dict[str, tuple[str, int]]]) -> list[list[str]]:
    """The modules of each strongly connected component of more than one
    module: each depends on every other, directly or through others
    (Tarjan's algorithm, iterative: no recursion limit to meet)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph[root])))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "src"
    graph = edges(src)
    found = cycles(graph)
    if not found:
        print(f"module_cycles: no import cycle among {len(graph)} modules of {src}")
        return 0
    for members in found:
        print("module_cycles: import cycle among " + ", ".join(members), file=sys.stderr)
        for a in members:
            for b, (file, line) in sorted(graph[a].items()):
                if b in members:
                    print(f"  {a} -> {b}: {file}:{line}", file=sys.stderr)
    print(
        "module_cycles: a module that two others need belongs below both of them "
        "(README, 'How the code is laid out')",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
