"""Held-out evaluation of the hierarchical agent: success over seeds from 10^9 (never a training
layout), the subgoal phrases it says on the way, and agreement of its chooser with the bot.

Agreement is measured teacher-forced: the bot plays held-out episodes; at every step the chooser,
having read the same history, names its most likely phrase, compared with the bot's phrase at that
step ("all steps") and at the steps where the bot starts a new subgoal ("boundaries", the only
steps where the agent consults its chooser). A phrase outside the agent's list counts as a miss.
"""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from protege.core.errors import UserError
from protege.eval.stats import mean_interval, wilson_interval
from protege.nn.babyai_policy import PolicyConfig, tokenize, view_tensors
from protege.nn.subgoal_agent import HierarchicalAgent, bar_phrases
from protege.rl.lockstep import lockstep
from protege.worlds.babyai.levels import (
    EVAL_SEED_START,
    check_level,
    episode_success,
    make_env,
)


def play(agent: HierarchicalAgent, level: str, seeds: list[int], n_envs: int = 16,
         greedy: bool = True, sample_seed: int = 0, greedy_actor: bool | None = None,
         generator: torch.Generator | None = None, record: bool = False,
         on_episode=None) -> list[dict]:
    """One episode per seed, `n_envs` environments in lockstep; returns per seed {seed, mission,
    success, return, length, actions, subgoals: [(step, phrase)]} in seed order; with `record`,
    also the views (images [T, 7, 7, 3], directions [T]), the chosen phrase indices and, per
    choice, the phrase it was barred from (-1: none; the agent's replan rule "done_other").
    `on_episode()` is called after each finished episode (progress)."""
    check_level(level)
    envs = [make_env(level) for _ in range(min(n_envs, len(seeds)))]
    gen = generator if generator is not None else torch.Generator().manual_seed(sample_seed)
    trace, results, mem = [None] * len(envs), {}, agent.memory(len(envs))

    def on_start(i, env, seed, ob):
        trace[i] = {"seed": seed, "mission": str(ob["mission"]), "actions": [], "rewards": [], "subgoals": [],
                    "images": [], "directions": [], "choices": [], "barred": []}

    def act(obs, fresh, active):
        nonlocal mem
        mem = agent.reset_rows(mem, fresh)
        images, directions = view_tensors(obs)
        actions, new, mem = agent.step(images, directions, tokenize([o["mission"] for o in obs]), mem,
                                       greedy, gen, greedy_actor)
        for i in active:
            t = trace[i]
            if new[i]:
                t["subgoals"].append((len(t["actions"]), agent.phrases[int(mem.phrase[i])]))
                t["choices"].append(int(mem.phrase[i]))
                t["barred"].append(int(mem.barred[i]))
            if record:
                t["images"].append(obs[i]["image"]); t["directions"].append(int(obs[i]["direction"]))
        return actions

    def on_step(i, action, ob, reward, terminated, truncated):
        t = trace[i]
        t["actions"].append(action); t["rewards"].append(reward)
        if terminated or truncated:
            results[t["seed"]] = {**t, "return": sum(t["rewards"]), "length": len(t["actions"]),
                                  "success": episode_success(terminated, reward)}
            if on_episode is not None:
                on_episode()

    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints each rejected layout
        lockstep(envs, seeds, act, on_start, on_step)
    return [results[s] for s in seeds]


def summarise(level: str, played: list[dict]) -> dict:
    n, wins = len(played), sum(p["success"] for p in played)
    lo, hi = wilson_interval(wins, n)
    length, len_lo, len_hi = mean_interval([p["length"] for p in played])
    ret, ret_lo, ret_hi = mean_interval([p["return"] for p in played])
    subgoals, _, _ = mean_interval([len(p["subgoals"]) for p in played])
    return {"level": level, "episodes": n, "success": wins / n, "success_lo": lo, "success_hi": hi,
            "return": ret, "return_lo": ret_lo, "return_hi": ret_hi,
            "length": length, "length_lo": len_lo, "length_hi": len_hi,
            "subgoals_per_episode": subgoals,
            "seeds": f"{played[0]['seed']}..{played[-1]['seed']}"}


def evaluate_agent(agent: HierarchicalAgent, level: str, episodes: int,
                   seed_start: int = EVAL_SEED_START, sample_chooser: bool = False) -> dict:
    """Held-out success; `sample_chooser` draws the chooser's phrases (seeded; the low level stays
    greedy), as the RL stage's training episodes do."""
    if episodes <= 0:
        raise UserError(f"--episodes must be positive, got {episodes}")
    from protege.core.progress import progress_bar
    with progress_bar() as bar:
        task = bar.add_task(f"eval {level}", total=episodes)
        played = play(agent, level, list(range(seed_start, seed_start + episodes)),
                      greedy=not sample_chooser, greedy_actor=True, on_episode=lambda: bar.advance(task))
    return summarise(level, played)


def bot_phrase_episodes(level: str, episodes: int, seed_start: int = EVAL_SEED_START):
    """Held-out bot episodes (seeds from 10^9) annotated with phrases, as a `SubgoalData`."""
    from protege.data.episodes import Episode
    from protege.worlds.babyai.demos import bot_episode
    from protege.worlds.babyai.subgoals import annotate
    env, out = make_env(level), []
    with contextlib.redirect_stdout(io.StringIO()):
        for seed in range(seed_start, seed_start + episodes):
            e = bot_episode(env, seed)
            if e is not None:
                out.append(Episode(observations={"image": e["images"], "direction": e["directions"]},
                                   actions=e["actions"], rewards=e["rewards"].astype(np.float32),
                                   terminated=True, truncated=False, instruction=e["mission"],
                                   env_id=level, seed=seed,
                                   annotations={"subgoal": e["subgoals"],
                                                "subgoal_reason": e["reasons"]}))
    if not out:
        raise UserError(f"{level}: the bot solved none of {episodes} held-out episodes")
    return annotate(out)


@torch.no_grad()
def phrase_agreement(agent: HierarchicalAgent, level: str, episodes: int) -> dict:
    """Teacher-forced agreement of the chooser's phrase with the bot's (module docstring)."""
    data = bot_phrase_episodes(level, episodes)
    index = {p: i for i, p in enumerate(agent.phrases)}
    hits, boundary_hits = [], []
    for e, (s, o, n) in enumerate(zip(data.starts, data.obs_starts, data.lengths)):
        images = torch.from_numpy(data.images[o:o + n]).unsqueeze(0)
        directions = torch.from_numpy(data.directions[o:o + n]).unsqueeze(0)
        logits, _, _ = agent.chooser(images, directions, tokenize([str(data.missions[e])]))
        said = logits[0].argmax(-1).tolist()
        truth = [index.get(str(p), -1) for p in data.phrases[s:s + n]]
        step_hits = [a == b for a, b in zip(said, truth)]
        hits += step_hits
        boundary_hits += [h for h, b in zip(step_hits, data.boundary[s:s + n]) if b]
    lo, hi = wilson_interval(sum(boundary_hits), len(boundary_hits))
    return {"steps": float(np.mean(hits)), "boundaries": float(np.mean(boundary_hits)),
            "boundaries_lo": lo, "boundaries_hi": hi, "bot_episodes": len(data)}


def load_agent(path: Path) -> tuple[HierarchicalAgent, dict]:
    """A hierarchical agent from a run directory (its latest checkpoint) or a checkpoint folder,
    acting by the run's replan rule."""
    from protege.core.runs import load_weights, read_run_config
    path = Path(path)
    if (path / "checkpoints" / "latest").exists():
        path = path / "checkpoints" / (path / "checkpoints" / "latest").read_text().strip()
    run_dir = path.parent.parent
    spec_file = run_dir / "agent.json"
    if not (path / "model.safetensors").exists() or not spec_file.exists():
        raise UserError(f"{path}: not a subgoals run or checkpoint (needs model.safetensors and "
                        f"agent.json in the run directory)")
    config = read_run_config(run_dir)
    try:
        spec = json.loads(spec_file.read_text())
        agent = HierarchicalAgent(spec["phrases"], PolicyConfig(**spec["policy"]),
                                  int(spec["max_segment_steps"]), spec.get("chooser", "classes"),
                                  config.get("replan", "done"))  # the rule the run acted and evaluated by
    except (TypeError, ValueError, KeyError) as e:
        raise UserError(f"{spec_file}: {type(e).__name__}: {e}") from None
    try:
        agent.load_state_dict(load_weights(path / "model.safetensors"))
    except RuntimeError as e:
        raise UserError(f"{path}/model.safetensors: does not fit a subgoals agent ({str(e)[:200]})") from None
    agent.eval()
    return agent, config


def save_beside_run(path: Path, name: str, settings: dict, result: dict) -> None:
    """Keep an evaluation's result in the run's eval/NAME.json; `path` is the run directory or one
    of its checkpoint folders."""
    from protege.core.runs import save_eval
    path = Path(path)
    run_dir = path if (path / "config.yaml").exists() else path.parent.parent
    save_eval(run_dir, name, {"path": str(path), **settings}, result)


def babyai_rows(path: Path, level: str | None, episodes: int, workers: int = 1, greedy: bool = True,
                seed_start: int | None = None) -> list[dict]:
    """`protege eval babyai`'s row for a subgoals run (same columns as a flat policy's), saved
    beside the run like theirs; `workers` is accepted for the same signature (one process here)."""
    agent, config = load_agent(path)
    level = level or config["level"]
    start = EVAL_SEED_START if seed_start is None else seed_start
    played = play(agent, level, list(range(start, start + episodes)), greedy=greedy)
    r = summarise(level, played)
    path = Path(path)
    save_beside_run(path, f"babyai-{level}-{episodes}ep-{'greedy' if greedy else 'sampled'}-from{start}",
                    {"level": level, "episodes": episodes, "greedy": greedy, "seed_start": start}, r)
    return [{"run": path.name, "level": level, "episodes": r["episodes"],
             "success (95% Wilson)": f"{r['success']:.3f} [{r['success_lo']:.3f}, {r['success_hi']:.3f}]",
             "return (95% t)": f"{r['return']:.3f} [{r['return_lo']:.3f}, {r['return_hi']:.3f}]",
             "length (95% t)": f"{r['length']:.1f} [{r['length_lo']:.1f}, {r['length_hi']:.1f}]",
             "seeds": r["seeds"]}]


@torch.no_grad()
def play_with_bot_chooser(agent: HierarchicalAgent, level: str, seeds: list[int],
                          at_done: bool = False, chooser_at_bot: bool = False) -> list[dict]:
    """A diagnostic: the bot, following the agent's own actions (`BabyAIBot.replan(action_taken)`,
    as in DAgger), says the phrase at every step, and the agent's low level acts on it (its memory
    reset when the phrase changes); the chooser and done head are unused. The success of this
    oracle high level bounds what a better chooser could get from this low level.

    `at_done`: the agent takes the bot's phrase only when its own done head fires on the current
    view (or after `max_segment_steps` under one phrase), as it consults its chooser under the
    "done" rule: the bot's choices at the agent's timing, which splits the gap to the oracle between
    the chooser (what to do next) and the done head (when). Under the agent's rule "done_keep"
    the low level's memory is wiped only when the bot's phrase differs from the one pursued.

    `chooser_at_bot`, the converse: the agent's own chooser (reading every step, as when it acts)
    names the phrase, at the steps where the bot's phrase changes: the agent's choices at the bot's
    timing (under "done_other", never the phrase being pursued)."""
    if at_done and chooser_at_bot:
        raise ValueError("at_done and chooser_at_bot are two diagnostics; give one")
    from minigrid.utils.baby_ai_bot import BabyAIBot

    from protege.worlds.babyai.demos import current_subgoal
    from protege.worlds.babyai.subgoals import bot_subgoals
    env, out = make_env(level), []
    with contextlib.redirect_stdout(io.StringIO()):
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            bot, records, state, phrase, action = BabyAIBot(env.unwrapped), [], None, None, None
            rewards, actions, subgoals, terminated, truncated, steps = [], [], [], False, False, 0
            mission, chooser_state, last_said = tokenize([obs["mission"]]), None, None
            while not (terminated or truncated):
                try:
                    bot.replan(action)
                    record = current_subgoal(bot)
                    said = bot_subgoals([r for r, _ in records] + [record[0]],
                                        [r for _, r in records] + [record[1]])[-1].phrase()
                    records.append(record)  # kept only once read: a bad one would fail every later step
                except Exception:  # the bot cannot plan from here, its stack is empty, or the annotation
                    # cannot read what it says
                    said = phrase
                image, direction = view_tensors([obs])
                pick = said
                if at_done and phrase is not None:
                    new = steps >= agent.max_segment_steps or bool(
                        agent.done(image, direction, tokenize([phrase])) > 0)
                elif chooser_at_bot:
                    scores, _, chooser_state = agent.chooser(image.unsqueeze(1), direction.unsqueeze(1),
                                                             mission, chooser_state)
                    new = phrase is None or said != last_said
                    if new:
                        pursued = agent.phrases.index(phrase) if phrase is not None else -1
                        barred = torch.tensor([[pursued if agent.replan == "done_other" else -1]])
                        pick = agent.phrases[int(bar_phrases(scores, barred)[0, 0].argmax())]
                else:
                    new = said != phrase
                last_said = said
                if new:
                    if pick != phrase or agent.replan != "done_keep":
                        state = None
                    phrase, steps = pick, 0
                    subgoals.append((len(rewards), phrase))
                steps += 1
                tokens = tokenize([phrase or "explore"])
                a, _, _, state = agent.actor.act(image, direction, tokens, state)
                action = int(a[0])
                actions.append(action)
                obs, reward, terminated, truncated, _ = env.step(action)
                rewards.append(float(reward))
            out.append({"seed": seed, "success": episode_success(terminated, rewards[-1]),
                        "return": sum(rewards), "length": len(rewards), "actions": actions,
                        "subgoals": subgoals})
    return out
