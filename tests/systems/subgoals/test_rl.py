"""RL on the chooser: the KL-regularised PPO loss equals a per-decision Python reference, and a tiny
subgoals_rl run from a subgoals_bc run trains, keeps its low level frozen and evaluates."""

import math
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from protege.core.config import from_dict, to_dict
from protege.core.runs import Run, read_metrics
from protege.losses.kl_ppo import kl_regularised_ppo_loss
from protege.systems.subgoals import experiment, finetune
from protege.systems.subgoals.evaluate import load_agent
from tests.conftest import kill_after_checkpoint, protege_cmd, protege_env


def naive_loss(logits, prior, actions, old, adv, values, returns, mask, clip, beta, cv, ce):
    terms, n = [0.0, 0.0, 0.0, 0.0], 0
    for i in range(len(actions)):
        if not mask[i]:
            continue
        n += 1
        z = [math.exp(x) for x in logits[i]]
        p = [x / sum(z) for x in z]
        zq = [math.exp(x) for x in prior[i]]
        q = [x / sum(zq) for x in zq]
        ratio = p[actions[i]] / math.exp(old[i])
        clipped = min(max(ratio, 1 - clip), 1 + clip)
        terms[0] += -min(ratio * adv[i], clipped * adv[i])
        terms[1] += (values[i] - returns[i]) ** 2
        terms[2] += -sum(pk * math.log(pk) for pk in p)
        terms[3] += sum(pk * math.log(pk / qk) for pk, qk in zip(p, q))
    t = [x / n for x in terms]
    return t[0] + cv * t[1] - ce * t[2] + beta * t[3]


def test_kl_regularised_ppo_loss_matches_a_per_decision_reference():
    g = torch.Generator().manual_seed(0)
    n, k = 9, 5
    logits, prior = torch.randn(n, k, generator=g), torch.randn(n, k, generator=g)
    actions = torch.randint(0, k, (n,), generator=g)
    old = torch.log_softmax(logits + 0.5 * torch.randn(n, k, generator=g), -1).gather(
        -1, actions.unsqueeze(-1)).squeeze(-1)
    adv, values, returns = (torch.randn(n, generator=g) for _ in range(3))
    mask = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1, 1], dtype=torch.bool)
    loss, metrics = kl_regularised_ppo_loss(logits, prior, actions, old, adv, values, returns, mask,
                                            clip=0.2, kl_coef=0.3, vf_coef=0.5, ent_coef=0.01)
    ref = naive_loss(logits.tolist(), prior.tolist(), actions.tolist(), old.tolist(), adv.tolist(),
                     values.tolist(), returns.tolist(), mask.tolist(), 0.2, 0.3, 0.5, 0.01)
    assert abs(float(loss) - ref) < 1e-5
    same, _ = kl_regularised_ppo_loss(logits, logits, actions, old, adv, values, returns, mask)
    assert float(_["ppo/kl_to_prior"]) < 1e-6 and metrics["ppo/kl_to_prior"] > 0


@pytest.mark.parametrize("scoring", ["words", "sequence", "grounded"])
def test_a_tiny_rl_run_moves_only_the_chooser(putnext_phrases, tmp_path, scoring):
    bc = from_dict(experiment.Config, {
        "name": "bc", "data": str(putnext_phrases[1]), "policy": {"dim": 16, "n_film": 1}, "chooser": scoring,
        "eval_episodes": 0, "agreement_episodes": 0,
        "trainer": {"steps": 2, "batch_size": 4, "log_every": 1}}, "test")
    experiment.run(bc, Run(tmp_path / "bc", to_dict(bc)))
    rl = from_dict(finetune.Config, {
        "name": "rl", "init_from": str(tmp_path / "bc"), "iterations": 1, "episodes": 2, "epochs": 2,
        "lr": 0.01, "checkpoint_every": 1, "eval_episodes": 0, "agreement_episodes": 0,
        "replan": "done_other"}, "test")
    summary = finetune.run(rl, Run(tmp_path / "rl", to_dict(rl)))
    assert summary["iterations"] == 1 and summary["train/last_kl_to_prior"] >= 0
    row = next(r for r in read_metrics(tmp_path / "rl") if "charts/episodic_length" in r)
    assert summary["env_steps"] == round(2 * row["charts/episodic_length"]) > 0
    before = load_file(str(sorted((tmp_path / "bc" / "checkpoints").glob("step-*"))[-1] / "model.safetensors"))
    after = load_file(str(tmp_path / "rl" / "checkpoints" / "step-00000001" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("chooser."))
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("chooser."))
    agent, _ = load_agent(tmp_path / "rl")
    assert len(agent.phrases) == len(load_agent(tmp_path / "bc")[0].phrases)
    assert agent.replan == "done_other" and load_agent(tmp_path / "bc")[0].replan == "done"  # each run's rule
    assert agent.chooser.scoring == scoring


@pytest.mark.slow
def test_rl_sigkill_then_resume_equals_uninterrupted_run(putnext_phrases, tmp_path):
    bc = from_dict(experiment.Config, {
        "name": "bc", "data": str(putnext_phrases[1]), "policy": {"dim": 16, "n_film": 1},
        "eval_episodes": 0, "agreement_episodes": 0,
        "trainer": {"steps": 2, "batch_size": 4, "log_every": 1}}, "test")
    experiment.run(bc, Run(tmp_path / "bc", to_dict(bc)))
    args = [f"init_from={tmp_path / 'bc'}", "iterations=6", "episodes=2", "epochs=1", "lr=0.01",
            "checkpoint_every=1", "eval_episodes=0", "agreement_episodes=0", "transfer_levels=[]"]

    def finish(*extra):
        proc = subprocess.run(protege_cmd("run", "subgoals_rl", *args, *extra), cwd=tmp_path,
                              env=protege_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr

    finish("name=straight")
    kill_after_checkpoint(protege_cmd("run", "subgoals_rl", *args, "name=killed"),
                          tmp_path / "runs" / "killed", tmp_path, "step-00000002")
    finish("name=killed", "--resume")
    a = load_file(str(tmp_path / "runs/straight/checkpoints/step-00000006/model.safetensors"))
    b = load_file(str(tmp_path / "runs/killed/checkpoints/step-00000006/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_metrics(tmp_path / "runs/straight", False) == read_metrics(tmp_path / "runs/killed", False)


def test_done_other_choices_avoid_the_reached_phrase_and_the_update_sees_the_same_distribution():
    """Under replan "done_other" a sampled choice is never the phrase just reached, and PPO's update
    scores it under the distribution it was drawn from: on the first epoch the ratio is 1 (no
    clipping) and the barred phrase has probability 0, so the KL to an identical prior is 0."""
    from protege.nn.babyai_policy import PolicyConfig
    from protege.nn.subgoal_agent import HierarchicalAgent
    from protege.systems.subgoals.evaluate import play
    torch.manual_seed(0)
    agent = HierarchicalAgent(["go to the red ball", "pick up the red ball", "open the door"],
                              PolicyConfig(16, 1), max_segment_steps=50, replan="done_other")
    agent.done.head[-1].bias.data.fill_(1e4)  # every step after the first is a reached subgoal
    played = play(agent, "BabyAI-PutNextLocal-v0", [0, 1], n_envs=2, greedy=False,
                  generator=torch.Generator().manual_seed(0), record=True)
    pairs = [(c, b) for p in played for c, b in zip(p["choices"], p["barred"])]
    assert sum(b >= 0 for _, b in pairs) > 10 and all(c != b for c, b in pairs)
    batch = finetune.decision_batch(played, 0.99)
    with torch.no_grad():
        logits, _ = finetune.decision_logits(agent.chooser, batch)
        raw, _, _ = agent.chooser(batch["images"], batch["directions"], batch["missions"], mask=batch["steps"])
    for b, t in batch["mask"].nonzero().tolist():
        c, barred = int(batch["choices"][b, t]), int(batch["barred"][b, t])
        allowed = [k for k in range(3) if k != barred]
        naive = float(raw[b, t, c]) - math.log(sum(math.exp(float(raw[b, t, k])) for k in allowed))
        assert float(torch.log_softmax(logits[b, t], -1)[c]) == pytest.approx(naive, abs=1e-5)
    prior = HierarchicalAgent(agent.phrases, PolicyConfig(16, 1)).chooser
    prior.load_state_dict(agent.chooser.state_dict())
    cfg = from_dict(finetune.Config, {"name": "t", "init_from": "x", "epochs": 1, "replan": "done_other"}, "test")
    optimizer = torch.optim.SGD(agent.chooser.parameters(), lr=0.0)
    metrics = finetune.update(agent, prior, optimizer, batch, cfg)
    assert metrics["ppo/clip_fraction"] == 0 and abs(metrics["ppo/kl_to_prior"]) < 1e-6
    assert all(math.isfinite(v) for v in metrics.values())
