"""Entry point of every Bazel `py_test` in BUILD: runs pytest on the files given as args.

Test files stay plain pytest modules (no `if __name__ == "__main__"` boilerplate);
BUILD passes each one's path with `$(location ...)`.
"""

import os
import sys

import pytest


def main(argv):
    if not argv:
        raise SystemExit("usage: bazel_pytest_main.py tests/test_x.py [pytest args]")
    # The runfiles tree is read-only: keep pytest's cache out of it, and put its
    # temporary directories under Bazel's per-test TEST_TMPDIR.
    args = ["-q", "-p", "no:cacheprovider", *argv]
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        args.insert(0, f"--basetemp={os.path.join(tmp, 'pytest')}")
    return pytest.main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
