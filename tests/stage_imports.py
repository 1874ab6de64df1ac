"""Which project modules each stage script loads on its way to parsing its arguments (`SCRIPT --help`).

`python tests/stage_imports.py stages/a.py stages/b.py ...` prints {script: [module, ...]} as JSON: the
`modaclip` modules in sys.modules once the script has run with `--help`, as a fresh `python SCRIPT --help`
would have loaded them. The third-party libraries the stages use are imported once, here, and each script
runs in a child forked from this process: a fresh process per script imported torch and open_clip again
for each (7 s of CPU, 11 s under coverage). Nothing here imports a project module before the fork, so
what a child reports is only what its script imported.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import sys
import traceback

PRELOADED = ("torch", "torchvision", "open_clip", "numpy", "pandas", "pyarrow.parquet", "PIL.Image", "pydantic")
PROJECT = "modaclip"


def run_with_help(script: str) -> list[str]:
    """In this (forked) process: `script --help`, then the project modules it loaded."""
    sys.argv = [script, "--help"]
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python SCRIPT` sets it
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as stop:
            if stop.code not in (0, None):
                raise
    return loaded_project_modules()


def loaded_project_modules() -> list[str]:
    return sorted(name for name in sys.modules if name == PROJECT or name.startswith(PROJECT + "."))


def project_modules(script: str) -> list[str]:
    """`run_with_help(script)` in a child forked from this process, so each script starts from the same state."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, and never return into the parent's loop
        os.close(read)
        code = 1
        try:
            with os.fdopen(write, "w") as answer:
                json.dump(run_with_help(script), answer)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as answer:
        reported = answer.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{script} --help failed (its error is above)")
    return json.loads(reported)


def main(scripts: list[str]) -> None:
    for name in PRELOADED:
        importlib.import_module(name)
    assert not loaded_project_modules(), "a project module was loaded before the fork"
    print(json.dumps({script: project_modules(script) for script in scripts}))


if __name__ == "__main__":
    main(sys.argv[1:])
