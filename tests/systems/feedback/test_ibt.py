"""Rewards from marks: simulated annotators write the studio's export format, malformed marks are
refused with file, line and field, the utility model learns a monotone utility on a toy chain, and
the ibt trainer resumes exactly after SIGKILL."""

import json

import numpy as np
import pytest
import torch

from protege.core.errors import UserError
from protege.data.episodes import Episode
from protege.data.manifest import write_manifest
from protege.nn.utility import UtilityConfig, UtilityModel
from protege.systems.feedback import ibt
from protege.systems.feedback.marks_data import MarkedEpisode, load_marks
from protege.systems.feedback.simulate import Annotator, noisy_marks, true_marks
from tests.core.test_config import assert_one_line_error

LEVEL = "BabyAI-PickupLoc-v0"


def test_true_marks_follow_the_remaining_steps():
    # d falls 5 -> 3 (progress at 2), rises back to 5 (regress at 4), falls to 2 and 0
    assert true_marks([5, 4, 3, 4, 5, 6, 2, 0], stride=2) == [(2, "progress"), (4, "regress"),
                                                             (6, "progress"), (7, "progress")]
    assert true_marks([3, -1, 1, -1], stride=2) == [(2, "progress")]  # unknown frames are skipped


def test_annotator_noise():
    d, rng = [6, 5, 4, 3, 2, 1, 0], np.random.default_rng(0)
    assert noisy_marks(d, True, Annotator(), rng) == [(2, "progress"), (4, "progress"), (6, "progress"), (6, "success")]
    assert noisy_marks(d, True, Annotator(miss=1.0), rng) == [(6, "success")]
    late = noisy_marks(d, False, Annotator(delay=1), rng)
    assert late == [(3, "progress"), (5, "progress"), (6, "failure"), (6, "progress")]  # clipped to T
    flipped = noisy_marks([0, 2, 4], False, Annotator(optimism=1.0), rng)
    assert flipped == [(1, "progress"), (2, "failure"), (2, "progress")]  # both regress marks flipped
    spurious = noisy_marks([1] * 200, False, Annotator(false_rate=0.5), rng)
    assert 60 < len(spurious) - 1 < 140


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A small simulated export of PickupLoc (4 episodes: random agent and noisy bot)."""
    from protege.systems.feedback.simulate import SimulationConfig, simulate
    out = tmp_path_factory.mktemp("marks") / "sim"
    simulate(SimulationConfig(LEVEL, 4, ("random", "bot:0.2"), Annotator(miss=0.1, jitter=1.0)), out, progress=False)
    return out


def test_simulated_marks_are_a_studio_export(simulated):
    from protege.systems.feedback.export import describe, load_export
    episodes = load_export(simulated)
    assert len(episodes) == 4 and describe(simulated)[1]["marks"] > 0
    marked = load_marks(simulated)
    rows = [json.loads(line) for line in (simulated / "marks.jsonl").read_text().splitlines()[1:]]
    assert sum(len(m.marks) for m in marked) == len(rows)
    for m in marked:  # the per-step annotations load_export rebuilt are the marks' sums
        assert m.remaining is not None and len(m.remaining) == len(m.episode) + 1
        progress = sum(1 if k == "progress" else -1 for _, k, _ in m.marks if k in ("progress", "regress"))
        assert sum(m.episode.annotations["progress"]) == progress
        assert [k for _, k, _ in m.marks if k in ("success", "failure")] == ["success" if m.success else "failure"]


def rewrite_mark(src, dst, field, value):
    """A copy of export `src` with `field` of its first mark set to `value` (checksums renewed)."""
    import shutil
    shutil.copytree(src, dst)
    lines = (dst / "marks.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row[field] = value
    lines[1] = json.dumps(row)
    (dst / "marks.jsonl").write_text("\n".join(lines) + "\n")
    meta = json.loads((dst / "protege-manifest.json").read_text())["meta"]
    write_manifest(dst, meta)
    return dst


@pytest.mark.parametrize("field,value,needles", [
    ("step", 10_000, ["line 2", "field 'step'", "frames 0.."]),
    ("kind", "progres", ["line 2", "field 'kind'", "progress, regress, success, failure"]),
    ("episode", "f" * 64, ["line 2", "field 'episode'", "episodes.jsonl"]),
])
def test_malformed_marks_are_refused(simulated, tmp_path, cli, field, value, needles):
    bad = rewrite_mark(simulated, tmp_path / "bad", field, value)
    with pytest.raises(UserError) as e:
        load_marks(bad)
    assert str(bad / "marks.jsonl") in str(e.value)
    assert all(n in str(e.value) for n in needles), str(e.value)
    if field == "step":  # the CLI prints it as one line (once: each call starts a process)
        assert_one_line_error(*cli("run", "ibt_pickuploc", f"marks={bad}", "steps=1"), "marks.jsonl", *needles)


def chain_episode(positions: list[int]) -> MarkedEpisode:
    """A toy chain: the frame shows the position as one cell's object index; marks say progress
    when the position went up and regress when it went down."""
    images = np.zeros((len(positions), 7, 7, 3), np.uint8)
    images[:, 3, 3, 0] = np.asarray(positions) + 1
    ep = Episode(observations={"image": images, "direction": np.zeros(len(positions), np.int64)},
                 actions=np.zeros(len(positions) - 1, np.int64), rewards=np.zeros(len(positions) - 1, np.float32),
                 terminated=False, truncated=True, instruction="go to the red ball")
    marks = tuple((f, "progress" if b > a else "regress", "sim")
                  for f, (a, b) in enumerate(zip(positions, positions[1:]), 1) if b != a)
    return MarkedEpisode(ep, marks, tuple(8 - p for p in positions))


def test_learned_utility_is_monotone_in_progress_on_a_toy_chain():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    walks = [np.clip(np.cumsum(np.r_[rng.integers(0, 3), rng.choice([-1, 1, 1], 11)]), 0, 8).tolist()
             for _ in range(48)]
    train = [chain_episode(w) for w in walks]
    model = UtilityModel(UtilityConfig(dim=16, n_film=1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss, _ = ibt.batch_loss(model, "ibt", [train[i] for i in rng.choice(len(train), 12, replace=False)], rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    up, down = chain_episode(list(range(9))), chain_episode(list(range(8, -1, -1)))
    phi_up, phi_down = ibt.held_out_potentials(model, "ibt", [up, down])
    assert np.all(np.diff(phi_up) > 0), phi_up  # U rises with every step up the chain
    assert np.all(np.diff(phi_down) < 0), phi_down  # and falls with every step down
    assert ibt.evaluate(model, "ibt", [up, down])["eval/mark_accuracy"] == 1.0


IBT = ["steps=30", "batch_size=3", "utility.dim=16", "utility.n_film=1", "checkpoint_every=5", "log_every=5",
       "held_out=0.25"]


@pytest.mark.slow
def test_sigkill_then_resume_of_the_ibt_trainer_equals_an_uninterrupted_run(simulated, tmp_path):
    from protege.core.runs import read_metrics
    from tests.conftest import final_weights
    from tests.systems.agent_imitation.test_resume import straight_killed_and_resumed
    # encoder_from= : the recipe starts from a BC run (runs/bc-PickupLoc-1k-s0) this test's folder has not got
    straight, killed = straight_killed_and_resumed("ibt_pickuploc", [f"marks={simulated}", "encoder_from=", *IBT],
                                                   tmp_path, "step-00000010")
    a, b = final_weights(straight), final_weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time")} for r in rows]  # noqa: E731
    assert strip(read_metrics(straight, wall_clock=False)) == strip(read_metrics(killed, wall_clock=False))
    assert json.loads((straight / "summary.json").read_text()) == json.loads((killed / "summary.json").read_text())


def test_simulate_with_worker_processes_writes_the_same_export(simulated, tmp_path):
    """The bot's ground truth spread over processes changes nothing in the files."""
    from protege.systems.feedback.simulate import SimulationConfig, simulate
    out = tmp_path / "sim2"
    simulate(SimulationConfig(LEVEL, 4, ("random", "bot:0.2"), Annotator(miss=0.1, jitter=1.0), workers=2),
             out, progress=False)
    for name in ("marks.jsonl", "episodes.jsonl", "truth.jsonl", "annotators.jsonl"):
        assert (out / name).read_bytes() == (simulated / name).read_bytes(), name


def test_simulate_refuses_zero_workers_before_any_work(cli, tmp_path):
    assert_one_line_error(*cli("studio", "simulate", "--level", LEVEL, "--workers", "0",
                               "--out", str(tmp_path / "m")), "--workers", "positive")
    assert not (tmp_path / "m").exists()


def test_simulate_refuses_an_unknown_agent_before_any_work(cli, tmp_path):
    assert_one_line_error(*cli("studio", "simulate", "--level", LEVEL, "--agents", "random,robot",
                               "--out", str(tmp_path / "m")), "--agents", "robot", "bot:EPS")
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_sigkill_then_resume_of_ppo_against_a_learned_utility_equals_an_uninterrupted_run(simulated, tmp_path):
    import subprocess

    from protege.core.runs import Run, read_metrics
    from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
    from tests.conftest import final_weights, protege_cmd, protege_env
    from tests.systems.agent_imitation.test_resume import straight_killed_and_resumed
    torch.manual_seed(0)
    start = Run(tmp_path / "runs" / "start", {"level": LEVEL, "policy": {"dim": 16, "n_film": 1}})
    start.save_checkpoint(1, BabyAIPolicy(PolicyConfig(dim=16, n_film=1)).state_dict(), {})
    start.finish({})
    proc = subprocess.run(protege_cmd("run", "ibt_pickuploc", "name=utility", f"marks={simulated}", "encoder_from=",
                                      "freeze_encoder=false", *IBT), cwd=tmp_path, env=protege_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rl = ["init_from=runs/start", "reward_from=runs/utility", "iterations=12", "checkpoint_every=2",
          "critic_warmup=1", "ppo.n_envs=2", "ppo.rollout_steps=8", "ppo.epochs=1", "ppo.minibatches=1",
          "policy.dim=16", "policy.n_film=1", "eval_episodes=0", "seed=3",
          "ppo.kl_coef=0.1"]  # the KL anchor's reference memory must resume too
    straight, killed = straight_killed_and_resumed("ibt_rl_pickuploc", rl, tmp_path, "step-00000004")
    a, b = final_weights(straight), final_weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(straight / "checkpoints" / "step-00000012" / "state.pt", weights_only=True)
    sb = torch.load(killed / "checkpoints" / "step-00000012" / "state.pt", weights_only=True)
    assert all(torch.equal(x, y) for x, y in zip(sa["reward"]["memory"], sb["reward"]["memory"]))
    assert all(torch.equal(x, y) for x, y in zip(sa["pool"]["ref_memory"], sb["pool"]["ref_memory"]))
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time")} for r in rows]  # noqa: E731
    assert strip(read_metrics(straight, wall_clock=False)) == strip(read_metrics(killed, wall_clock=False))


def test_the_bc_row_evaluates_without_a_reward_model(cli, tmp_path):
    """iterations=0 only evaluates the start policy, so the recipe's reward run need not exist."""
    from protege.core.runs import Run
    from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
    torch.manual_seed(0)
    start = Run(tmp_path / "runs" / "start", {"level": LEVEL, "policy": {"dim": 16, "n_film": 1}})
    start.save_checkpoint(1, BabyAIPolicy(PolicyConfig(dim=16, n_film=1)).state_dict(), {})
    start.finish({})
    code, out = cli("run", "ibt_rl_pickuploc", "name=bc_row", "init_from=runs/start", "iterations=0",
                    "policy.dim=16", "policy.n_film=1", "eval_episodes=4")
    assert code == 0, out
    summary = json.loads((tmp_path / "runs" / "bc_row" / "summary.json").read_text())
    assert summary["env_steps"] == 0 and 0 <= summary["eval/success"] <= 1
