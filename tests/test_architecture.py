"""The house rules of the library, checked on the source (docs/CONVENTIONS.md, "Layout"):

- no import circle between modules of ``explorer/``, counting imports inside functions;
- no module imports another module's ``_private`` name (inside one module anything goes);
- ``explorer/`` never imports Streamlit; ``pages/`` and ``ui/`` import only the library's public names;
- every package of ``explorer/`` names its public API in ``__all__``.
"""
from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "explorer"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def library_modules(root: Path = LIBRARY) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def imported(tree: ast.AST, this: str, is_package: bool) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every import statement, anywhere in the file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = this.split(".") if is_package else this.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            found.append((base, [a.name for a in node.names], node.lineno))
    return found


def resolve(target: str, names: list[str], modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """The library modules an import statement reaches, each with the name taken from it (None: whole module)."""
    out = []
    if names:
        for name in names:
            if f"{target}.{name}" in modules:  # "from explorer.models import loading": a submodule
                out.append((f"{target}.{name}", None))
            elif target in modules:
                out.append((target, name))
    elif target in modules:
        out.append((target, None))
    return out


def import_graph(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Module → modules it imports (a package ``__init__`` counts as the package), and private-name offences."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    offences = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for target, names, line in imported(tree, name, path.name == "__init__.py"):
            for module, taken in resolve(target, names, modules):
                if module == name:
                    continue
                graph[name].add(module)
                if taken and taken.startswith("_") and not taken.startswith("__"):
                    offences.append(f"{path.relative_to(ROOT)}:{line} imports {taken} from {module}")
            if target.startswith("explorer.") and any(part.startswith("_") and not part.startswith("__")
                                                      for part in target.split(".")):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports private module {target}")
    return graph, offences


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. the import circles.

    A package ``__init__`` that re-exports its submodules is an edge from the package to them; a submodule
    importing its own package's ``__init__`` would close a circle, so submodules import each other directly.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_in_the_library():
    graph, _ = import_graph(library_modules())
    assert cycles(graph) == []


def test_no_module_takes_another_modules_private_names():
    _, offences = import_graph(library_modules())
    assert offences == []


def test_the_library_never_imports_streamlit():
    offenders = []
    for name, path in library_modules().items():
        for target, _names, line in imported(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            if target.split(".")[0] == "streamlit":
                offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == []


def test_pages_and_ui_use_only_public_library_names():
    offenders = []
    for folder in ("pages", "ui"):
        for path in sorted((ROOT / folder).glob("*.py")):
            for target, names, line in imported(ast.parse(path.read_text()), module_name(path), False):
                if not target.startswith("explorer"):
                    continue
                private = [n for n in names if n.startswith("_")]
                if private or any(p.startswith("_") for p in target.split(".")):
                    offenders.append(f"{path.relative_to(ROOT)}:{line} {target} {private}")
    assert offenders == []


def test_every_package_names_its_public_api():
    missing = []
    for init in sorted(LIBRARY.rglob("__init__.py")):
        if init.parent.name in ("commands",):
            continue  # sub-commands are discovered by name, not imported by API
        tree = ast.parse(init.read_text())
        names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)}
        if "__all__" not in names:
            missing.append(str(init.relative_to(ROOT)))
    assert missing == []


# --- the checks themselves can fail: a throwaway tree with a circle and a private import -------------------

def test_the_checks_catch_a_circle_and_a_private_import(tmp_path, monkeypatch):
    pkg = tmp_path / "explorer"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("__all__ = []\n")
    (pkg / "a" / "one.py").write_text("def f():\n    from explorer.a.two import g\n")
    (pkg / "a" / "two.py").write_text("from explorer.a.one import f\nfrom explorer.a.one import _hidden\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    modules = {module_name(p): p for p in pkg.rglob("*.py")}
    graph, offences = import_graph(modules)
    assert cycles(graph) == [["explorer.a.one", "explorer.a.two"]]
    assert len(offences) == 1 and "_hidden" in offences[0]


def test_pages_end_early_with_halt_not_st_stop():
    """After ``st.stop()`` Streamlit refuses every further message of the run, so ``app.py`` could not update the
    URL or the class (docs/CONVENTIONS.md); the one ``st.stop()`` left ends a page that already ran inside app.py."""
    calls = []
    for path in sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "stop"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "st"):
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(calls) == 1 and calls[0].startswith("ui/entry.py"), calls  # run_through_app


def test_format_functions_do_not_translate_when_called():
    """Streamlit (and AppTest) may call a widget's format_func outside the script run, where ``t`` falls back to
    English: a Korean page then failed to find its own options. Translate in the run (``ui.common.formatter``, or a
    default argument), never inside the lambda's body."""
    offenders = []
    for path in sorted([*(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "format_func" and isinstance(keyword.value, ast.Lambda):
                    body_calls = [n for n in ast.walk(keyword.value.body) if isinstance(n, ast.Call)]
                    if any(isinstance(c.func, ast.Name) and c.func.id == "t" for c in body_calls):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
