#!/bin/sh
# The runs behind docs/results/babyai.md (reduced budget: see that file). One run at a time.
# Usage: sh scripts/babyai_results.sh   (from the repository root, after the demos commands)
set -e
export PYTHONPATH=src
R="nice -n 10 .venv/bin/python -m protege run"
$R babyai_bc name=bc-GoToRedBall-1k-s0
$R babyai_iqlearn name=iq-GoToRedBall-1k-s0
$R babyai_bc name=bc-GoToLocal-1k-s0 level=BabyAI-GoToLocal-v0 demos=data/babyai/GoToLocal
$R babyai_iqlearn name=iq-GoToLocal-1k-s0 level=BabyAI-GoToLocal-v0 demos=data/babyai/GoToLocal
$R babyai_gail name=gail-GoToRedBall-1k-s0
$R babyai_bc name=bc-GoToLocal-10k-s0 level=BabyAI-GoToLocal-v0 demos=data/babyai/GoToLocal n_demos=10000
$R babyai_bc name=bc-GoToRedBall-1k-s1 seed=1
$R babyai_iqlearn name=iq-GoToRedBall-1k-s1 seed=1
$R babyai_gail name=gail-GoToRedBall-1k-s0-60it iterations=60 disc_steps=10 critic_warmup=10
