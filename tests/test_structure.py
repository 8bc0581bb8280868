"""The shape of the tfvi package (issue 13's targets), checked over every module:

* no module-level import cycle (the graph of top-level `import`/`from ... import`
  statements, read from the AST, so a cycle is found without importing anything);
* no module imports a private `_name` from another tfvi module;
* no module over 450 lines;
* no block of six or more identical non-blank lines in two modules (a line-hash check:
  copies with other names are found by the `duplicates` tool and fixed by hand).

Each check is a function of a package directory; the `*_catches_*` tests plant one
violation of each kind in a temporary package and assert that the check names it, so a
check that cannot fail would fail here.
"""

import ast
import collections
import hashlib
import pathlib
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tfvi"
MAX_LINES = 450
BLOCK = 6


def _modules(package_dir):
    """`{dotted module name: path}` of every .py file under `package_dir`."""
    base = package_dir.parent
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(base).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _is_package(path):
    return path.name == "__init__.py"


def _absolute(module, path, node):
    """The absolute module name of an `ImportFrom` node (resolves relative imports)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if _is_package(path) else module.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _top_level_imports(tree):
    """Import nodes that run when the module is imported: the module body and the
    bodies of module-level `if`/`try`/`with` blocks, not functions or classes."""
    stack = list(tree.body)
    while stack:
        node = stack.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler)
                                 else [child])


def import_graph(package_dir):
    """`{module: {modules it imports at module level}}`, within the package."""
    modules = _modules(package_dir)
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _absolute(name, path, node)
                # `from pkg import sub` imports the submodule; `from mod import x`, mod.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def import_cycles(package_dir):
    """Strongly connected components of the import graph with more than one module
    (Tarjan), each as a sorted list of module names."""
    graph = import_graph(package_dir)
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def private_imports(package_dir):
    """`["module: from other import _name"]` for every import (at any depth) of a
    single-underscore name from another module of the package."""
    top = package_dir.name
    found = []
    for name, path in _modules(package_dir).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _absolute(name, path, node)
            if source != top and not source.startswith(top + "."):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{name}: from {source} import {alias.name}")
    return found


def long_modules(package_dir, limit=MAX_LINES):
    """`["path: N lines"]` for modules longer than `limit` lines."""
    out = []
    for path in _modules(package_dir).values():
        n = len(path.read_text().splitlines())
        if n > limit:
            out.append(f"{path.relative_to(package_dir.parent).as_posix()}: {n} lines")
    return out


def _code_lines(path):
    """`[(line number, stripped text)]` of the lines that carry code: not blank, not
    comments, not import statements (every module starts with the same few)."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if text and not text.startswith(("#", "import ", "from ")):
            out.append((number, text))
    return out


def repeated_blocks(package_dir, size=BLOCK):
    """`["a.py:L ~ b.py:M"]`: the first line of each run of `size` identical code
    lines that stands in two different modules (one row per pair of modules)."""
    where = collections.defaultdict(list)
    for path in _modules(package_dir).values():
        rel = path.relative_to(package_dir.parent).as_posix()
        lines = _code_lines(path)
        for i in range(len(lines) - size + 1):
            window = "\n".join(text for _, text in lines[i:i + size])
            where[hashlib.sha1(window.encode()).hexdigest()].append((rel, lines[i][0]))
    pairs = {}
    for places in where.values():
        files = sorted({rel for rel, _ in places})
        for a, b in zip(files, files[1:]):
            if (a, b) not in pairs:
                line_a = min(n for rel, n in places if rel == a)
                line_b = min(n for rel, n in places if rel == b)
                pairs[(a, b)] = f"{a}:{line_a} ~ {b}:{line_b}"
    return sorted(pairs.values())


# ------------------------------------------------------------------ the package
def test_no_module_level_import_cycle():
    cycles = import_cycles(PACKAGE)
    assert not cycles, "module-level import cycles:\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_no_private_name_imported_across_modules():
    found = private_imports(PACKAGE)
    assert not found, "private names imported from other modules:\n" + "\n".join(found)


def test_no_module_over_450_lines():
    found = long_modules(PACKAGE)
    assert not found, f"modules over {MAX_LINES} lines:\n" + "\n".join(found)


def test_no_six_line_block_stands_in_two_modules():
    found = repeated_blocks(PACKAGE)
    assert not found, f"blocks of {BLOCK}+ identical lines in two modules:\n" + "\n".join(found)


# ------------------------------------------------------- the checks can fail
def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


BLOCK_TEXT = """
def {name}(x):
    y = x + 1
    z = y * 2
    w = z - 3
    v = w / 4
    return v
"""


@pytest.fixture
def planted(tmp_path):
    """A package `pkg` with one violation of each kind (and legal look-alikes)."""
    pkg = tmp_path / "pkg"
    _write(pkg, {
        "__init__.py": "from pkg import a  # noqa\n",
        # a <-> b at module level: a cycle. c imports a only inside a function: none.
        "a.py": "import os\nfrom pkg import b\n\n_HIDDEN = 1\n",
        "b.py": "from pkg.a import _HIDDEN\n",
        "c.py": "def f():\n    from pkg import a\n    return a\n",
        # the package's __init__ importing its submodule is not a cycle by itself
        "sub/__init__.py": "from pkg.sub.d import value\n",
        "sub/d.py": "from . import e\nvalue = e.value\n",
        "sub/e.py": "from pkg.a import __name__ as _  # dunder: allowed\nvalue = 1\n",
        "long.py": "".join(f"x{i} = {i}\n" for i in range(MAX_LINES + 1)),
        "short.py": "".join(f"y{i} = {i}\n" for i in range(MAX_LINES)),
        "dup1.py": BLOCK_TEXT.format(name="f"),
        "dup2.py": "import os\n\n" + BLOCK_TEXT.format(name="f"),
        # five shared lines are not a block
        "near.py": BLOCK_TEXT.format(name="g").replace("    return v\n", "    return -v\n"),
    })
    return pkg


def test_cycle_check_catches_a_planted_cycle(planted):
    assert import_cycles(planted) == [["pkg.a", "pkg.b"]]
    assert import_graph(planted)["pkg.sub.d"] == {"pkg.sub.e"}  # relative import resolved


def test_private_import_check_catches_a_planted_import(planted):
    assert private_imports(planted) == ["pkg.b: from pkg.a import _HIDDEN"]


def test_length_check_catches_a_planted_long_module(planted):
    assert long_modules(planted) == [f"pkg/long.py: {MAX_LINES + 1} lines"]


def test_block_check_catches_a_planted_copy(planted):
    assert repeated_blocks(planted) == ["pkg/dup1.py:2 ~ pkg/dup2.py:4"]
