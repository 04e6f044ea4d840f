"""Helpers for the worker processes protege spawns (bot demonstrations, the Minari writer, evaluation)."""

import signal


def ignore_sigint() -> None:
    """Pool initializer. Ctrl-C reaches the whole process group; a worker leaves it to the parent,
    which stops the pool and reports once, instead of each worker dying mid-task with a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
