"""IRL fine-tuning of language models: MLE, IQLearn as TD-regularised MLE (arXiv:2409.01369), diversity, reward extraction."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="lm_irl",
    experiments={"lm": "protege.systems.lm_irl.experiment",
                 "prm": "protege.systems.lm_irl.process_reward"},
    recipes=Path(__file__).parent / "recipes",
    cli="protege.systems.lm_irl.cli",
))
