"""Language-conditioned BabyAI agents by BC, offline IQLearn and GAIL on PPO."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="agent_imitation",
    experiments={"babyai_offline": "protege.systems.agent_imitation.experiment", "babyai_gail": "protege.systems.agent_imitation.gail"},
    recipes=Path(__file__).parent / "recipes",
    cli="protege.systems.agent_imitation.cli",
    datasets={"protege-babyai-demos-v1": "protege.worlds.babyai.demos:describe"},
))
