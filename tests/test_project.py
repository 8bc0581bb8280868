"""Project files tell the truth: README commands, CI script, pinned stack, imports, tests.

- README's first fenced block holds exactly two commands: install + run the main job,
  install + run the tests; `.ci/run` runs the README's test command verbatim.
- setup.py pins the stack (TF 2.21, TFP 0.25 + tf-keras, Keras 3, TFDS, absl-py) and the
  installed versions satisfy the pins; the `test` extra has pytest.
- Every module under tfvi/ imports, and pytest collects at least one test from every
  tests/test_*.py.
"""

import importlib
import importlib.metadata
import pathlib
import re
import runpy
import shlex
import subprocess
import sys

import pytest
import setuptools
from packaging.requirements import Requirement

# Not resolved: under `bazel test` this is the runfiles tree, so the checks below see
# exactly the files BUILD gives the target (tests/test_build_complete.py checks BUILD
# against the source tree).
ROOT = pathlib.Path(__file__).absolute().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S)
    assert block, "README.md must start with a fenced block of commands"
    assert text.index("```") < text.index("\n\n", text.index("# ")) + 3, (
        "the commands block must come right after the README title")
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def setup_kwargs(monkeypatch_module):
    captured = {}
    monkeypatch_module.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch_module.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    assert captured, "setup.py did not call setuptools.setup"
    return captured


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_readme_first_lines_are_the_run_and_test_commands():
    commands = readme_commands()
    assert len(commands) == 2, f"expected exactly 2 commands, got {commands}"
    run, test = commands
    assert run.startswith("pip install -e . && "), run
    assert test.startswith('pip install -e ".[test]" && python -m pytest'), test
    assert test.rstrip().endswith(" tests"), test


def test_readme_run_command_names_an_existing_entry_point(setup_kwargs):
    run = readme_commands()[0].split("&&", 1)[1].split()
    if run[:2] == ["python", "-m"]:
        module = run[2]
        assert (ROOT / pathlib.Path(*module.split("."))).with_suffix(".py").is_file() or (
            ROOT / pathlib.Path(*module.split(".")) / "__main__.py").is_file(), module
    else:
        scripts = [s.split("=")[0].strip()
                   for s in setup_kwargs.get("entry_points", {}).get("console_scripts", [])]
        assert run[0] in scripts, f"{run[0]} is not a console script in setup.py: {scripts}"


def test_ci_runs_the_readme_test_command_and_fails_on_errors():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = readme_commands()[1]
    assert test_command in ci.splitlines(), (
        f".ci/run must contain the README test command verbatim:\n{test_command}")
    assert re.search(r"^set -[a-z]*e[a-z]*o pipefail|^set -euo pipefail", ci, re.M), (
        ".ci/run must exit non-zero on any failing command (set -euo pipefail)")
    assert re.search(r"^[^#\n]*\bbazel\b[^\n]*\btest\b[^\n]*//", ci, re.M), (
        ".ci/run must run a real `bazel test` target")


STACK = {
    # distribution: (versions that must satisfy the pin, versions that must not)
    "tensorflow": (["2.21.0"], ["2.20.0", "2.22.0"]),
    "tensorflow-probability": (["0.25.0"], ["0.24.0", "0.26.0"]),
    "tf-keras": ([], []),
    "keras": (["3.15.1"], ["2.15.0", "4.0.0"]),
    "tensorflow-datasets": ([], []),
    "absl-py": ([], []),
}


@pytest.mark.parametrize("name", sorted(STACK))
def test_setup_pins_the_stack(setup_kwargs, name):
    requirements = {Requirement(r).name.lower(): Requirement(r)
                    for r in setup_kwargs["install_requires"]}
    assert name in requirements, f"setup.py install_requires lacks {name}"
    spec = requirements[name].specifier
    accepted, rejected = STACK[name]
    for version in accepted:
        assert spec.contains(version), f"{name}{spec} should accept {version}"
    for version in rejected:
        assert not spec.contains(version), f"{name}{spec} should reject {version}"
    installed = importlib.metadata.version(name)
    assert spec.contains(installed, prereleases=True), (
        f"installed {name} {installed} does not satisfy setup.py's {name}{spec}")


def test_setup_has_a_test_extra_with_pytest(setup_kwargs):
    extras = setup_kwargs.get("extras_require", {})
    assert "test" in extras, "setup.py needs extras_require['test']"
    assert "pytest" in {Requirement(r).name for r in extras["test"]}
    command = shlex.split(readme_commands()[1].split("&&", 1)[1])
    if "-n" in command:  # the README's test command uses pytest-xdist
        assert "pytest-xdist" in {Requirement(r).name for r in extras["test"]}


def _modules():
    names = []
    for path in sorted((ROOT / "tfvi").rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_package_has_the_core_modules():
    modules = _modules()
    for name in ("tfvi", "tfvi.bounds", "tfvi.layers", "tfvi.models.vae", "tfvi.evaluation"):
        assert name in modules


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports(module):
    importlib.import_module(module)


def test_every_test_file_is_collected():
    test_files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", *test_files],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"pytest could not collect the tests:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    collected = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    empty = [f for f in test_files if f not in collected]
    assert not empty, f"no test collected from: {empty}"
