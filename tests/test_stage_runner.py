"""stage_runner.run: our errors and Ctrl-C end a stage or command with one line and an exit status, no traceback."""

from __future__ import annotations

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
