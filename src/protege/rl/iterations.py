"""The outer loop every iterative online learner shares (GAIL, RL against learned rewards, ...):
iterate from where the run resumed, log every `log_every`, checkpoint every `checkpoint_every` and
at the end, with a progress bar. What one iteration does, and what a checkpoint holds, is the
learner's business."""

from collections.abc import Callable

from protege.core.progress import progress_bar
from protege.core.runs import Run


def run_iterations(run: Run, label: str, start: int, iterations: int, iteration: Callable[[int], dict],
                   checkpoint: Callable[[], tuple[dict, dict]], log_every: int = 1,
                   checkpoint_every: int = 1) -> None:
    """Iterations start..iterations-1; `iteration(it)` returns its metrics, `checkpoint()` returns
    (weights, training state) for `Run.save_checkpoint`. The last iteration is always logged and
    checkpointed, so a finished run resumes to nothing."""
    with progress_bar() as bar:
        task = bar.add_task(label, total=iterations, completed=start)
        for it in range(start, iterations):
            metrics = iteration(it)
            done = it + 1
            if done % log_every == 0 or done == iterations:
                run.log(done, metrics)
            if done % checkpoint_every == 0 or done == iterations:
                run.save_checkpoint(done, *checkpoint())
            bar.update(task, completed=done)
