"""Entry-point plumbing for the DVC stages and the `alstudy` command: logging and error reporting."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from alstudy.errors import PipelineError


def quiet_native_logs() -> None:
    """Keep TensorFlow's C++ start-up notices (CPU features, oneDNN) out of a stage's log. An entry point
    calls it before anything imports TensorFlow, which reads the setting once; a user's own value wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # JAX says at INFO that it found no TPU library on every start: how it looked, not what happened.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


def run_stage(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int | None:
    """Run a stage's (or a command's) main() and return what it returns; a PipelineError becomes one
    line on stderr and exit code 2."""
    configure_logging()
    try:
        return main(argv)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun `dvc repro` to continue", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader left (`alstudy compare-studies ... | head`): nothing more to say, and no traceback.
        # Python flushes stdout once more at exit; point it at /dev/null so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
