"""Where a hierarchical agent's chooser disagrees with the bot, by the kind of subgoal: teacher
forced on held-out bot episodes (seeds from 10^9), as `protege eval subgoals`' agreement.

    PYTHONPATH=src .venv/bin/python scripts/subgoals_confusion.py runs/mb_hier_s0 --episodes 60

Per kind ("go to", "pick up", "go next", "put down", "open the", "explore", ...): the bot's steps of
that kind and the chooser's accuracy on them; then the most frequent (bot kind -> chooser kind)
confusions, where "go to -> go to" means the right verb for the wrong object. Last line: JSON.
"""

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from protege.nn.babyai_policy import tokenize
from protege.systems.subgoals.evaluate import bot_phrase_episodes, load_agent


def kind(phrase: str) -> str:
    """The verb part of a phrase: its first two words for the verbs of two words, else the first."""
    words = phrase.split()
    return " ".join(words[:2]) if words[0] in ("go", "pick", "put", "open", "drop") else words[0]


@torch.no_grad()
def confusion(run: Path, level: str | None, episodes: int) -> tuple[Counter, Counter, Counter]:
    agent, config = load_agent(run)
    data = bot_phrase_episodes(level or config["level"], episodes)
    steps, hits, confused = Counter(), Counter(), Counter()
    for e, (s, o, n) in enumerate(zip(data.starts, data.obs_starts, data.lengths)):
        logits, _, _ = agent.chooser(torch.from_numpy(data.images[o:o + n]).unsqueeze(0),
                                     torch.from_numpy(data.directions[o:o + n]).unsqueeze(0),
                                     tokenize([str(data.missions[e])]))
        for said, truth in zip(logits[0].argmax(-1).tolist(), data.phrases[s:s + n]):
            said, truth = agent.phrases[said], str(truth)
            steps[kind(truth)] += 1
            hits[kind(truth)] += said == truth
            if said != truth:
                confused[(kind(truth), kind(said))] += 1
    return steps, hits, confused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--level", default=None)
    parser.add_argument("--episodes", type=int, default=60)
    args = parser.parse_args()
    steps, hits, confused = confusion(args.run, args.level, args.episodes)
    print("| bot's subgoal kind | steps | chooser accuracy |\n|---|---|---|")
    for k, n in steps.most_common():
        print(f"| {k} | {n} | {hits[k] / n:.3f} |")
    print("\n| bot kind -> chooser kind | steps |\n|---|---|")
    for (a, b), n in confused.most_common(8):
        print(f"| {a} -> {b} | {n} |")
    print(json.dumps({"steps": dict(steps), "accuracy": {k: hits[k] / n for k, n in steps.items()},
                      "confusions": {f"{a} -> {b}": n for (a, b), n in confused.most_common()}}))


if __name__ == "__main__":
    main()
