"""Every public function and method reachable from ``audiovis.__all__`` that takes more than two parameters
documents each of them in an ``Args:`` section (and what it gives back under ``Returns:``).

Functions are the exported ones; classes contribute their constructor (documented in the class docstring
or ``__init__``'s) and every public method or static/class method defined in an audiovis module.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Iterator

import pytest

import audiovis as av

SECTION = re.compile(r"^(\s*)(Args|Arguments|Attributes|Returns|Yields|Raises|Example|Examples|Note|Notes|See Also):\s*$")
ENTRY = re.compile(r"^\s*\**([A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:")


def sections(doc: str | None) -> dict[str, list[str]]:
    """A Google-style docstring's sections: name -> the names its entries document (Args, Attributes) or its lines."""
    out: dict[str, list[str]] = {}
    current, indent = None, None
    for line in (doc or "").splitlines():
        head = SECTION.match(line)
        if head:
            current, indent = head.group(2), None
            out.setdefault(current, [])
            continue
        if current is None or not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:  # text after the section, at the docstring's own indent
            current = None
            continue
        if depth == indent:
            entry = ENTRY.match(line)
            out[current].append(entry.group(1) if entry else line.strip())
    return out


def parameters(function: Callable) -> list[str]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature
        return []
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.name not in ("self", "cls") and p.kind not in skip]


def returns_something(function: Callable) -> bool:
    annotation = inspect.signature(function).return_annotation
    return annotation not in (inspect.Signature.empty, None, "None")


def public_api() -> Iterator[tuple[str, Callable, str | None, bool]]:
    """``(name, function, docstring, is_constructor)`` for every function and method to check."""
    seen: set[int] = set()
    for export in av.__all__:
        obj = getattr(av, export)
        if inspect.isclass(obj):
            if issubclass(obj, BaseException):
                continue
            init = obj.__init__
            init_doc = init.__doc__ if init.__qualname__.split(".")[0] == obj.__name__ or "__init__" in vars(obj) else None
            own = [k for k in obj.__mro__ if k.__module__.startswith("audiovis")]
            if any("__init__" in vars(k) for k in own):  # a constructor audiovis wrote (or a dataclass's)
                docs = "\n".join(d for d in (inspect.getdoc(obj), inspect.getdoc(init) if init_doc else None) if d)
                yield f"{export}.__init__", init, docs, True
            names: set[str] = set()
            for klass in own:
                for name, raw in vars(klass).items():
                    if name.startswith("_") or name in names:
                        continue
                    names.add(name)
                    if isinstance(raw, (staticmethod, classmethod)):
                        function = getattr(obj, name)
                    elif inspect.isfunction(raw):
                        function = raw
                    else:
                        continue
                    if id(raw) not in seen:
                        seen.add(id(raw))
                        yield f"{export}.{name}", function, inspect.getdoc(function), False
        elif callable(obj) and id(obj) not in seen:
            seen.add(id(obj))
            yield export, obj, inspect.getdoc(obj), False


def undocumented() -> list[str]:
    problems = []
    for name, function, doc, constructor in public_api():
        params = parameters(function)
        if len(params) <= 2:
            continue
        found = sections(doc)
        documented = set(found.get("Args", [])) | set(found.get("Arguments", []))
        if constructor:
            documented |= set(found.get("Attributes", []))
        missing = [p for p in params if p not in documented]
        if missing:
            problems.append(f"{name}: Args misses {', '.join(missing)}")
        if not constructor and returns_something(function) and not ({"Returns", "Yields"} & set(found)):
            problems.append(f"{name}: no Returns section")
    return problems


def test_public_functions_with_more_than_two_parameters_document_each_one():
    problems = undocumented()
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_missing_parameter():
    """The walker finds the API and the parser reads Args entries, so the test above can fail."""
    names = {name for name, *_ in public_api()}
    assert {"load_audio", "PatchGrid.__init__", "ASTModel.analyze", "Analysis.similarity", "embed_dataset"} <= names

    def documented(a: int, b: int, c: int) -> int:
        """Sum.

        Args:
            a: one.
            b (int): two.
                More about b, not an entry.

        Returns:
            The sum.
        """
        return a + b + c

    found = sections(inspect.getdoc(documented))
    assert found["Args"] == ["a", "b"] and "Returns" in found
    assert [p for p in parameters(documented) if p not in found["Args"]] == ["c"]


@pytest.mark.parametrize("doc,expected", [
    ("Text.\n\nArgs:\n    x: a.\n    y: b.\n\nMore text.\n", ["x", "y"]),
    ("Text.\n\nArgs:\n    x: a\n        wrapped: not an entry.\n    y: b.\n", ["x", "y"]),
])
def test_sections_parser(doc: str, expected: list[Any]):
    assert sections(doc)["Args"] == expected
