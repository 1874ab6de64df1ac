"""stage_runner.run: our errors, Ctrl-C and a closed pipe end a stage or command with an exit status, no traceback."""

from __future__ import annotations

import subprocess
import sys

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
    error: BaseException, status: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
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
