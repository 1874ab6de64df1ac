"""The edge where stage scripts and the CLI meet the user: logging set up, our errors shown in one line."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from modaclip.core.errors import ModaclipError


def configure_logging() -> None:
    """Our own loggers (`modaclip.*`) at INFO; libraries only when they warn."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("modaclip").setLevel(logging.INFO)


def run(main: Callable[[], None], name: str) -> None:
    """Run a stage or command; a ModaclipError exits with status 2 and its message, Ctrl-C with 130
    (the shell's code for SIGINT) and one line: neither is a traceback. A reader that goes away
    (`modaclip search ... | head -3`) ends it quietly with 141, as SIGPIPE ends Unix tools."""
    configure_logging()
    try:
        main()
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
    except ModaclipError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
