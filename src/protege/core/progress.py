"""The one progress-bar layout every long job uses (training, demo, graph work)."""

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(enabled: bool = True, console=None) -> Progress:
    """Description, bar, done/total, elapsed and remaining time; `enabled=False` draws nothing."""
    kwargs = {"console": console} if console is not None else {}
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False,
                    **kwargs)
