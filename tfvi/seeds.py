"""Stateless seeds: one way to turn what a user passes into the `[2]` int32 seed the
`tf.random.stateless_*` ops take, and to fold in a replica or a step.

A seed is `None` (fresh entropy), a Python/NumPy int `s` (-> `[s, 0]`) or a `[2]`
integer tensor (used as is).
"""

import numpy as np
import tensorflow as tf

__all__ = ["as_seed", "replica_seed"]


def as_seed(seed):
    """`None`, an int or a `[2]` tensor -> a `[2]` int32 stateless seed."""
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(seed, (int, np.integer)):
        return tf.constant([int(seed), 0], tf.int32)
    return tf.cast(seed, tf.int32)


def replica_seed(seed):
    """Folds the replica id into a stateless seed so replicas draw different noise."""
    ctx = tf.distribute.get_replica_context()
    replica_id = ctx.replica_id_in_sync_group if ctx is not None else 0
    return tf.random.experimental.stateless_fold_in(
        tf.cast(seed, tf.int32), tf.cast(replica_id, tf.int32))
