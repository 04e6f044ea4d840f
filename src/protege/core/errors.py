"""User-facing errors.

Anything a user can get wrong (a missing file, an unknown name, a malformed row) raises
`UserError`. The CLI prints its message on one line and exits non-zero, without a traceback;
everything else is a bug and keeps its traceback.
"""

import difflib


class UserError(Exception):
    """An error caused by user input; the message must say what, where and the valid choices."""


def unknown_name(kind: str, name: str, valid) -> UserError:
    """A `UserError` for an unknown `name`, listing close matches first, then all valid names."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    shown = ", ".join(valid) if len(valid) <= 30 else ", ".join(valid[:30]) + ", ..."
    return UserError(f"unknown {kind} {name!r}.{hint} Valid: {shown}")
