# Copyright (c) monai-semgan contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Errors a user can read: the last line of a failed bundle command names the file or setting and what is wrong.

``python -m monai.bundle run`` wraps every error in MONAI's ``RuntimeError: Failed to evaluate ConfigExpression`` and
prints a traceback of 100 lines or more, with the message that says what is wrong in the middle. The bundle's configs
call :func:`install_error_report` first thing, which replaces the interpreter's report of an uncaught error by one
line (``error: <message>``) after a hint, unless the ``debug`` setting (``--debug true``) or the environment variable
``MONAI_SEMGAN_DEBUG=1`` asks for the full traceback. The exit status stays 1.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from monai_semgan.data.loading import unwrap_transform_error

__all__ = ["DEBUG_ENV", "install_error_report", "one_line", "root_error"]

DEBUG_ENV = "MONAI_SEMGAN_DEBUG"

# RuntimeErrors that only say where an error passed through (MONAI's config parser, instantiate, transforms)
_WRAPPERS = ("Failed to evaluate", "Failed to instantiate", "applying transform", "Component to instantiate")
# errors whose message is meant for the user as it is; anything else is reported with its type
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def root_error(err: BaseException) -> BaseException:
    """The error that says what is wrong: ``err`` with MONAI's wrapping ``RuntimeError``s peeled off.

    Args:
        err: the error that reached the top.

    Returns:
        the first error of the cause chain that is not a wrapper (``err`` itself when it is none).
    """
    seen = set()
    current = err
    while id(current) not in seen:
        seen.add(id(current))
        current = unwrap_transform_error(current)
        inner = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if inner is None or type(current) is not RuntimeError or not str(current).startswith(_WRAPPERS):
            return current
        current = inner
    return current


def one_line(err: BaseException) -> str:
    """``err``'s root (see :func:`root_error`) as one line: its message, prefixed by its type unless it is an error
    the project raises for bad input (``ValueError``, ``FileNotFoundError``, ...)."""
    root = root_error(err)
    message = " ".join(str(root).split()) or type(root).__name__
    if isinstance(root, KeyError) and root.args:
        message = str(root.args[0])
    if isinstance(root, _USER_ERRORS):
        return message
    return f"{type(root).__name__}: {message}"


def _debug_requested(debug: bool | str) -> bool:
    if isinstance(debug, str):
        debug = debug.strip().lower() in ("1", "true", "yes", "on")
    return bool(debug) or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def install_error_report(debug: bool | str = False) -> Callable:
    """Report an uncaught error of this process in one line (see the module docstring).

    Args:
        debug: print the full traceback instead (``true`` / ``false`` as the config or command line gives it).

    Returns:
        the installed ``sys.excepthook``.
    """
    previous = sys.excepthook
    if _debug_requested(debug):
        return previous

    def report(kind: type[BaseException], err: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, err, tb)
            return
        try:
            line = one_line(err)
        except Exception:  # never hide the error behind a failure of the report itself
            traceback.print_exception(kind, err, tb)
            return
        sys.stderr.write(f"(traceback: run again with --debug true or {DEBUG_ENV}=1)\nerror: {line}\n")
        sys.stderr.flush()

    sys.excepthook = report
    return report
