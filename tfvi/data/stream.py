"""The training stream of a prepared data set: rows pass after pass, drawn batch-wise.

Everything random is drawn per batch from stateless seeds, in-graph: a permutation of
the rows per pass (`stateless_shuffle`), the batch's dynamic binarisation, its
same-class partners. A per-example `tf.data` pipeline (shuffle, map, batch) took
80-170 ms per 15-batch digits epoch, four to ten times the training step; this one
takes 1.5 ms (docs/performance.md).
"""

import numpy as np
import tensorflow as tf

from tfvi import input_pipeline
from tfvi.data.transforms import bernoulli_draw

__all__ = ["row_passes", "training_stream"]


def training_stream(raw, labels, batch_size, transform, seed, shuffle=True, repeat=False,
                    binarize=False, partners=None):
    """Training batches of `raw`'s rows, as `transform` makes them.

    The rows are visited pass after pass, each pass a fresh permutation drawn from
    `seed` (or in order with `shuffle=False`). `repeat=True` makes the stream endless
    (infinite cardinality), every batch `batch_size` rows, batches straddling the
    passes (as `shuffle`, `repeat`, `batch` would); else one pass whose last batch
    holds the remainder. Each batch gets three stateless seeds from a
    `tf.data.Dataset.random(seed + 1)` stream: its Bernoulli draw of the rows (with
    `binarize`), its choice of partners and their draw. Iterating the dataset again
    draws new permutations and binarisations; the whole sequence is a function of
    `seed`, so a stream that skips its first k batches yields exactly the batches an
    unskipped one yields after k (how `tfvi-train` resumes).

    Args:
      raw: `[N, D]` float array (pixel probabilities or values).
      labels: `[N]` int array, or None.
      batch_size: rows per batch.
      transform: maps a batch dict (`raw` `[B, D]`, `index` `[B]`, `label` `[B]` when
        labelled, `partner` `[B, D]` with `partners`) to the model's `x` or `(x, y)`.
      seed: the stream's seed.
      shuffle, repeat: see above.
      binarize: draw `raw` (and partners) as Bernoulli(pixel) per batch.
      partners: the number of classes, to add to each row a uniformly drawn training
        row of the same label (`partner`); None: no partners.

    Returns:
      a prefetched `tf.data.Dataset` of `transform`'s outputs.
    """
    n = len(raw)
    if repeat:
        # `rebatch` leaves the cardinality unknown; `repeat` marks it infinite (so `fit`
        # can fuse its batches into blocks) and never restarts it.
        rows = row_passes(n, shuffle, seed).rebatch(batch_size, drop_remainder=True).repeat()
    else:
        rows = row_passes(n, shuffle, seed).take(1).rebatch(batch_size)
    seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
    all_raw = tf.constant(raw)
    all_labels = None if labels is None else tf.constant(labels)
    if partners is not None:
        table, counts = _class_table(labels, partners)

    def batch(idx, batch_seed):
        # Three independent stateless seeds of shape [2]: binarisation, partner
        # choice, partner binarisation.
        draw, choose, draw_partner = tf.unstack(
            tf.random.experimental.stateless_split(batch_seed % (2**31 - 1), 3))
        e = {"raw": tf.gather(all_raw, idx), "index": idx}
        if binarize:
            e["raw"] = bernoulli_draw(e["raw"], draw)
        if all_labels is not None:
            e["label"] = tf.gather(all_labels, idx)
        if partners is not None:
            n_class = tf.gather(counts, e["label"])
            u = tf.random.stateless_uniform(tf.shape(idx), choose)
            j = tf.minimum(tf.cast(u * tf.cast(n_class, u.dtype), tf.int32), n_class - 1)
            partner = tf.gather(all_raw, tf.gather_nd(
                table, tf.stack([tf.cast(e["label"], tf.int32), j], axis=1)))
            e["partner"] = bernoulli_draw(partner, draw_partner) if binarize else partner
        return transform(e)

    return input_pipeline.prefetched(tf.data.Dataset.zip((rows, seeds)).map(batch))


def row_passes(n, shuffle, seed):
    """An endless stream of `[n]` int64 row orders: a fresh permutation per element
    (and per iteration) from `seed`, or `0..n-1` each time with `shuffle=False`."""
    if not shuffle:
        return tf.data.Dataset.from_tensors(tf.range(n, dtype=tf.int64)).repeat()
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).map(
        lambda s: tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=s % (2**31 - 1)))


def _class_table(labels, num_classes):
    """`(table, counts)`: `table[c, :counts[c]]` are the rows of label `c`."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.int32)
    table = np.zeros((num_classes, max(1, counts.max())), np.int64)
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        table[c, :len(idx)] = idx
    return tf.constant(table), tf.constant(counts)
