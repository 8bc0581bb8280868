"""The end every benchmark shares: a wall/CPU/load line and the JSON report on disk."""

import json
import os

__all__ = ["finish"]


def finish(report, path, load_before=None):
    """Prints `wall W s, cpu C s, load average A -> B` (when `report` holds `wall_s` and
    `cpu_s`) and writes `report` to `path` as JSON via a temporary file and a rename, so
    an interrupted benchmark never leaves a half-written result."""
    if load_before is not None and "wall_s" in report:
        print(f"wall {report['wall_s']:.0f} s, cpu {report['cpu_s']:.0f} s, load average "
              f"{load_before[0]:.1f} -> {report['load_avg_after'][0]:.1f}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)
