"""Play to demonstrate: a person plays a BabyAI level from the browser, one action per request.

The server holds the environment (the browser only sees rendered frames) and records every step in
the `plays` row: actions, rewards and frame hashes. A step carries `seq`, the step number it makes
(1 for the first action): the next number steps the environment; a number already played returns
the recorded result without stepping (a retry after a lost answer); anything else is refused (409).
Environments live in a small in-process cache; a play whose environment was evicted (or a server
restarted) is rebuilt by resetting with the play's seed and replaying its actions. Finished plays
are the people's demonstrations (`protege studio export --demos DIR`).
"""

import secrets
import threading
import time
from collections import OrderedDict

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from protege.systems.feedback.auth import UserDep
from protege.systems.feedback.db import Play

router = APIRouter()
_lock = threading.Lock()  # one step at a time: a step is a few milliseconds, and env state is shared
_envs: OrderedDict = OrderedDict()  # play id -> (env, number of actions it has taken)
CACHE = 64
N_ACTIONS = 7


class PlayIn(BaseModel):
    level: str = Field(min_length=1, max_length=128)
    seed: int | None = Field(default=None, ge=0)


class StepIn(BaseModel):
    action: int = Field(ge=0, lt=N_ACTIONS)
    seq: int = Field(ge=1)


def _url(digest: str) -> str:
    return f"/media/frames/{digest}.png"


@router.get("/api/play/levels")
def levels(who: UserDep):
    from protege.worlds.babyai.levels import babyai_levels
    return {"levels": babyai_levels()}


@router.post("/api/play")
def start_play(body: PlayIn, request: Request, who: UserDep):
    from protege.core.errors import UserError
    from protege.systems.feedback.episodes import store_png
    from protege.worlds.babyai.levels import EVAL_SEED_START, check_level, make_env
    from protege.worlds.babyai.replay import png_bytes, replay
    try:
        check_level(body.level)
    except UserError as e:
        raise HTTPException(422, str(e)) from None
    seed = secrets.randbelow(EVAL_SEED_START) if body.seed is None else body.seed
    if seed >= EVAL_SEED_START:  # held-out evaluation layouts are never demonstrated
        raise HTTPException(422, f"seed must be below {EVAL_SEED_START} (evaluation seeds start there)")
    with _lock:
        env = make_env(body.level)
        r = replay(body.level, seed, [], render=True, env=env)
        digest = store_png(request.app.state.media, png_bytes(r.frames[0]))
        play = Play(id=secrets.token_hex(16), user_id=who.user_id, level=body.level, seed=seed,
                    mission=r.mission, actions=[], rewards=[], frames=[digest], last_seq=0,
                    status="playing", created_at=time.time(), updated_at=time.time())
        with request.app.state.db() as db:
            db.add(play)
            db.commit()
        _remember(play.id, env, 0)
    return {"play_id": play.id, "level": body.level, "seed": seed, "mission": r.mission,
            "frame": _url(digest), "step": 0}


def _remember(play_id: str, env, steps: int) -> None:
    _envs[play_id] = (env, steps)
    _envs.move_to_end(play_id)
    while len(_envs) > CACHE:
        _envs.popitem(last=False)


def _env_for(play: Play):
    """The play's environment after its recorded actions (from the cache, else by replay)."""
    from protege.worlds.babyai.levels import make_env
    from protege.worlds.babyai.replay import replay
    cached = _envs.get(play.id)
    if cached is not None and cached[1] == len(play.actions):
        return cached[0]
    env = make_env(play.level)
    replay(play.level, play.seed, play.actions, env=env)
    return env


def _result(play: Play, step: int) -> dict:
    last = step == len(play.actions)
    ended = last and play.status != "playing"
    return {"play_id": play.id, "step": step, "frame": _url(play.frames[step]),
            "reward": play.rewards[step - 1], "terminated": ended and play.status != "truncated",
            "truncated": ended and play.status == "truncated", "status": play.status if last else "playing"}


@router.post("/api/play/{play_id}/step")
def step_play(play_id: str, body: StepIn, request: Request, who: UserDep):
    from protege.systems.feedback.episodes import store_png
    from protege.worlds.babyai.levels import episode_success
    from protege.worlds.babyai.replay import png_bytes, render_frame
    with _lock, request.app.state.db() as db:
        play = db.get(Play, play_id)
        if play is None or play.user_id != who.user_id:
            raise HTTPException(404, "no such play of yours")
        if body.seq <= play.last_seq:
            return _result(play, body.seq)  # a retry: the recorded answer, no second step
        if body.seq != play.last_seq + 1:
            raise HTTPException(409, f"seq {body.seq} skips ahead: the next step is {play.last_seq + 1}")
        if play.status != "playing":
            raise HTTPException(409, f"the play has ended ({play.status})")
        env = _env_for(play)
        _envs.pop(play.id, None)  # if anything below fails, the env is rebuilt from the database
        _, reward, terminated, truncated, _ = env.step(body.action)
        digest = store_png(request.app.state.media, png_bytes(render_frame(env)))
        play.actions = [*play.actions, body.action]
        play.rewards = [*play.rewards, float(reward)]
        play.frames = [*play.frames, digest]
        play.last_seq = body.seq
        if terminated:
            play.status = "success" if episode_success(terminated, reward) else "failure"
        elif truncated:
            play.status = "truncated"
        play.updated_at = time.time()
        db.commit()
        _remember(play.id, env, len(play.actions))
        return _result(play, body.seq)
