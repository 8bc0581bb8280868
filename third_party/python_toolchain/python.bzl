"""Repository rule: a Python toolchain for the interpreter that has the tfvi stack.

The interpreter is `$TFVI_PYTHON` if set, else `python3` on `PATH`. It is resolved to
`sys.executable` (so pyenv/virtualenv shims become the real binary) when Bazel first
loads the workspace, so no machine-specific path is committed.
"""

def _python_stack_impl(repository_ctx):
    python = repository_ctx.os.environ.get("TFVI_PYTHON", "")
    if not python:
        found = repository_ctx.which("python3")
        if found == None:
            fail("tfvi: no python3 on PATH; set TFVI_PYTHON to the interpreter with the stack")
        python = str(found)
    result = repository_ctx.execute([python, "-c", "import sys; print(sys.executable)"])
    if result.return_code != 0:
        fail("tfvi: cannot run %s: %s" % (python, result.stderr))
    interpreter = result.stdout.strip()
    repository_ctx.file("WORKSPACE", "")
    repository_ctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{interpreter}",
    python_version = "PY3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(interpreter = interpreter))

python_stack = repository_rule(
    implementation = _python_stack_impl,
    environ = ["TFVI_PYTHON", "PATH"],
    local = True,
)
