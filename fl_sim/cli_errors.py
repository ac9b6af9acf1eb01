"""The error contract of every command line of the project (``fl_sim``, ``boundcheck``,
``experiments``).

Bad input prints **one line** to stderr, ``error: <field or file>: <what and what to
do>``, and exits 2; a failure during a run (for example a diverging loss) prints one
line and exits 1; an interrupt (Ctrl-C, SIGINT) prints one line and exits 130. The
traceback is printed only with ``--debug`` (accepted anywhere on the command line).
``docs/reliability.md`` lists the decisions behind it.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["BAD_INPUT", "EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "OneLineParser",
           "UsageError", "error_line", "one_line_parser", "run_cli"]

EXIT_FAILED = 1  # the input was fine, the run failed (divergence, a bug)
EXIT_BAD_INPUT = 2  # a field, option or file was wrong (argparse's own code for usage errors)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

# what counts as bad input: our validation raises ValueError/TypeError naming the field;
# files and folders raise OSError (missing, unwritable, a file where a folder should be)
BAD_INPUT = (ValueError, TypeError, OSError)


class UsageError(ValueError):
    """A command-line option that argparse refused (unknown option, unparsable value)."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` instead of printing
    the usage block and exiting; :func:`run_cli` prints them as one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(_argparse_message(message))


def one_line_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make an existing parser and its sub-parsers raise :class:`UsageError` on errors.

    For parsers built elsewhere (e.g. ``boundcheck.cli``); returns ``parser``.
    """

    def error(message: str) -> NoReturn:
        raise UsageError(_argparse_message(message))

    stack = [parser]
    while stack:
        p = stack.pop()
        p.error = error  # type: ignore[method-assign]
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return parser


def _argparse_message(message: str) -> str:
    """argparse's ``argument --x: invalid <lambda> value: 'a'`` as ``--x: invalid value 'a'``."""
    if message.startswith("argument "):
        message = message[len("argument "):]
    for junk in ("invalid <lambda> value: ", "invalid loads value: "):
        message = message.replace(junk, "invalid value ")
    return message + " (see --help)"


def error_line(exc: BaseException) -> str:
    """The one line printed for ``exc``: ``error: <field or file>: <what>``.

    Our messages already start with the field or file; an ``OSError`` from the
    operating system is given its file name; anything else keeps its type name.
    """
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted" + (f": {_flat(exc)}" if str(exc) else "")
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"error: {exc.filename}: {exc.strerror}"
    text = _flat(exc)
    if not isinstance(exc, BAD_INPUT + (ArithmeticError,)) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"error: {text}"


def _flat(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split())


def run_cli(main: Callable[[list[str]], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)`` under the error contract; returns the exit code.

    Parameters
    ----------
    main : callable
        The command's body, taking the arguments (without ``--debug``) and returning
        an exit code; it raises on errors.
    argv : sequence of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        ``main``'s code, 2 for bad input, 1 for a failed run, 130 on an interrupt.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        return main(args)
    except KeyboardInterrupt as exc:
        code = EXIT_INTERRUPTED
        failure: BaseException = exc
    except BAD_INPUT as exc:
        code, failure = EXIT_BAD_INPUT, exc
    except Exception as exc:  # noqa: BLE001 - the contract: every failure is one line
        code, failure = EXIT_FAILED, exc
    if debug:
        traceback.print_exception(failure)
    line = error_line(failure)
    if code == EXIT_FAILED and not debug:
        line += " (rerun with --debug for the traceback)"
    print(line, file=sys.stderr)
    return code
