"""What a launcher run reports: the representation figures every latent-variable
family adds to metrics.json, the final table (the generic bounds plus the family's
own figures) and the closing line (only what this invocation wrote).

    from tfvi.launch import report
    print(report.summary_table(metrics, k=1000, extra=("accuracy", "ece")))
"""

import numpy as np

from tfvi.training.outputs import final_splits

__all__ = ["COLUMNS", "REPRESENTATION_METRICS", "closing_line", "evaluate_representation",
           "layer_active_units", "summary_table"]

# metrics.json key -> (table header, format); other keys print under their own name.
COLUMNS = {
    "loss": ("loss", "{:.3f}"), "elbo": ("elbo", "{:.3f}"),
    "reconstruction": ("recon", "{:.3f}"), "kl": ("kl", "{:.3f}"),
    "nll": ("NLL(IWAE-{k})", "{:.3f}"), "active_units": ("active", "{:d}"),
    "accuracy": ("accuracy", "{:.3f}"), "ece": ("ECE", "{:.3f}"),
    "ksg_mutual_information": ("MI(KSG)", "{:.3f}"),
    "knn5_accuracy": ("5-NN acc", "{:.3f}"),
    "reconstruction_rmse": ("RMSE", "{:.4f}"),
    "active_units_z1": ("active z1", "{:d}"), "active_units_z2": ("active z2", "{:d}"),
}
GENERIC = ("loss", "elbo", "reconstruction", "kl", "nll", "active_units")
# The representation figures (Livne et al., MIM, sections 5.1/5.3) that every
# latent-variable family reports, so different families compare on one table.
REPRESENTATION_METRICS = ("ksg_mutual_information", "knn5_accuracy", "reconstruction_rmse",
                          "active_units_z1", "active_units_z2")


def evaluate_representation(model, prepared, config, reconstruct=True, ksg_points=None):
    """`{split: tfvi.evaluation.representation_metrics(...)}` over the final
    evaluation's splits (`--eval_splits`, the first `--eval_max_examples`; k-NN fitted
    on the train split's posterior means); `reconstruct=False` skips the RMSE (a
    classifier)."""
    from tfvi.evaluation import latent_codes, representation_metrics

    x_tr, _, labels_tr = prepared.eval_splits["train"]
    codes_tr = latent_codes(model, x_tr) if labels_tr is not None else None
    out = {}
    for split, (x, y, labels) in final_splits(prepared, config):
        n = min(len(x), config.eval_max_examples or len(x))
        targets = (x if y is None else y)[:n] if reconstruct else False
        out[split] = representation_metrics(
            model, x[:n], targets=targets,
            labels=None if labels is None else np.asarray(labels)[:n],
            train_codes=codes_tr, train_labels=labels_tr,
            ksg_points=ksg_points or config.ksg_points, seed=config.seed)
        out[split].update(layer_active_units(model, x[:n], config.seed))
    return out


def layer_active_units(model, x, seed=0):
    """`{"active_units_z1": A_1, "active_units_z2": A_2}` for a two-level encoder (one
    with `lower_dim`, `tfvi.evaluation.active_units_per_layer`), else `{}`."""
    if getattr(getattr(model, "encoder", None), "lower_dim", None) is None or len(x) < 2:
        return {}
    from tfvi.evaluation import active_units_per_layer

    return {f"active_units_{layer}": count
            for layer, count in active_units_per_layer(model, x, seed=seed).items()}


def _cell(value, fmt, width):
    if value is None:
        return f"{'-':>{width}}"
    if fmt == "{:d}":
        value = int(value)
    return f"{fmt.format(value):>{width}}"


def summary_table(metrics, k, extra=()):
    """The final table: one row per split, the generic columns (bounds, IWAE-k NLL,
    active units) then `extra` (the family's own metrics.json keys); a column no
    split has is left out, a missing cell prints "-"."""
    splits = [s for s in ("train", "validation", "test") if metrics.get(s)]
    names = [n for n in tuple(GENERIC) + tuple(e for e in extra if e not in GENERIC)
             if any(n in metrics[s] for s in splits)]
    headers = [COLUMNS.get(n, (n, "{:.4f}"))[0].format(k=k) for n in names]
    widths = [max(9, len(h) + 2) for h in headers]
    rows = [f"{'split':<11}" + "".join(f"{h:>{w}}" for h, w in zip(headers, widths))]
    for split in splits:
        cells = [_cell(metrics[split].get(n), COLUMNS.get(n, (n, "{:.4f}"))[1], w)
                 for n, w in zip(names, widths)]
        rows.append(f"{split:<11}" + "".join(cells))
    return "\n".join(rows)


def closing_line(prog, workdir, written, seconds):
    """`"<prog>: wrote <workdir> (metrics.json, ...) in N s"` naming only `written`."""
    return f"{prog}: wrote {workdir} ({', '.join(written)}) in {seconds:.0f} s"
