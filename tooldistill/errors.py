"""The error hierarchy. Messages are written for users: what happened, with numbers, and what to do next.

The CLI turns a :class:`ToolDistillError` into one red line on stderr and its ``exit_code``; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class ToolDistillError(Exception):
    """An error the user can act on (exit code 1)."""

    exit_code = 1


class ConfigError(ToolDistillError):
    """A workspace, config file or environment variable is wrong."""


class InputError(ToolDistillError):
    """Bad input data (exit code 2): names the file, line and field where they are known."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = ""
        if path is not None:
            where = str(path) + (f":{line}" if line is not None else "")
        if field:
            where = f"{where} field {field!r}" if where else f"field {field!r}"
        super().__init__(f"{where}: {message}" if where else message)


class CatalogError(InputError):
    """A tool catalogue is invalid (duplicate names, bad schema, reserved name)."""


class LabelError(InputError):
    """A label does not fit the catalogue (unknown tool, args failing the schema)."""


class DatabaseError(ToolDistillError):
    """The database cannot be opened or is from a newer version."""


class NeedsKeyError(ToolDistillError):
    """No API key is configured for the teacher."""


class NeedsExtraError(ToolDistillError):
    """An optional dependency is missing; the message names the pip command."""


class QuotaExhausted(ToolDistillError):
    """Nothing more can be done until a quota resets (exit code 75, EX_TEMPFAIL)."""

    exit_code = 75


class Interrupted(ToolDistillError):
    """Stopped by Ctrl-C after a clean shutdown (exit code 130)."""

    exit_code = 130


def require_extra(module: str, extra: str):
    """Import ``module`` or raise :class:`NeedsExtraError` naming the pip command that installs ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise NeedsExtraError(
            f"{module} is not installed ({exc}); install it with: pip install 'tooldistill[{extra}]'"
        ) from exc
