"""`protege subgoals show`: the subgoals of one episode, as lines of text.

From a subgoal dataset: the bot's phrases (canonical and the stored paraphrase) with the step each
starts and its actions. From a subgoals run: the agent plays held-out seed 10^9 + episode and the
phrases its chooser said are printed the same way, with the outcome.
"""

from pathlib import Path

from protege.core.errors import UserError
from protege.worlds.babyai.levels import EVAL_SEED_START

ACTION_NAMES = ("left", "right", "forward", "pickup", "drop", "toggle", "done")


def _segment_lines(starts: list[tuple[int, str]], actions: list[int], extra=None) -> list[str]:
    lines = []
    for k, (step, phrase) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(actions)
        said = f"{phrase!r}" + (f" (said as {extra[k]!r})" if extra and extra[k] != phrase else "")
        acts = " ".join(ACTION_NAMES[a] for a in actions[step:end])
        lines.append(f"  step {step:>3}  {said:<60} {acts}")
    return lines


def show_episode(source: Path, episode: int, level: str | None = None) -> list[str]:
    source = Path(source)
    if (source / "agent.json").exists() or (source / "checkpoints").exists():
        return _from_run(source, episode, level)
    from protege.worlds.babyai.subgoals import load_subgoal_data
    data = load_subgoal_data(source)
    if not 0 <= episode < len(data):
        raise UserError(f"--episode {episode}: the dataset {source} holds episodes 0..{len(data) - 1}")
    s, n = int(data.starts[episode]), int(data.lengths[episode])
    bounds = [i for i in range(n) if data.boundary[s + i]]
    starts = [(i, str(data.phrases[s + i])) for i in bounds]
    extra = [str(data.paraphrases[s + i]) for i in bounds]
    head = (f"{data.level} seed {int(data.seeds[episode])}: {str(data.missions[episode])!r} "
            f"(bot, {n} steps, {len(starts)} subgoals)")
    return [head] + _segment_lines(starts, data.actions[s:s + n].tolist(), extra)


def _from_run(run: Path, episode: int, level: str | None) -> list[str]:
    from protege.systems.subgoals.evaluate import load_agent, play
    if episode < 0:
        raise UserError(f"--episode must be >= 0, got {episode}")
    agent, config = load_agent(run)
    level = level or config["level"]
    seed = EVAL_SEED_START + episode
    p = play(agent, level, [seed])[0]
    head = (f"{level} seed {seed}: {p['mission']!r} (agent {run.name}, {p['length']} steps, "
            f"{'success' if p['success'] else 'failure'}, {len(p['subgoals'])} subgoals)")
    return [head] + _segment_lines(p["subgoals"], p["actions"])
