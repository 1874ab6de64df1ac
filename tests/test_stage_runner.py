"""stage_runner.run: our errors, Ctrl-C and a closed pipe end a stage or command with an exit status, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modaclip.core.errors import ModaclipError
from modaclip.core.stage_runner import run


def fail(error: BaseException) -> None:
    raise error


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [(ModaclipError("bad row 3"), 2, "embed: error: bad row 3"), (KeyboardInterrupt(), 130, "embed: interrupted")],
)
def test_an_error_or_ctrl_c_is_one_line_and_an_exit_status(
    error: BaseException, status: int, line: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODACLIP_LOG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run(lambda: fail(error), "embed")
    assert exit_info.value.code == status
    assert capsys.readouterr().err.strip() == line


def test_any_other_exception_keeps_its_traceback() -> None:
    with pytest.raises(ValueError, match="a bug"):
        run(lambda: fail(ValueError("a bug")), "embed")


def read_three_lines_and_close(command: list[str]) -> subprocess.CompletedProcess[str]:
    """What `COMMAND | head -3` does: read three lines, then go away while the command still writes."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [process.stdout.readline() for _ in range(3)]
    process.stdout.close()
    stderr = process.stderr.read()
    return subprocess.CompletedProcess(command, process.wait(), "".join(lines), stderr)


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    code = "from modaclip.core.stage_runner import run; run(lambda: [print(i) for i in range(10**6)], 'modaclip')"
    done = read_three_lines_and_close([sys.executable, "-c", code])
    assert done.stdout == "0\n1\n2\n"
    assert done.stderr == "" and done.returncode == 141


FAIL_WITH_A_CAUSE = """
import logging
from modaclip.core.errors import ModaclipError
from modaclip.core.stage_runner import run

def main():
    logging.getLogger("modaclip.test").debug("looked in the cupboard")
    try:
        open("/nonexistent/params.yaml")
    except FileNotFoundError as err:
        raise ModaclipError("params.yaml: parameter file not found") from err

run(main, "embed", verbose={verbose})
"""


def run_failing_stage(verbose: bool, log: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "MODACLIP_LOG"}
    if log is not None:
        env["MODACLIP_LOG"] = log
    code = FAIL_WITH_A_CAUSE.format(verbose=verbose)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize("log", [None, "", "info", "INFO"])
def test_by_default_an_error_is_one_line_without_its_cause(log: str | None) -> None:
    done = run_failing_stage(verbose=False, log=log)
    assert done.returncode == 2
    assert done.stderr == "embed: error: params.yaml: parameter file not found\n"


@pytest.mark.parametrize(("verbose", "log"), [(True, None), (False, "debug"), (False, "DEBUG")])
def test_verbose_or_modaclip_log_debug_shows_the_chain_and_the_debug_lines(verbose: bool, log: str | None) -> None:
    done = run_failing_stage(verbose=verbose, log=log)
    lines = done.stderr.splitlines()
    assert done.returncode == 2
    assert "modaclip.test: looked in the cupboard" in lines[0]
    assert "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/params.yaml'" in lines
    assert "The above exception was the direct cause of the following exception:" in lines
    assert lines[-1] == "embed: error: params.yaml: parameter file not found"


def test_an_unknown_modaclip_log_is_one_line_naming_it() -> None:
    done = run_failing_stage(verbose=False, log="loud")
    assert done.returncode == 2
    assert done.stderr == "embed: error: MODACLIP_LOG='loud': expected one of ['debug', 'info']\n"


def test_the_cli_verbose_flag_shows_the_cause_and_the_default_does_not(tmp_path: Path) -> None:
    """A missing embeddings folder: one line by default; with --verbose the FileNotFoundError behind it."""
    env = {key: value for key, value in os.environ.items() if key != "MODACLIP_LOG"}
    command = [sys.executable, "-m", "modaclip.cli", "search", "blue shirt", "--embeddings", str(tmp_path / "none")]
    plain = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    verbose = subprocess.run(
        [*command[:3], "--verbose", *command[3:]], capture_output=True, text=True, env=env, check=False
    )
    assert plain.returncode == verbose.returncode == 2
    notice, error = plain.stderr.splitlines()  # `--model auto` says which model it chose, then the one error line
    assert "--model auto: " in notice and error.startswith("modaclip: error: ")
    assert "FileNotFoundError" not in plain.stderr
    assert "FileNotFoundError" in verbose.stderr and "direct cause" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == error
