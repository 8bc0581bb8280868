"""BUILD lists every module of the package and every test file.

Bazel only sees the files BUILD names, so a module missing from the `py_library`
breaks `bazel test`, and a test file missing from `TESTS` is never run by it.
BUILD is Starlark, a Python subset: it is parsed with `ast`, and the string literals of
its `TFVI_SRCS` and `TESTS` lists are compared with the files in the tree.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def build_lists(root):
    """Top-level `NAME = [...]` string lists of `root/BUILD`, by name."""
    tree = ast.parse((root / "BUILD").read_text(encoding="utf-8"), filename="BUILD")
    lists = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.List)):
            name = node.targets[0].id
            for element in node.value.elts:
                assert isinstance(element, ast.Constant) and isinstance(element.value, str), (
                    f"BUILD: {name} must be a list of plain strings (line {element.lineno})")
            lists[name] = [element.value for element in node.value.elts]
    for name in ("TFVI_SRCS", "TESTS"):
        assert name in lists, f"BUILD must define the list {name} = [...]"
    return lists


def files(root, pattern):
    return sorted(p.relative_to(root).as_posix() for p in root.glob(pattern)
                  if "__pycache__" not in p.parts)


def missing_from_build(root):
    """{list name: files in the tree that BUILD's list does not name}."""
    lists = build_lists(root)
    return {
        "TFVI_SRCS": [m for m in files(root, "tfvi/**/*.py") if m not in lists["TFVI_SRCS"]],
        "TESTS": [t for t in files(root, "tests/**/test_*.py") if t not in lists["TESTS"]],
    }


def message(list_name, missing):
    lines = "\n".join(f'    "{path}",' for path in missing)
    return (f"{len(missing)} file(s) missing from BUILD; add these lines to the "
            f"{list_name} list in BUILD (keep it sorted):\n{lines}")


@pytest.fixture(scope="module")
def missing():
    return missing_from_build(ROOT)


def test_every_tfvi_module_is_in_the_py_library(missing):
    assert "tfvi/__init__.py" in build_lists(ROOT)["TFVI_SRCS"]
    assert not missing["TFVI_SRCS"], message("TFVI_SRCS", missing["TFVI_SRCS"])


def test_every_test_file_has_a_py_test(missing):
    assert "tests/test_build_complete.py" in build_lists(ROOT)["TESTS"]
    assert not missing["TESTS"], message("TESTS", missing["TESTS"])


def test_build_names_only_existing_files():
    lists = build_lists(ROOT)
    stale = [p for p in lists["TFVI_SRCS"] + lists["TESTS"] if not (ROOT / p).is_file()]
    assert not stale, "BUILD names files that do not exist (remove them): " + ", ".join(stale)


def test_build_lists_have_no_duplicates():
    for name, values in build_lists(ROOT).items():
        duplicates = sorted({v for v in values if values.count(v) > 1})
        assert not duplicates, f"BUILD: {name} lists these twice: {duplicates}"


def test_a_missing_module_and_test_are_named(tmp_path):
    # The check can fail: a tree with files that its BUILD does not list.
    (tmp_path / "tfvi" / "sub").mkdir(parents=True)
    (tmp_path / "tests").mkdir()
    for path in ("tfvi/__init__.py", "tfvi/sub/new_module.py", "tests/test_new.py",
                 "tests/conftest.py"):
        (tmp_path / path).write_text("")
    (tmp_path / "BUILD").write_text('TFVI_SRCS = ["tfvi/__init__.py"]\nTESTS = []\n')
    assert missing_from_build(tmp_path) == {
        "TFVI_SRCS": ["tfvi/sub/new_module.py"], "TESTS": ["tests/test_new.py"]}
    assert '    "tfvi/sub/new_module.py",' in message("TFVI_SRCS", ["tfvi/sub/new_module.py"])
