"""Project files tell the truth: README commands, CI script, pinned stack, imports, tests.

- README's first fenced block holds exactly two commands: install + run the main job,
  install + run the tests; `.ci/run` runs the README's test command verbatim.
- setup.py pins the stack (TF 2.21, TFP 0.25 + tf-keras, Keras 3, TFDS, absl-py) and the
  installed versions satisfy the pins; the `test` extra has pytest.
- Every module under tfvi/ imports, and pytest collects at least one test from every
  tests/test_*.py.
- The version is written once (tfvi/version.py): setup.py, `tfvi.__version__`, CITATION.cff
  and the CHANGELOG agree; LICENSE is the Apache-2.0 text; CITATION.cff is CFF 1.2.0 and
  references the four papers of PAPERS.md; `tfvi/py.typed` ships as package data.
"""

import importlib
import importlib.metadata
import os
import pathlib
import re
import runpy
import shlex
import subprocess
import sys

import pytest
import setuptools
import yaml
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
    # TF 2.21 no longer installs it; keras.callbacks.TensorBoard needs it.
    "tensorboard": (["2.21.0"], ["2.20.0", "2.22.0"]),
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


def test_the_version_is_written_once_and_agrees_everywhere(setup_kwargs):
    import tfvi
    from tfvi import version

    assert setup_kwargs["version"] == version.__version__ == tfvi.__version__
    assert not re.search(r"__version__ = ", (ROOT / "tfvi" / "__init__.py").read_text()), (
        "tfvi/__init__.py must import the version from tfvi/version.py, not write it")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(citation["version"]) == version.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## .*\b{re.escape(version.__version__)}\b", changelog, re.M), (
        f"CHANGELOG.md has no section for {version.__version__}")


def test_setup_metadata_is_complete(setup_kwargs):
    for key in ("author", "license", "classifiers", "keywords", "python_requires"):
        assert setup_kwargs.get(key), f"setup.py lacks {key}"
    assert setup_kwargs["license"] == "Apache-2.0"
    assert "License :: OSI Approved :: Apache Software License" in setup_kwargs["classifiers"]
    assert "py.typed" in setup_kwargs["package_data"]["tfvi"]
    assert (ROOT / "tfvi" / "py.typed").is_file()
    # No exact pins: compatible releases that an existing environment can satisfy.
    assert not [r for r in setup_kwargs["install_requires"] if "==" in r]
    # The interpreter the suite runs on is allowed (only tested versions are claimed).
    from packaging.specifiers import SpecifierSet
    assert SpecifierSet(setup_kwargs["python_requires"]).contains(
        f"{sys.version_info.major}.{sys.version_info.minor}")


def test_license_is_the_apache_2_text():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text
    # All nine sections of the terms.
    for number, title in enumerate(["Definitions", "Grant of Copyright License",
                                    "Grant of Patent License", "Redistribution",
                                    "Submission of Contributions", "Trademarks",
                                    "Disclaimer of Warranty", "Limitation of Liability",
                                    "Accepting Warranty or Additional Liability"], start=1):
        assert f"{number}. {title}." in text, title


PAPER_TITLES = (
    "Automatic Differentiation Variational Inference with Mixtures",
    "Improving Importance Weighted Auto-Encoders with Annealed Importance Sampling",
    "MIM: Mutual Information Machine",
    "On the Necessity and Effectiveness of Learning the Prior of Variational Auto-Encoder",
)


def test_citation_cff_is_valid_and_references_the_four_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff.get(key), f"CITATION.cff lacks the required key {key}"
    assert cff["license"] == "Apache-2.0"
    people_keys = {"family-names", "given-names", "name"}
    for ref in [cff] + cff["references"]:
        assert ref["authors"], ref.get("title")
        for author in ref["authors"]:
            assert set(author) & people_keys, f"{ref['title']}: author {author} has no name"
    assert [ref["title"] for ref in cff["references"]] == list(PAPER_TITLES)
    for ref in cff["references"]:
        assert ref["type"] in {"generic", "article", "conference-paper"}


def test_papers_md_names_each_paper_and_its_modules():
    papers = (ROOT / "PAPERS.md").read_text(encoding="utf-8")
    for title in PAPER_TITLES:
        assert title in papers, title
    for path in re.findall(r"`((?:tfvi|benchmarks|experiments)/[\w/]+\.py)`", papers):
        assert (ROOT / path).is_file(), f"PAPERS.md names a missing file: {path}"
    assert not re.search(r"seed 00\d", papers, re.I), "name papers, not seed files"


def test_paper_reproductions_live_outside_the_package_and_run_as_scripts():
    """experiments/ holds the reproductions (not installed); `python experiments/X.py`
    finds its sibling helpers and tfvi from any working directory."""
    assert not list((ROOT / "tfvi" / "experiments").glob("*.py"))
    scripts = sorted(p.name for p in (ROOT / "experiments").glob("*.py"))
    assert {"mim_gmm.py", "mim_digits.py", "mixtures_reproduction.py"} <= set(scripts)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(ROOT / "experiments" / "mim_digits.py"),
                             "--help"], cwd="/", env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--seeds" in result.stdout
