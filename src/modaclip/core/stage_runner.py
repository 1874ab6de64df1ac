"""The edge where stage scripts and the CLI meet the user: logging set up, our errors shown in one line.

`MODACLIP_LOG=debug` (or `modaclip --verbose`, which sets it for the processes the command starts)
logs our DEBUG lines too and prints an error's whole chain of causes before its one line.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable

from modaclip.core.errors import ModaclipError

LOG_ENV = "MODACLIP_LOG"
_LEVELS = {"info": logging.INFO, "debug": logging.DEBUG}


def log_level() -> int:
    """The level $MODACLIP_LOG names (`info` when unset or empty)."""
    name = os.environ.get(LOG_ENV, "").strip().lower() or "info"
    if name not in _LEVELS:
        raise ModaclipError(f"{LOG_ENV}={os.environ[LOG_ENV]!r}: expected one of {sorted(_LEVELS)}")
    return _LEVELS[name]


def configure_logging(level: int = logging.INFO) -> None:
    """Our own loggers (`modaclip.*`) at `level`; libraries only when they warn."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("modaclip").setLevel(level)


def run(main: Callable[[], None], name: str, verbose: bool = False) -> None:
    """Run a stage or command; a ModaclipError exits with status 2 and its message, Ctrl-C with 130
    (the shell's code for SIGINT) and one line: neither is a traceback. A reader that goes away
    (`modaclip search ... | head -3`) ends it quietly with 141, as SIGPIPE ends Unix tools.

    `verbose` (or $MODACLIP_LOG=debug) adds our DEBUG lines and, before an error's line, its
    traceback with the chain of causes that led to it."""
    if verbose:
        os.environ[LOG_ENV] = "debug"  # the stages and workers this command starts follow it
    level = logging.INFO
    try:
        level = log_level()
        configure_logging(level)
        main()
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
    except ModaclipError as err:
        if level == logging.DEBUG:
            traceback.print_exception(err, file=sys.stderr)
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
