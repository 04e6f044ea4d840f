import json

import numpy as np
import pytest
import torch
from minigrid.core.actions import Actions

from protege.core.errors import UserError
from protege.systems.par.dialogue import (
    REPORTS,
    LearntReporter,
    NoReporter,
    OracleReporter,
    parse_reply,
    planner_prompt,
)
from protege.systems.par.episode import ScriptedActor, evaluate, play_episode
from protege.systems.par.planners import (
    RulePlanner,
    make_planner,
    prompt_key,
)
from protege.worlds.babyai.examine import (
    FRONT_CELL,
    PROPERTIES,
    REVEALED_STATE,
    expert_action,
    make_examine_env,
    revealed_in_front,
    scene,
)


def _walk(env, phrase, obs):
    while (a := expert_action(env, phrase)) != Actions.done:
        obs, *_ = env.step(a)
    return obs


def test_property_hidden_until_examined():
    env = make_examine_env()
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        for obj, name in zip(env.unwrapped.objects, scene(env)):
            obs = _walk(env, f"go to the {name}", obs)  # adjacent and facing, not examined
            assert obs["image"][FRONT_CELL][2] == 0 and revealed_in_front(obs["image"]) is None
            before = (obs["image"][..., 2] >= REVEALED_STATE).sum()
            obs, *_ = env.step(Actions.toggle)
            assert revealed_in_front(obs["image"]) == obj.hidden_property
            assert (obs["image"][..., 2] >= REVEALED_STATE).sum() == before + 1
        assert obs["mission"] == f"pick up the {env.unwrapped.target.hidden_property} object"


def test_toggle_from_afar_reveals_nothing():
    env = make_examine_env()
    obs, _ = env.reset(seed=3)
    if revealed_in_front(obs["image"]) is None and obs["image"][FRONT_CELL][0] not in (5, 6, 7):
        obs, *_ = env.step(Actions.toggle)
        assert not any(o.revealed for o in env.unwrapped.objects)
        assert (obs["image"][..., 2] >= REVEALED_STATE).sum() == 0


def test_wrong_pickup_fails_right_pickup_succeeds():
    env = make_examine_env()
    for seed in range(4):
        env.reset(seed=seed)
        names = scene(env)
        target = names[env.unwrapped.objects.index(env.unwrapped.target)]
        wrong = next(n for n in names if n != target)
        for name, won in ((wrong, False), (target, True)):
            env.reset(seed=seed)
            while True:
                _, r, term, trunc, _ = env.step(expert_action(env, f"pick up the {name}"))
                if term or trunc:
                    break
            assert term and (r > 0) == won


def test_reply_parsing():
    objects = ["red ball", "blue key"]
    assert parse_reply("Examine the red ball.\nmore", objects) == "examine the red ball"
    assert parse_reply("Planner: pick up the blue key", objects) == "pick up the blue key"
    for bad in ("", "examine the green box", "dance", "pick the red ball", None, 42):
        assert parse_reply(bad, objects) is None


class _Script:
    name = "script"

    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def reply(self, prompt):
        self.prompts.append(prompt)
        return self.replies.pop(0) if self.replies else "???"


def test_malformed_replies_reprompt_then_fail_counted():
    env = make_examine_env()
    planner = _Script(["hello", "\x00 garbage", "what?"])
    r = play_episode(env, 1, planner, ScriptedActor(), OracleReporter(), reprompts=1)
    assert r.failed_malformed and not r.success and r.malformed == 2
    assert "Note:" in planner.prompts[1]
    # a good reply after one malformed one: the episode goes on
    env.reset(seed=1)
    first = scene(env)[0]
    r = play_episode(env, 1, _Script(["nope", f"examine the {first}", "nonsense", "nonsense"]),
                     ScriptedActor(), OracleReporter(), reprompts=1)
    assert r.malformed == 3 and r.failed_malformed and r.turns[1].report.startswith("it is")


def test_rule_planner_with_reporters():
    none = evaluate(RulePlanner(), ScriptedActor(), NoReporter(), 40)
    oracle = evaluate(RulePlanner(), ScriptedActor(), OracleReporter(), 40)
    assert oracle["success"] >= 0.95 and none["success"] < 0.6
    assert none["malformed_replies"] == oracle["malformed_replies"] == 0


def test_cached_planner_replays_exactly(tmp_path):
    cache = tmp_path / "cache.jsonl"
    live = make_planner("rule", cache=str(cache))
    env = make_examine_env()
    first = [play_episode(env, s, live, ScriptedActor(), OracleReporter()) for s in range(3)]
    assert live.misses > 0 and cache.is_file()
    replay = make_planner("rule", cache=str(cache), offline=True)  # no planner behind it
    again = [play_episode(env, s, replay, ScriptedActor(), OracleReporter()) for s in range(3)]
    assert [[t.reply for t in r.turns] for r in first] == [[t.reply for t in r.turns] for r in again]
    assert replay.hits == sum(len(r.turns) for r in first)
    with pytest.raises(UserError, match="no cached reply"):
        replay.reply("a prompt never asked")
    entry = json.loads(cache.read_text().splitlines()[0])
    assert entry["key"] == prompt_key("rule", entry["prompt"])


def test_http_planner_is_cached_and_offline_needs_no_server(tmp_path):
    cache = tmp_path / "c.jsonl"
    prompt = planner_prompt("pick up the sticky object", ["red ball"], [])
    key = prompt_key("http:http://127.0.0.1:9/v1#m", prompt)
    cache.write_text(json.dumps({"key": key, "planner": "x", "prompt": prompt, "reply": "examine the red ball"}) + "\n")
    p = make_planner("http://127.0.0.1:9/v1", model="m", cache=str(cache))
    assert p.reply(prompt) == "examine the red ball"  # from the cache: port 9 is never reached
    with pytest.raises(UserError, match="cannot reach"):
        p.reply(prompt + " ")
    with pytest.raises(UserError, match="planner_cache"):
        make_planner("http://127.0.0.1:9/v1", model="m")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="line 1"):
        make_planner("rule", cache=str(tmp_path / "bad.jsonl"))


def test_learnt_reporter_reports_from_the_set():
    from protege.nn.reporter import ReportPolicy
    rep = LearntReporter(ReportPolicy(len(REPORTS)), sample=True, generator=torch.Generator().manual_seed(0))
    view = np.zeros((7, 7, 3), np.uint8)
    view[FRONT_CELL] = (6, 0, REVEALED_STATE + 1)
    assert rep.report(view) in REPORTS and len(rep.choices) == 1
    assert OracleReporter().report(view) == f"it is {PROPERTIES[1]}"


def test_http_planner_against_a_local_server_then_offline_replay(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            asked.append(body)
            objects = body["prompt"].split("Objects: ")[1].split("\n")[0].split(", ")
            data = json.dumps({"choices": [{"index": 0, "text": f" examine the {objects[0]}"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    cache = tmp_path / "cache.jsonl"
    try:
        live = make_planner(url, model="m", cache=str(cache))
        first = play_episode(make_examine_env(), 2, live, ScriptedActor(), OracleReporter(), max_turns=3)
    finally:
        server.shutdown()
    assert asked[0]["temperature"] == 0 and asked[0]["model"] == "m" and len(asked) == 3
    replay = make_planner(url, model="m", cache=str(cache), offline=True)
    again = play_episode(make_examine_env(), 2, replay, ScriptedActor(), OracleReporter(), max_turns=3)
    assert [t.reply for t in first.turns] == [t.reply for t in again.turns] and replay.hits == 3


def test_every_object_can_be_reached():
    from protege.worlds.babyai.examine import _path_to_face
    env = make_examine_env(size=5, n_objects=4)  # the most crowded room allowed
    for seed in range(60):
        env.reset(seed=seed)
        assert all(_path_to_face(env.unwrapped, o.cur_pos) is not None for o in env.unwrapped.objects)


def test_codebook_of_the_oracle_names_every_property():
    from protege.systems.par.show import reporter_codebook
    rows = reporter_codebook(OracleReporter())
    assert [r["names its property"] for r in rows] == ["-", "18/18", "18/18", "18/18", "18/18"]
    assert rows[0]["reports"] == "'nothing to report' x18"
