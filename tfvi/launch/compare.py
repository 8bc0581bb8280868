"""`tfvi-compare` (= `python -m tfvi.launch.compare`): one table across workdirs.

    tfvi-compare --path=runs/vae-s0 --path=runs/vae-s1 --path=runs/mim-s0 \
      --split=test --csv=runs/compare.csv

Reads each finished workdir's `flags.json` (the flags that define the run) and
`metrics.json`; runs whose flags differ only in `--seed` form one group, reported as
mean ± std (n) with the sample standard deviation (ddof = 1; a single run shows its
value and n = 1). A group is labelled by the flags that differ between groups.
Columns are the figures any run has among `COLUMNS` (NLL, ELBO, the VIB's accuracy
and ECE, and the representation figures MI / k-NN / RMSE that every latent-variable
family reports, so a `--model=vae` and a `--model=mim` run compare on the same
columns). `--csv` is written atomically (temporary file + rename).
"""

import csv
import io
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
PROG = "tfvi-compare"

# metrics.json keys compared (in this order) and their table headers.
COLUMNS = (("nll", "NLL"), ("elbo", "ELBO"), ("accuracy", "accuracy"), ("ece", "ECE"),
           ("ksg_mutual_information", "MI(KSG)"), ("knn5_accuracy", "5-NN acc"),
           ("reconstruction_rmse", "RMSE"), ("active_units", "active"))

__all__ = ["COLUMNS", "CompareError", "compare", "format_table", "group_runs", "load_run",
           "to_csv"]


class CompareError(ValueError):
    """A bad --path (missing, not a workdir, unfinished): one line."""


def load_run(path):
    """`{"path", "flags", "metrics"}` of a finished workdir, or CompareError."""
    if not os.path.isdir(path):
        raise CompareError(f"--path={path} does not exist (or is not a directory).")
    if not os.path.exists(os.path.join(path, "flags.json")):
        raise CompareError(f"--path={path} is not a tfvi workdir (no flags.json).")
    if not os.path.exists(os.path.join(path, "metrics.json")):
        raise CompareError(f"--path={path} is an unfinished run (no metrics.json yet): "
                           "rerun its tfvi-train command to finish it.")
    try:
        with open(os.path.join(path, "flags.json")) as f:
            run_flags = json.load(f)
        with open(os.path.join(path, "metrics.json")) as f:
            metrics = json.load(f)
    except (OSError, ValueError) as err:
        raise CompareError(f"--path={path}: cannot read flags.json/metrics.json "
                           f"({err}).") from None
    return {"path": path, "flags": run_flags, "metrics": metrics}


def group_runs(runs):
    """Groups runs whose flags differ only in `seed`:
    `[{"label", "flags", "runs"}]` in the order of first appearance. The label names
    the flags that differ between groups (`model=mim objective=mim`)."""
    groups = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run["flags"].items() if k != "seed"},
                         sort_keys=True)
        groups.setdefault(key, {"flags": run["flags"], "runs": []})["runs"].append(run)
    groups = list(groups.values())
    names = sorted({k for g in groups for k in g["flags"] if k != "seed"})
    varying = [k for k in names if len({json.dumps(g["flags"].get(k)) for g in groups}) > 1]
    for g in groups:
        g["label"] = " ".join(f"{k}={_show(g['flags'].get(k))}" for k in varying) or "all"
    return groups


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _stats(values):
    from tfvi.evaluation.over_seeds import mean_and_sd

    return (*mean_and_sd(values), len(values))


def compare(paths, split="test"):
    """`(columns, rows)`: columns `[(key, header)]` present in any run's `split`;
    rows `{"label", "seeds", "paths", key: (mean, std, n) or None}` per group."""
    if not paths:
        raise CompareError("--path is required: one or more tfvi workdirs.")
    runs = [load_run(p) for p in paths]
    for run in runs:
        if split not in run["metrics"]:
            raise CompareError(f"--path={run['path']} has no '{split}' split in "
                               f"metrics.json; accepted --split values there: "
                               f"{', '.join(s for s in ('train', 'validation', 'test') if s in run['metrics'])}.")
    columns = [(k, h) for k, h in COLUMNS
               if any(isinstance(r["metrics"][split].get(k), (int, float)) for r in runs)]
    rows = []
    for group in group_runs(runs):
        row = {"label": group["label"], "paths": [r["path"] for r in group["runs"]],
               "seeds": [r["flags"].get("seed") for r in group["runs"]]}
        for key, _ in columns:
            values = [float(r["metrics"][split][key]) for r in group["runs"]
                      if isinstance(r["metrics"][split].get(key), (int, float))]
            row[key] = _stats(values) if values else None
        rows.append(row)
    return columns, rows


def _cell(stat):
    if stat is None:
        return "-"
    mean, std, n = stat
    return f"{mean:.4g} ± {std:.2g} ({n})" if n > 1 else f"{mean:.4g} (1)"


def format_table(columns, rows):
    """Plain-text table: one row per group, cells `mean ± std (n)`."""
    header = ["run"] + [h for _, h in columns]
    body = [[row["label"]] + [_cell(row[k]) for k, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    fmt = lambda line: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
    return "\n".join([fmt(header)] + [fmt(line) for line in body])


def to_csv(columns, rows):
    """CSV text: run, n, seeds, paths, then `<key>_mean`, `<key>_std` per column."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run", "n", "seeds", "paths"]
                    + [f"{k}_{s}" for k, _ in columns for s in ("mean", "std")])
    for row in rows:
        cells = []
        for key, _ in columns:
            cells += ["", ""] if row[key] is None else [repr(row[key][0]), repr(row[key][1])]
        writer.writerow([row["label"], len(row["paths"]), " ".join(map(str, row["seeds"])),
                         " ".join(row["paths"])] + cells)
    return out.getvalue()


def define_flags():
    if "path" in FLAGS:  # tfvi-eval's --path when both live in one process
        return
    flags.DEFINE_multi_string("path", None, "A finished tfvi workdir (repeat: --path=A "
                              "--path=B ...).")
    flags.DEFINE_string("split", "test", "metrics.json split to compare: train, "
                        "validation, test.")
    flags.DEFINE_string("csv", None, "Also write the table as CSV here (atomically).")


def main(argv):
    if len(argv) > 1:
        print(f"{PROG}: error: unexpected arguments {argv[1:]}; every option is a --flag "
              "(see --help).", file=sys.stderr)
        sys.exit(2)
    try:
        columns, rows = compare(FLAGS.path or [], FLAGS.split)
    except CompareError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_table(columns, rows))
    if FLAGS.csv:
        from tfvi.training.atomic import write_bytes

        write_bytes(FLAGS.csv, to_csv(columns, rows).encode("utf-8"))
        print(f"{PROG}: wrote {FLAGS.csv}")


def run():
    define_flags()
    from tfvi.launch.flags import declare_key_flags

    declare_key_flags(["path", "split", "csv"])
    app.run(main)


if __name__ == "__main__":
    run()
