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
# second session: the two missing levels (demos first), third seeds, GAIL on PickupLoc, lambda sweep, 10k rows
D="nice -n 10 .venv/bin/python -m protege data demos --workers 2"
$D --env BabyAI-PickupLoc-v0 --episodes 1000 --out data/babyai/PickupLoc
$D --env BabyAI-PutNextLocal-v0 --episodes 1000 --out data/babyai/PutNextLocal
$R babyai_bc name=bc-PickupLoc-1k-s0 level=BabyAI-PickupLoc-v0 demos=data/babyai/PickupLoc
$R babyai_iqlearn name=iq-PickupLoc-1k-s0 level=BabyAI-PickupLoc-v0 demos=data/babyai/PickupLoc
$R babyai_bc name=bc-PutNextLocal-1k-s0 level=BabyAI-PutNextLocal-v0 demos=data/babyai/PutNextLocal
$R babyai_iqlearn name=iq-PutNextLocal-1k-s0 level=BabyAI-PutNextLocal-v0 demos=data/babyai/PutNextLocal
$R babyai_bc name=bc-GoToRedBall-1k-s2 seed=2
$R babyai_iqlearn name=iq-GoToRedBall-1k-s2 seed=2
$R babyai_gail name=gail-PickupLoc-1k-s0-60it level=BabyAI-PickupLoc-v0 demos=data/babyai/PickupLoc \
   init_from=runs/bc-PickupLoc-1k-s0 iterations=60 disc_steps=10 critic_warmup=10
for s in 1 2; do
  for lv in GoToLocal PickupLoc PutNextLocal; do
    $R babyai_bc name=bc-$lv-1k-s$s seed=$s level=BabyAI-$lv-v0 demos=data/babyai/$lv
    $R babyai_iqlearn name=iq-$lv-1k-s$s seed=$s level=BabyAI-$lv-v0 demos=data/babyai/$lv
  done
done
$R babyai_iqlearn name=iq-GoToRedBall-1k-s0-lam0.01 lam=0.01
$R babyai_iqlearn name=iq-GoToRedBall-1k-s0-lam1 lam=1.0
$R babyai_iqlearn name=iq-GoToLocal-10k-s0 level=BabyAI-GoToLocal-v0 demos=data/babyai/GoToLocal n_demos=10000
$D --env BabyAI-PickupLoc-v0 --episodes 10000 --out data/babyai/PickupLoc10k
$R babyai_bc name=bc-PickupLoc-10k-s0 level=BabyAI-PickupLoc-v0 demos=data/babyai/PickupLoc10k n_demos=10000
$R babyai_iqlearn name=iq-PickupLoc-10k-s0 level=BabyAI-PickupLoc-v0 demos=data/babyai/PickupLoc10k n_demos=10000
$R babyai_iqlearn name=iq-GoToRedBall-1k-s1-lam0.01 lam=0.01 seed=1
$R babyai_iqlearn name=iq-GoToRedBall-1k-s1-lam1 lam=1.0 seed=1
$R babyai_iqlearn name=iq-GoToRedBall-1k-s2-lam0.01 lam=0.01 seed=2
$R babyai_iqlearn name=iq-GoToRedBall-1k-s2-lam1 lam=1.0 seed=2
$R babyai_bc name=bc-PickupLoc-10k-s1 seed=1 level=BabyAI-PickupLoc-v0 demos=data/babyai/PickupLoc10k n_demos=10000
$R babyai_iqlearn name=iq-PickupLoc-10k-s1 seed=1 level=BabyAI-PickupLoc-v0 demos=data/babyai/PickupLoc10k n_demos=10000
$R babyai_bc name=bc-GoToLocal-10k-s1 seed=1 level=BabyAI-GoToLocal-v0 demos=data/babyai/GoToLocal n_demos=10000
$R babyai_iqlearn name=iq-GoToLocal-10k-s1 seed=1 level=BabyAI-GoToLocal-v0 demos=data/babyai/GoToLocal n_demos=10000
for lv in PickupLoc GoToLocal; do  # 10k, seed 2 (PickupLoc's 10k demos live in their own folder)
  dir=data/babyai/$lv; [ $lv = PickupLoc ] && dir=data/babyai/PickupLoc10k
  $R babyai_bc name=bc-$lv-10k-s2 seed=2 level=BabyAI-$lv-v0 demos=$dir n_demos=10000
  $R babyai_iqlearn name=iq-$lv-10k-s2 seed=2 level=BabyAI-$lv-v0 demos=$dir n_demos=10000
done
