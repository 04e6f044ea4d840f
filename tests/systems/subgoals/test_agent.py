"""The hierarchical agent: batches cut episodes into subgoal segments and done labels, the agent asks
its chooser only at new subgoals (and each replan rule and the switch cost decide as documented),
only the sequence chooser can pair colours with types, the bot's phrases at the done head's timing
switch only when it fires, a tiny run trains, evaluates and shows an episode, the low level reaches
single subgoals after a short BC run, and a run killed with SIGKILL resumes exactly."""

import contextlib
import io
import subprocess

import numpy as np
import pytest
import torch

from protege.core.config import from_dict, to_dict
from protege.core.runs import Run
from protege.nn.babyai_policy import PolicyConfig, tokenize
from protege.nn.subgoal_agent import BARRED, HierarchicalAgent, SubgoalChooser, bar_phrases
from protege.systems.subgoals import experiment
from protege.systems.subgoals.batches import make_batch, segments
from protege.systems.subgoals.evaluate import babyai_rows, load_agent, play_with_bot_chooser
from protege.systems.subgoals.show import show_episode
from protege.worlds.babyai.demos import DemoConfig, generate_demos
from protege.worlds.babyai.levels import EVAL_SEED_START, episode_success, make_env
from protege.worlds.babyai.subgoals import load_subgoal_data, write_subgoal_data
from tests.conftest import protege_cmd, protege_env, straight_and_resumed

TINY = {"policy": {"dim": 16, "n_film": 1}, "eval_episodes": 0, "agreement_episodes": 0}


def test_batches_cut_episodes_into_segments_and_done_labels(putnext_phrases):
    data = load_subgoal_data(putnext_phrases[1])
    index = {p: i for i, p in enumerate(sorted(set(data.phrases.tolist())))}
    batch = make_batch(data, np.array([2, 0, 5]), index)
    lengths = data.lengths[[2, 0, 5]]
    assert batch.ep_mask.sum() == lengths.sum() == batch.seg_mask.sum()
    assert len(batch.done_labels) == lengths.sum()
    n_segments = sum(len(segments(data.boundary[s:s + n])) for s, n in
                     zip(data.starts[[2, 0, 5]], data.lengths[[2, 0, 5]]))
    assert len(batch.seg_actions) == n_segments
    # a new subgoal starts after every segment but the episode's last, and the episode end counts
    assert batch.done_labels.sum() == n_segments
    s, n = data.starts[2], data.lengths[2]
    assert torch.equal(batch.seg_actions[0, :segments(data.boundary[s:s + n])[0][1]],
                       torch.from_numpy(data.actions[s:s + segments(data.boundary[s:s + n])[0][1]]))
    small = make_batch(data, np.array([2, 0, 5]), index, done_frames=7)
    again = make_batch(data, np.array([2, 0, 5]), index, done_frames=7)
    assert len(small.done_labels) == 7 and torch.equal(small.done_images, again.done_images)


def test_the_agent_consults_its_chooser_only_at_new_subgoals():
    torch.manual_seed(0)
    agent = HierarchicalAgent(["go to the red ball", "pick up the red ball"], PolicyConfig(16, 1),
                              max_segment_steps=3)
    env = make_env("BabyAI-PutNextLocal-v0")
    with contextlib.redirect_stdout(io.StringIO()):
        obs, _ = env.reset(seed=0)
    images = torch.from_numpy(obs["image"]).unsqueeze(0)
    direction, mission = torch.tensor([obs["direction"]]), tokenize([obs["mission"]])
    for fire, expected in ((-1e4, [True, False, False, True, False]),
                           (1e4, [True, True, True, True, True])):
        agent.done.head[-1].bias.data.fill_(fire)  # done never / always fires
        mem, news = agent.memory(1), []
        for _ in range(5):
            _, new, mem = agent.step(images, direction, mission, mem)
            news.append(bool(new[0]))
        assert news == expected  # never: only the first step and the 3-step timeout


def test_replan_rules_decide_when_the_phrase_changes():
    """done_other never re-chooses the phrase just reached; every_step follows the chooser's
    argmax at each step and never asks the done head; done_keep keeps the low level's memory when
    the same phrase is chosen again."""
    torch.manual_seed(0)
    agent = HierarchicalAgent(["go to the red ball", "pick up the red ball", "open the door"],
                              PolicyConfig(16, 1), max_segment_steps=50)
    env = make_env("BabyAI-PutNextLocal-v0")
    with contextlib.redirect_stdout(io.StringIO()):
        obs, _ = env.reset(seed=0)
    images = torch.from_numpy(obs["image"]).unsqueeze(0)
    direction, mission = torch.tensor([obs["direction"]]), tokenize([obs["mission"]])
    agent.done.head[-1].bias.data.fill_(1e4)  # the done head always fires
    favourite = int(agent.chooser(images.unsqueeze(1), direction.unsqueeze(1), mission)[0][0, 0].argmax())
    for rule, changes in (("done", False), ("done_other", True)):
        agent.replan, mem, phrases = rule, agent.memory(1), []
        for _ in range(4):
            _, new, mem = agent.step(images, direction, mission, mem)
            phrases.append(int(mem.phrase[0]))
            assert bool(new[0])
        # the same view every step: "done" re-chooses the favourite, "done_other" alternates
        assert phrases[0] == favourite
        assert all(a != b for a, b in zip(phrases, phrases[1:])) == changes
        assert (mem.barred[0] == phrases[-2]) == changes
    agent.replan, mem = "every_step", agent.memory(1)
    for step in range(3):
        _, new, mem = agent.step(images, direction, mission, mem)
        assert bool(new[0]) == (step == 0) and int(mem.phrase[0]) == favourite  # no done head
    # the favourite chosen again at every step: "done" wipes the low level's memory each time,
    # "done_keep" carries it on as if the head had never fired
    memories = {}
    for rule in ("done", "done_keep"):
        agent.replan, mem = rule, agent.memory(1)
        for _ in range(3):
            _, new, mem = agent.step(images, direction, mission, mem)
            assert bool(new[0]) and int(mem.phrase[0]) == favourite
        memories[rule] = mem.actor
    _, _, _, carried = agent.actor.act(images, direction, agent.phrase_tokens[[favourite]], None)
    for _ in range(2):
        _, _, _, carried = agent.actor.act(images, direction, agent.phrase_tokens[[favourite]], carried)
    first = agent.actor.act(images, direction, agent.phrase_tokens[[favourite]], None)[3]
    assert all(torch.allclose(a, b) for a, b in zip(memories["done_keep"], carried))
    assert all(torch.allclose(a, b) for a, b in zip(memories["done"], first))
    # a switch cost keeps the pursued phrase at a firing unless another is exp(cost) times likelier
    logits = agent.chooser(images.unsqueeze(1), direction.unsqueeze(1), mission)[0][0, 0].detach()
    runner_up = int(logits.topk(2).indices[1])
    gap = float(logits[favourite] - logits[runner_up])
    for cost, expected in ((0.0, favourite), (gap + 0.1, runner_up)):
        agent.replan, agent.switch_cost, mem = "done_keep", cost, agent.memory(1)
        mem.phrase[0] = runner_up  # pursuing the runner-up when the head fires
        mem.segment_steps[0] = 1
        _, new, mem = agent.step(images, direction, mission, mem)
        assert bool(new[0]) and int(mem.phrase[0]) == expected
    agent.switch_cost = 0.0
    with pytest.raises(ValueError, match="done, done_other, done_keep, every_step"):
        HierarchicalAgent(["go to the red ball"], PolicyConfig(16, 1), replan="sometimes")


def test_bar_phrases_removes_exactly_the_barred_phrase():
    scores = torch.randn(2, 3, 4)
    barred = torch.tensor([[-1, 2, 0], [3, -1, -1]])
    out = bar_phrases(scores, barred)
    for b in range(2):
        for t in range(3):
            for k in range(4):
                expected = BARRED if int(barred[b, t]) == k else float(scores[b, t, k])
                assert float(out[b, t, k]) == pytest.approx(expected)
    probs = torch.softmax(out, -1)
    assert float(probs[0, 1, 2]) == 0.0 and torch.isfinite(torch.log_softmax(out, -1) * probs).all()


def test_the_bot_at_the_done_heads_timing_switches_only_when_the_head_fires():
    """`--bot-at-done`: the bot's phrase, taken when the agent's done head fires, else kept (up to
    max_segment_steps): a head that never fires switches every 8 steps, one that always fires at
    every step, and the first phrase is the bot's either way."""
    torch.manual_seed(0)
    agent = HierarchicalAgent(["go to the red ball", "go to the blue key"], PolicyConfig(16, 1),
                              max_segment_steps=8)
    seed, level = EVAL_SEED_START, "BabyAI-GoToObjS4-v0"
    bot = play_with_bot_chooser(agent, level, [seed])[0]
    for bias, every in [(-1e4, 8), (1e4, 1)]:
        with torch.no_grad():
            agent.done.head[-1].bias.fill_(bias)
        played = play_with_bot_chooser(agent, level, [seed], at_done=True)[0]
        assert [t for t, _ in played["subgoals"]] == list(range(0, played["length"], every))
        assert played["subgoals"][0][1] == bot["subgoals"][0][1]
    # a head that always fires, memory kept on the same phrase: the bot's phrase at every step with
    # the memory wiped only when it changes, which is the plain oracle's episode exactly
    agent.replan = "done_keep"
    def counting_actor(image, direction, tokens, state):  # acts by its memory: a wipe shows
        n = 0 if state is None else state
        return torch.tensor([(0, 2, 2, 1)[n % 4]]), None, None, n + 1
    agent.actor.act = counting_actor
    bot = play_with_bot_chooser(agent, level, [seed])[0]
    kept = play_with_bot_chooser(agent, level, [seed], at_done=True)[0]
    assert kept["actions"] == bot["actions"] and kept["return"] == bot["return"]
    changes = [p for i, (_, p) in enumerate(kept["subgoals"]) if i == 0 or p != kept["subgoals"][i - 1][1]]
    assert changes == [p for _, p in bot["subgoals"]]
    # the converse: the chooser names the phrase exactly at the steps where the bot's changes
    agent.replan = "done_other"
    timed = play_with_bot_chooser(agent, level, [seed], chooser_at_bot=True)[0]
    said = play_with_bot_chooser(agent, level, [seed])[0]  # same actions: the actor ignores phrases
    assert [t for t, _ in timed["subgoals"]] == [t for t, _ in said["subgoals"]]
    assert all(p in agent.phrases for _, p in timed["subgoals"])
    assert all(a != b for (_, a), (_, b) in zip(timed["subgoals"], timed["subgoals"][1:]))  # done_other
    with pytest.raises(ValueError, match="one"):
        play_with_bot_chooser(agent, level, [seed], at_done=True, chooser_at_bot=True)


@pytest.mark.parametrize("scoring", ["words", "sequence"])
def test_only_the_sequence_chooser_can_pair_colours_with_types(scoring):
    """Context A names the red ball and the blue key, context B the red key and the blue ball. A
    score that adds its words' parts (plus a bias per phrase) has s(RB) + s(BK) - s(RK) - s(BB) the
    same in both contexts, so it cannot favour A's pair in A and B's in B; a phrase read in order can."""
    torch.manual_seed(0)
    phrases = ["go to the red ball", "go to the blue key", "go to the red key", "go to the blue ball"]
    chooser = SubgoalChooser(phrases, PolicyConfig(dim=16, n_film=1), scoring)
    out, mission = torch.randn(2, 1, 16), torch.randn(2, 16)  # contexts A, B
    target = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    opt = torch.optim.Adam(chooser.parameters(), lr=1e-2)
    for _ in range(300):
        p = torch.softmax(chooser.scores(out, mission)[:, 0], -1)
        loss = -(target * p.clamp_min(1e-9).log()).sum()
        opt.zero_grad(), loss.backward(), opt.step()
    p = torch.softmax(chooser.scores(out, mission)[:, 0], -1)
    weakest = p[target > 0].min().item()  # every named object's probability, in both contexts
    if scoring == "words":
        assert weakest < 0.3  # evenly on both named objects in A needs a sum > 0 that B needs < 0
    else:
        assert weakest > 0.45
    swapped = ["put the red ball next to the blue key", "put the blue ball next to the red key"]
    keys = SubgoalChooser(swapped, PolicyConfig(dim=16, n_film=1), scoring).phrase_keys()
    assert torch.allclose(keys[0], keys[1]) == (scoring == "words")  # a sum of words ignores order


def test_grounding_facts_follow_the_view_and_the_mission():
    """Against a naive scan of real BabyAI views: a phrase's object is "in view" exactly when a
    cell of its colour and type is in the 7x7 view, "in front" at (3, 5), "carried" at (3, 6);
    "named" when the mission names a fitting object (a mission's "a ball" fits "the red ball")."""
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

    from protege.nn.subgoal_agent import grounding, object_words
    phrases = ["go to the red ball", "pick up the blue key", "explore", "go to the box", "open the grey door",
               "pick up the purple box", "go to the green ball", "put down the yellow key"]
    objects = torch.tensor([object_words(p.split()) for p in phrases])
    assert objects[2].tolist() == [-2, -2] and objects[3].tolist() == [-1, OBJECT_TO_IDX["box"]]
    env = make_env("BabyAI-PutNextLocal-v0")
    rng = np.random.default_rng(0)
    for seed in range(6):
        with contextlib.redirect_stdout(io.StringIO()):
            obs, _ = env.reset(seed=seed)
        for _ in range(int(rng.integers(0, 8))):
            obs, *_ = env.step(int(rng.integers(0, 4)))  # turns, forward, pick up: a few views
        image = obs["image"]
        facts = grounding(torch.as_tensor(image)[None, None], tokenize([obs["mission"]]), objects)[0, 0]
        words = obs["mission"].replace(",", " ").split()
        for k, phrase in enumerate(phrases):
            if phrase == "explore":
                continue
            colour, kind = phrase.split()[-2:]
            colour = COLOR_TO_IDX.get(colour)  # None: "the box", any colour
            def fits(cell, kind=kind, colour=colour):
                return cell[0] == OBJECT_TO_IDX[kind] and colour in (None, cell[1])
            seen = any(fits(image[x, y]) for x in range(7) for y in range(7))
            said = [COLOR_TO_IDX.get(words[i - 1]) for i, w in enumerate(words) if w == kind]  # None: no colour
            named = any(c is None or colour is None or c == colour for c in said)
            assert facts[k].tolist() == [named, seen, fits(image[3, 5]), fits(image[3, 6])], (seed, phrase, facts[k])
        assert facts[2].sum() == 0  # "explore" names no object


def test_a_tiny_run_trains_evaluates_and_shows_an_episode(putnext_phrases, tmp_path):
    cfg = from_dict(experiment.Config, {
        "name": "tiny", "data": str(putnext_phrases[1]), **TINY, "eval_episodes": 1,
        "agreement_episodes": 1, "trainer": {"steps": 2, "batch_size": 4, "log_every": 1}}, "test")
    summary = experiment.run(cfg, Run(tmp_path / "tiny", to_dict(cfg)))
    assert summary["eval/BabyAI-PutNextLocal-v0/episodes"] == 1
    assert 0 <= summary["agreement/BabyAI-PutNextLocal-v0/boundaries"] <= 1
    agent, _ = load_agent(tmp_path / "tiny")
    assert agent.phrases == sorted(set(load_subgoal_data(putnext_phrases[1]).phrases.tolist()))
    small = "BabyAI-GoToObjS4-v0"  # short episodes keep the test fast
    row = babyai_rows(tmp_path / "tiny", small, 1)[0]  # `protege eval babyai`'s columns
    assert row["level"] == small and "success (95% Wilson)" in row
    assert list((tmp_path / "tiny" / "eval").iterdir())
    oracle = play_with_bot_chooser(agent, small, [EVAL_SEED_START])[0]  # the bot says the phrases
    assert oracle["subgoals"] and oracle["subgoals"][0][1].startswith(("go to the", "explore"))
    lines = show_episode(tmp_path / "tiny", 0, small)
    assert "seed 1000000000" in lines[0] and len(lines) >= 2 and "step   0" in lines[1]
    # the CLI under another replan rule keeps its result beside the run; a bad rule is one line
    run = lambda *a: subprocess.run(protege_cmd("eval", "subgoals", tmp_path / "tiny", *a),  # noqa: E731
                                    capture_output=True, text=True, env=protege_env(), timeout=300)
    ok = run("--level", small, "--episodes", "1", "--agreement", "0", "--replan", "done_other")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "tiny" / "eval" / f"subgoals-{small}-1ep-done_other-from1000000000.json").exists()
    assert run("--level", small, "--episodes", "1", "--agreement", "0", "--sample-chooser").returncode == 0
    assert (tmp_path / "tiny" / "eval" / f"subgoals-{small}-1ep-done-sampled-from1000000000.json").exists()
    bad = run("--replan", "often")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--replan" in bad.stderr and "done_other" in bad.stderr
    keep = run("--level", small, "--episodes", "1", "--agreement", "0", "--bot-at-done", "--replan", "done_keep")
    assert keep.returncode == 0, keep.stderr
    assert (tmp_path / "tiny" / "eval" / f"subgoals-{small}-1ep-bot-at-done-keep-from1000000000.json").exists()
    cost = run("--level", small, "--episodes", "1", "--agreement", "0", "--replan", "done_keep", "--switch-cost", "1.5")
    assert cost.returncode == 0, cost.stderr
    assert (tmp_path / "tiny" / "eval" / f"subgoals-{small}-1ep-done_keep-switch1.5-from1000000000.json").exists()
    no_cost = run("--replan", "done_other", "--switch-cost", "1")
    assert no_cost.returncode != 0 and "Traceback" not in no_cost.stderr and "--switch-cost" in no_cost.stderr
    timed = run("--level", small, "--episodes", "1", "--agreement", "0", "--chooser-at-bot")
    assert timed.returncode == 0, timed.stderr
    assert (tmp_path / "tiny" / "eval" / f"subgoals-{small}-1ep-chooser-at-bot-done-from1000000000.json").exists()
    both = run("--bot-chooser", "--chooser-at-bot")
    assert both.returncode != 0 and "Traceback" not in both.stderr and "--chooser-at-bot" in both.stderr
    ignored = run("--chooser-at-bot", "--sample-chooser")  # would be silently ignored
    assert ignored.returncode != 0 and "Traceback" not in ignored.stderr and "--sample-chooser" in ignored.stderr


@pytest.mark.slow
def test_the_low_level_reaches_single_subgoals_after_a_short_bc_run(tmp_path):
    """GoToObj: one object in a small room; the actor, given "go to the <object>", must reach it."""
    torch.set_num_threads(1)
    generate_demos(DemoConfig("BabyAI-GoToObj-v0", 300, tmp_path / "demos", workers=1, chunk_size=150),
                   progress=False)
    write_subgoal_data(tmp_path / "demos", tmp_path / "phrases")
    cfg = from_dict(experiment.Config, {
        "name": "gotoobj", "seed": 0, "level": "BabyAI-GoToObj-v0", "data": str(tmp_path / "phrases"),
        **TINY, "policy": {"dim": 32, "n_film": 1},
        "trainer": {"steps": 250, "batch_size": 32, "lr": 0.003, "log_every": 50}}, "test")
    experiment.run(cfg, Run(tmp_path / "run", to_dict(cfg)))
    trained, _ = load_agent(tmp_path / "run")
    untrained = HierarchicalAgent(trained.phrases, PolicyConfig(32, 1))
    reached = {name: reach_count(agent.actor) for name, agent in (("trained", trained),
                                                                   ("untrained", untrained))}
    assert reached["trained"] >= 13 and reached["trained"] >= reached["untrained"] + 8, reached


def reach_count(actor) -> int:
    """Of 20 held-out GoToObj layouts, how many the actor reaches within 25 steps when told
    "go to the <object>"."""
    env, reached = make_env("BabyAI-GoToObj-v0"), 0
    for seed in range(EVAL_SEED_START, EVAL_SEED_START + 20):
        with contextlib.redirect_stdout(io.StringIO()):
            obs, _ = env.reset(seed=seed)
        desc = env.unwrapped.instrs.desc
        phrase = tokenize([f"go to the {desc.color} {desc.type}"])
        state, reward, terminated = None, 0.0, False
        for _ in range(25):
            action, _, _, state = actor.act(torch.from_numpy(obs["image"]).unsqueeze(0),
                                            torch.tensor([obs["direction"]]), phrase, state)
            obs, reward, terminated, truncated, _ = env.step(int(action[0]))
            if terminated or truncated:
                break
        reached += episode_success(terminated, reward)
    return reached


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(putnext_phrases, tmp_path):
    args = [f"data={putnext_phrases[1]}", "n_demos=12", "policy.dim=16", "policy.n_film=1",
            "trainer.steps=30", "trainer.batch_size=4", "trainer.log_every=1",
            "trainer.checkpoint_every=1", "eval_episodes=0", "agreement_episodes=0", "transfer_levels=[]"]

    def command(name, *extra):
        return protege_cmd("run", "subgoals_bc", f"name={name}", *args, *extra)

    straight_and_resumed(command, tmp_path, "step-00000010")


def test_a_bot_record_the_annotation_cannot_read_costs_one_step_not_the_rest_of_the_episode(monkeypatch):
    """The oracle high level keeps the last phrase where the bot says something the subgoal
    annotation cannot read, and goes on from the next step (a bad record kept in the history would
    make every later annotation fail and freeze the phrase)."""
    from protege.worlds.babyai import demos, subgoals
    torch.manual_seed(0)
    agent = HierarchicalAgent(["go to the red ball", "go to the blue key"], PolicyConfig(16, 1))
    seed, level = EVAL_SEED_START, "BabyAI-GoToObjS4-v0"
    moves = iter([2, 0, 2, 2, 1, 2, 2, 2, 0, 2] * 10)  # the same actions whatever the phrase
    agent.actor.act = lambda image, direction, tokens, state: (torch.tensor([next(moves)]), None, None, state)
    plain = play_with_bot_chooser(agent, level, [seed])[0]
    assert len(plain["subgoals"]) >= 2  # the bot's phrase changes, so a freeze would show
    real_record, real_annotate, calls = demos.current_subgoal, subgoals.bot_subgoals, [0]

    def record(bot):
        calls[0] += 1
        return ("unreadable", None) if calls[0] == 2 else real_record(bot)

    def annotate(records, reasons):
        if "unreadable" in records:
            raise ValueError("not a subgoal record")
        return real_annotate(records, reasons)

    monkeypatch.setattr(demos, "current_subgoal", record)
    monkeypatch.setattr(subgoals, "bot_subgoals", annotate)
    moves = iter([2, 0, 2, 2, 1, 2, 2, 2, 0, 2] * 10)
    broken = play_with_bot_chooser(agent, level, [seed])[0]
    assert broken["actions"] == plain["actions"]
    assert [p for _, p in broken["subgoals"]] == [p for _, p in plain["subgoals"]]
