"""The docs run: every Python snippet and every README launcher line, so they cannot rot.

Mechanism
---------
Python blocks. For README.md and each docs/*.md (one test per file), the file's fenced
```python blocks run in order in one fresh namespace (`exec`, the blocks of a file share
it, files share nothing), in a fresh temporary working directory, so files a snippet
writes (`digits.keras`, `export/`) go there. Before it runs, each block is shortened by
the regular expressions of SHORTEN, in order:

    epochs=N                      -> epochs=1         (every fit / train_with_prior)
    num_samples=NNN...            -> num_samples=20   (IWAE, predictive, diagnostics)
    num_temperatures=NNN...       -> num_temperatures=10  (AIS)
    preset="quick"|"wu" without an explicit num_temperatures in the same call
                                  -> adds num_temperatures=10
    iwae_samples=NNN...           -> iwae_samples=20
    num_examples=NN...            -> num_examples=4   (BDMC)
    max_examples=NNN...           -> max_examples=16
    [:NNN...]                     -> [:16]            (slices of test sets)
    NNNN..., seed=                -> 500, seed=       (sizes of sampled data sets)
    depth=NN...                   -> depth=2          (flow blocks)
    .compile(...), train_with_prior(...), ais_log_marginal(...), ais_log_likelihood(...),
    bdmc(...), ais_gap_table(...), distributed_ais_log_likelihood(...)
                                  -> jit_compile=False added (XLA compilation of a
                                     train step or AIS loop costs seconds, more than
                                     the shortened run it would speed up)

Only these parameters change; everything else (APIs, names, shapes, the data) runs as
written. A snippet that needs more than this to run in seconds is too slow for the docs.

Shell lines (marker `docs_shell`, on by default; `-m "not docs_shell"` skips it). Every
line of README.md's ```bash blocks (backslash continuations joined), split at `&&`, whose
command is `tfvi-train` or `tfvi-eval` runs, in README order, as
`python -m <the entry point's module>` with `/tmp/...` paths moved into a temporary
directory and these flags appended (absl lets a later flag win):

    tfvi-train: --epochs=1 --eval_iwae_samples=10 --eval_max_examples=50 --plots=false
                --verbose=0
    tfvi-eval:  --num_samples=10 --max_examples=50 (--ais_temperatures=5 if it uses AIS)

Each must exit 0; a training line must leave a metrics.json with a finite test NLL.
Identical lines run once; `pip install` and `pytest` segments are not run here
(tests/test_project.py checks them). Budget: the whole file stays near 90 s on an idle
2-core machine.
"""

import json
import math
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).absolute().parents[1]
DOC_FILES = ["README.md"] + sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))

SHORTEN = [
    (r"\bepochs=\d+", "epochs=1"),
    (r"\bnum_samples=[\d_]{3,}", "num_samples=20"),
    (r"\bnum_temperatures=[\d_]{3,}", "num_temperatures=10"),
    (r"""\bpreset=(["'])(quick|wu)\1(?![^)]*num_temperatures)""",
     r"preset=\1\2\1, num_temperatures=10"),
    (r"\biwae_samples=[\d_]{3,}", "iwae_samples=20"),
    (r"\bnum_examples=[\d_]{2,}", "num_examples=4"),
    (r"\bmax_examples=[\d_]{3,}", "max_examples=16"),
    (r"\[:[\d_]{3,}\]", "[:16]"),
    (r"\b\d[\d_]{3,}(, seed=)", r"500\1"),
    (r"\bdepth=\d{2,}", "depth=2"),
]

# The console scripts of setup.py, run as modules (no install needed).
ENTRY_POINTS = {"tfvi-train": "tfvi.launch.train", "tfvi-eval": "tfvi.launch.evaluate"}
SHELL_FLAGS = {
    "tfvi-train": ["--epochs=1", "--eval_iwae_samples=10", "--eval_max_examples=50",
                   "--plots=false", "--verbose=0"],
    "tfvi-eval": ["--num_samples=10", "--max_examples=50"],
}


# Calls that take `jit_compile`; the test adds `jit_compile=False` to each.
NO_XLA_CALLS = (r"\.compile|(?<!\w)(?:train_with_prior|ais_log_marginal|ais_log_likelihood|bdmc"
                r"|ais_gap_table|distributed_ais_log_likelihood)")
_ARGS = r"[^()]*(?:\([^()]*(?:\([^()]*\)[^()]*)*\)[^()]*)*"  # two levels of nested parens


def _no_xla(match):
    args = match.group(2)
    if "jit_compile" in args:
        return match.group(0)
    return f"{match.group(1)}({args}{', ' if args.strip() else ''}jit_compile=False)"


def shorten(code):
    for pattern, replacement in SHORTEN:
        code = re.sub(pattern, replacement, code)
    return re.sub(rf"((?:{NO_XLA_CALLS}))\(({_ARGS})\)", _no_xla, code)


def fenced_blocks(text, languages):
    """[(line number of the opening fence, code)] of the blocks in `languages`."""
    blocks = []
    for match in re.finditer(r"^```(\w*)[ \t]*\n(.*?)^```", text, re.M | re.S):
        if match.group(1) in languages:
            blocks.append((text.count("\n", 0, match.start()) + 1, match.group(2)))
    return blocks


def run_python_blocks(path, workdir):
    """Runs the file's Python blocks, shortened, in one fresh namespace inside `workdir`."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    namespace = {"__name__": "__docs__"}
    old_cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for line, code in fenced_blocks(text, {"python"}):
            compiled = compile(shorten(code), f"{path}, block at line {line}", "exec")
            exec(compiled, namespace)  # noqa: S102 - running the docs is the point
    finally:
        os.chdir(old_cwd)
    return namespace


def shell_commands(text):
    """README launcher commands, in order: [[tfvi-train|tfvi-eval, arg, ...]]."""
    commands = []
    for _, block in fenced_blocks(text, {"bash", "sh", "console"}):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
            for segment in line.split("&&"):
                words = shlex.split(segment)
                if words and words[0] in ENTRY_POINTS and words not in commands:
                    commands.append(words)
    return commands


def shortened_command(words, tmp):
    program, args = words[0], words[1:]
    args = [re.sub(r"=/tmp/", f"={tmp}/", a) for a in args]
    extra = list(SHELL_FLAGS[program])
    if program == "tfvi-eval" and any(a.startswith("--ais_temperatures") for a in args):
        extra.append("--ais_temperatures=5")
    return [sys.executable, "-m", ENTRY_POINTS[program], *args, *extra]


@pytest.fixture(autouse=True)
def _headless_matplotlib():
    import matplotlib

    matplotlib.use("Agg")


@pytest.mark.parametrize("path", DOC_FILES)
def test_python_blocks_run(path, tmp_path):
    run_python_blocks(ROOT / path, tmp_path)


def test_readme_has_runnable_snippets_and_launcher_lines():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(fenced_blocks(text, {"python"})) >= 6, "README lost its Python tour"
    programs = [c[0] for c in shell_commands(text)]
    assert "tfvi-train" in programs and "tfvi-eval" in programs, programs


def test_shortening_changes_only_the_documented_parameters():
    code = ('m.fit(d, epochs=40, warmup_epochs=3)\n'
            'iwae_log_likelihood(m, x_test[:100], num_samples=5000, batch_size=100)\n'
            'ais_log_likelihood(m, x, preset="quick")\n'
            'ais_log_likelihood(m, x, preset="wu", num_temperatures=10_000)\n'
            'sample_gmm(c, 10000, seed=0); RealNVPPrior(16, depth=10, hidden=(128,))\n'
            'm.compile(optimizer=keras.optimizers.Adam(1e-3)); m.compile()\n'
            'bdmc(m, num_examples=32, jit_compile=True)\n'
            'print(format_ais_gap_table(t)); distributed_ais_log_likelihood(m, x, s)\n')
    assert shorten(code) == (
        'm.fit(d, epochs=1, warmup_epochs=3)\n'
        'iwae_log_likelihood(m, x_test[:16], num_samples=20, batch_size=100)\n'
        'ais_log_likelihood(m, x, preset="quick", num_temperatures=10, jit_compile=False)\n'
        'ais_log_likelihood(m, x, preset="wu", num_temperatures=10, jit_compile=False)\n'
        'sample_gmm(c, 500, seed=0); RealNVPPrior(16, depth=2, hidden=(128,))\n'
        'm.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False); '
        'm.compile(jit_compile=False)\n'
        'bdmc(m, num_examples=4, jit_compile=True)\n'
        'print(format_ais_gap_table(t)); distributed_ais_log_likelihood(m, x, s, jit_compile=False)\n')


def test_a_broken_snippet_fails_naming_its_file_and_line(tmp_path):
    doc = tmp_path / "broken.md"
    doc.write_text("# t\n\n```python\nx = 1\n```\n\ntext\n\n```python\ny = x + undefined_name\n```\n")
    with pytest.raises(NameError) as err:
        run_python_blocks(doc, tmp_path)
    assert any(f"{doc}, block at line 9" == entry.path for entry in err.traceback)


def test_entry_points_match_setup_py():
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    for program, module in ENTRY_POINTS.items():
        assert f'"{program}={module}:run"' in setup, program


@pytest.mark.docs_shell
def launcher_chains(commands):
    """The commands grouped by the directory they write or read (`--workdir=` /
    `--path=`), in order: each chain runs alone, so the chains can run in parallel."""
    chains = {}
    for words in commands:
        place = next((a.split("=", 1)[1] for a in words[1:]
                      if a.startswith(("--workdir=", "--path="))), shlex.join(words))
        chains.setdefault(place, []).append(words)
    return chains


README_CHAINS = launcher_chains(
    shell_commands((ROOT / "README.md").read_text(encoding="utf-8")))


@pytest.mark.parametrize("chain", sorted(README_CHAINS))
def test_readme_launcher_lines_exit_0(chain, tmp_path):
    commands = README_CHAINS[chain]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for words in commands:
        command = shortened_command(words, tmp_path)
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, (
            f"README line failed: {shlex.join(words)}\nran: {shlex.join(command)}\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        workdir = next((a.split("=", 1)[1] for a in command if a.startswith("--workdir=")),
                       None)
        if words[0] == "tfvi-train":
            metrics = json.loads(pathlib.Path(workdir, "metrics.json").read_text())
            assert math.isfinite(metrics["test"]["nll"]), metrics["test"]
