"""Imports go one way, down the data path, in ``audiovis/`` and in ``js/src/``.

Read from the source, not from a running interpreter: every ``import`` / ``from ... import`` statement of
every module counts, including those inside functions and under ``TYPE_CHECKING``; in TypeScript every
``import ... from "./x"`` (``import type`` too) and ``export ... from "./x"``. The package root
(``audiovis/__init__.py``) wires the public names lazily and may import any layer; nothing imports it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "audiovis"
JS_SRC = ROOT / "js" / "src"

#: The layers, lowest first: a module may import its own layer and the ones before it, never a later one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("errors and checks", ("audiovis.errors", "audiovis.checks", "audiovis.metrics")),
    ("audio", ("audiovis.audio",)),
    ("spectrogram", ("audiovis.framewise", "audiovis.spectrogram", "audiovis.longform")),
    ("patches", ("audiovis.patches",)),
    ("models", ("audiovis.models",)),
    ("analysis", ("audiovis.windows", "audiovis.runner", "audiovis.analysis", "audiovis.explain", "audiovis.overlays",
                  "audiovis.projections")),
    ("datasets", ("audiovis.datasets", "audiovis.embeddings", "audiovis.store", "audiovis.probe",
                  "audiovis.tradeoff", "audiovis.demo")),
    ("rendering", ("audiovis.rendering",)),
    ("widgets", ("audiovis.widgets", "audiovis.export")),
]
TOP = "audiovis"


# --- Python ---------------------------------------------------------------------------------------------

def python_modules(package: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every ``.py`` under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def python_imports(package: Path) -> dict[str, set[str]]:
    """Module -> the project modules its import statements name (anywhere in the file)."""
    modules = python_modules(package)
    top = package.name

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.split(".")[0] == top}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != top:
                    continue
                for alias in node.names:  # "from pkg import submodule" imports the submodule
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in modules else known(source))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


# --- TypeScript -----------------------------------------------------------------------------------------

_TS_FROM = re.compile(r"""(?:^|[\s;}])(?:import|export)\b[^;]*?\bfrom\s*["'](\.{1,2}/[^"']+)["']""", re.S)
_TS_BARE = re.compile(r"""(?:^|[\s;])import\s*["'](\.{1,2}/[^"']+)["']""")


def ts_imports(src: Path) -> dict[str, set[str]]:
    """Source file (relative to ``src``) -> the project TS files it imports (JSON and CSS are data, skipped)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.ts")):
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(), flags=re.S)
        targets = set()
        for spec in _TS_FROM.findall(text) + _TS_BARE.findall(text):
            base = (path.parent / spec).resolve()
            for candidate in (base.with_name(base.name + ".ts"), base / "index.ts", base):
                if candidate.suffix == ".ts" and candidate.is_file():
                    targets.add(str(candidate.relative_to(src)))
                    break
        graph[str(path.relative_to(src))] = targets
    return graph


# --- cycles ---------------------------------------------------------------------------------------------

def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (or a node importing itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative Tarjan: no recursion limit on deep graphs
        nonlocal counter
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer_of(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


# --- the rules ------------------------------------------------------------------------------------------

def test_no_python_import_cycle():
    graph = python_imports(PACKAGE)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the parser did see the package
    found = cycles({m: t for m, t in graph.items() if m != TOP})
    assert not found, "import cycles in audiovis/ (imports inside functions count):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_nothing_imports_the_package_root():
    graph = python_imports(PACKAGE)
    offenders = sorted(m for m, targets in graph.items() if TOP in targets and m != TOP)
    assert not offenders, f"these modules import the package root (import the module that holds the name): {offenders}"


def test_python_imports_only_go_down_the_layers():
    graph = python_imports(PACKAGE)
    unplaced = sorted(m for m in graph if m != TOP and layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS here and to docs/ARCHITECTURE.md): {unplaced}"
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in sorted(graph.items()) if m != TOP for t in sorted(targets)
              if t != TOP and layer_of(t) > layer_of(m)]
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_models_never_import_analysis_rendering_or_widgets():
    graph = python_imports(PACKAGE)
    above = ("audiovis.windows", "audiovis.runner", "audiovis.analysis", "audiovis.explain", "audiovis.overlays",
             "audiovis.rendering",
             "audiovis.widgets")
    bad = sorted((m, t) for m, targets in graph.items() if m.startswith("audiovis.models")
                 for t in targets if t.startswith(above))
    assert not bad, bad


def test_no_typescript_import_cycle():
    graph = ts_imports(JS_SRC)
    assert len(graph) > 10 and sum(map(len, graph.values())) > 10
    found = cycles(graph)
    assert not found, "import cycles in js/src/:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_typescript_file_over_500_lines():
    long = {str(p.relative_to(JS_SRC)): n for p in JS_SRC.rglob("*.ts")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these along their seams: {long}"


# --- the checkers themselves find what they must --------------------------------------------------------

def test_python_checker_sees_imports_inside_functions_and_type_checking(tmp_path):
    pkg = tmp_path / "audiovis"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from .sub import high\n    return high\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "high.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..low import f\nimport audiovis.sub\n")
    (pkg / "plain.py").write_text("from audiovis import low\nimport numpy\n")
    graph = python_imports(pkg)
    assert graph["audiovis.low"] == {"audiovis.sub.high"}
    assert graph["audiovis.sub.high"] == {"audiovis.low", "audiovis.sub"}
    assert graph["audiovis.plain"] == {"audiovis.low"}
    assert cycles(graph) == [["audiovis.low", "audiovis.sub.high"]]
    (pkg / "low.py").write_text("x = 1\n")
    assert cycles(python_imports(pkg)) == []


def test_cycle_finder_on_a_long_ring_and_a_self_import():
    ring = {f"m{i}": {f"m{(i + 1) % 2000}"} for i in range(2000)}
    assert cycles(ring) == [sorted(ring)]
    assert cycles({"a": {"a"}, "b": set()}) == [["a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_typescript_checker_sees_type_imports_multiline_and_reexports(tmp_path):
    src = tmp_path / "src"
    (src / "view").mkdir(parents=True)
    (src / "geometry.ts").write_text('import type { Meta } from "./types";\nexport const g = 1;\n')
    (src / "types.ts").write_text('import {\n  draw,\n} from "./view/render";\nexport type Meta = number;\n')
    (src / "view" / "render.ts").write_text(
        '// import { nothing } from "../nowhere";\nexport { g } from "../geometry";\nimport data from "../tables.json";\n')
    (src / "tables.json").write_text("{}")
    graph = ts_imports(src)
    assert graph == {"geometry.ts": {"types.ts"}, "types.ts": {"view/render.ts"}, "view/render.ts": {"geometry.ts"}}
    assert cycles(graph) == [["geometry.ts", "types.ts", "view/render.ts"]]


@pytest.mark.parametrize("module", ["audiovis.widgets.viewer", "audiovis.rendering.png", "audiovis.models.ast"])
def test_every_layer_named_here_exists(module):
    assert module in python_modules(PACKAGE) and layer_of(module) is not None
