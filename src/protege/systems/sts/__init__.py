"""The standardised test suite (arXiv:2205.13274): scenarios replayed from recorded episodes,
continuations by each agent, judges (verifier, people, a learned detector), rankings with intervals."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="sts",
    recipes=Path(__file__).parent / "recipes",
    experiments={"sts_detector": "protege.systems.sts.detector"},
    cli="protege.systems.sts.cli",
    datasets={"protege.sts.judged-episodes": "protege.systems.sts.detector_data:describe",
              "protege.sts.scenarios": "protege.systems.sts.formats:describe_scenarios",
              "protege.sts.continuations": "protege.systems.sts.formats:describe_continuations"},
))
