"""`TrainTiming` records the fit's process CPU time next to its wall time: the
steady-state cost of `tfvi-train` epochs is read from these per-epoch records
(`benchmarks/vs_pythae.py`). Truths: CPU time spent between epochs (a busy loop in
this process) shows up in the record; sleeping does not add CPU time."""

import time


def _busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_seconds_count_work_and_not_sleep():
    from tfvi.training import TrainTiming

    state = {}
    timing = TrainTiming(state)
    timing.on_train_begin()
    _busy(0.05)
    timing.on_epoch_end(0)
    first = state["fit_cpu_seconds"]
    assert 0.05 <= first < 5.0
    time.sleep(0.1)
    timing.on_epoch_end(1)
    slept = state["fit_cpu_seconds"] - first
    assert slept < 0.05 and state["train_seconds"] - 0.1 >= 0.0
    _busy(0.05)
    timing.on_epoch_end(2)
    assert state["fit_cpu_seconds"] - first - slept >= 0.05
    # Per epoch: the busy epochs cost CPU, the sleeping one wall time only; the
    # epochs add up to the fit's totals.
    walls, cpus = state["fit_epoch_seconds"], state["fit_epoch_cpu_seconds"]
    assert len(walls) == len(cpus) == 3
    assert cpus[0] >= 0.05 and cpus[1] < 0.05 <= 0.1 <= walls[1] and cpus[2] >= 0.05
    assert abs(sum(cpus) - state["fit_cpu_seconds"]) < 1e-9
    assert abs(sum(walls) - state["train_seconds"]) < 1e-3


def test_cpu_key_none_writes_only_the_wall_time():
    from tfvi.training import TrainTiming

    state = {}
    timing = TrainTiming(state, cpu_key=None)
    timing.on_train_begin()
    timing.on_epoch_end(0)
    assert set(state) == {"train_seconds"}
