"""A `tf.distribute.Strategy` from a `--strategy` flag value, and logical CPU devices.

tfvi adds no cluster code of its own: `MirroredStrategy` (the devices of one machine)
and `MultiWorkerMirroredStrategy` (several processes/machines, configured by the
`TF_CONFIG` environment variable) do the work. Order matters: a strategy (and logical
devices) must be created before any other TensorFlow op in the process.
"""

import tensorflow as tf

from tfvi.distribute.cluster import tf_config
from tfvi.validation import check_choice, check_positive_int

__all__ = ["STRATEGY_NAMES", "configure_logical_cpus", "create_strategy"]

STRATEGY_NAMES = ("default", "mirrored", "multi_worker")


def configure_logical_cpus(num_devices: int) -> list[str]:
    """Splits the first physical CPU into `num_devices` logical devices.

    Must run before any TensorFlow op (TensorFlow refuses to reconfigure devices once
    initialised). Returns the logical device names, e.g. `["/cpu:0", "/cpu:1"]`.
    """
    num_devices = check_positive_int("num_devices", num_devices)
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as err:
        raise RuntimeError(
            "configure_logical_cpus must run before any TensorFlow op in the process "
            f"(TensorFlow says: {err})") from None
    return [f"/cpu:{i}" for i in range(num_devices)]


def create_strategy(name: str = "default", devices: list[str] | None = None,
                    timeout_seconds: float = 60.0) -> tf.distribute.Strategy | None:
    """A `tf.distribute.Strategy` for `--strategy=name`, or None for "default".

    Args:
      name: "default" (one device, no strategy), "mirrored" (all local devices, or
        `devices`), "multi_worker" (MultiWorkerMirroredStrategy from TF_CONFIG, ring
        all-reduce).
      devices: device names for "mirrored" (default: all local GPUs, else the CPU).
      timeout_seconds: for "multi_worker", how long a collective waits for a peer
        before failing with DeadlineExceeded (bounds the hang when a worker dies).
    """
    check_choice("strategy", name, STRATEGY_NAMES)
    if name == "default":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if not tf_config().get("cluster", {}).get("worker"):
        raise ValueError("--strategy=multi_worker needs TF_CONFIG with a "
                         '"cluster": {"worker": ["host:port", ...]} entry and this '
                         'process\'s "task"; see README "Scaling out".')
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING,
        timeout_seconds=float(timeout_seconds))
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
