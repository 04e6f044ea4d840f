"""The examine world (for the Planner-Actor-Reporter, arXiv:2302.00763): a small room of objects,
each with a hidden property that shows only once the agent has examined it; the mission is to pick
up the object that has a given property.

    mission      "pick up the <property> object", e.g. "pick up the sticky object"; exactly one
                 object in the room has that property
    examine      the `toggle` action while facing an object (standing next to it): from then on the
                 object's cell shows its property in the observation's state channel,
                 state = REVEALED_STATE + index of the property in PROPERTIES (never examined: 0)
    success      picking up the object with the mission's property (reward 1 - 0.9 t/T, as
                 minigrid); picking up any other object ends the episode with reward 0

Observation, actions and the success rule are those of `levels.py` (symbolic 7x7 egocentric view,
the 7 minigrid actions, `episode_success`), so the BabyAI policy acts here unchanged.

`expert_action` is this world's scripted expert (the BabyAI bot does not know "examine" and needs
a BabyAI instruction tree, so it is hand-written): a breadth-first search over (cell, heading)
to face the named object, then toggle / pick up / done. It acts on one subgoal phrase:
"go to the red ball", "examine the red ball", "pick up the red ball".
"""

import re
from collections import deque

import gymnasium as gym
import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import COLOR_NAMES, DIR_TO_VEC
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Box, Key
from minigrid.minigrid_env import MiniGridEnv

from protege.core.errors import UserError
from protege.worlds.babyai.levels import TextMission

PROPERTIES = ("sticky", "fragile", "heavy", "hollow")
"""the hidden properties (not BabyAI words, so no BabyAI instruction ever names one)"""
REVEALED_STATE = 3
"""state channel of an examined object = REVEALED_STATE + property index (doors use 0-2)"""
OBJECT_TYPES = ("ball", "box", "key")
VERBS = ("go to", "examine", "pick up")
PHRASE = re.compile(r"^(go to|examine|pick up) the (\w+) (\w+)$")
FRONT_CELL = (3, 5)
"""(x, y) of the cell the agent faces in the 7x7 egocentric view (the agent is at (3, 6))"""


class _Examinable:
    """A mixin giving a minigrid object a hidden property shown only after `toggle`."""

    def setup(self, property_index: int):
        self.property_index = property_index
        self.revealed = False
        return self

    @property
    def hidden_property(self) -> str:
        return PROPERTIES[self.property_index]

    def toggle(self, env, pos):
        self.revealed = True  # (a Box would otherwise be replaced by its contents)
        return True

    def encode(self):
        obj, colour, _ = super().encode()
        return obj, colour, REVEALED_STATE + self.property_index if self.revealed else 0


class ExamBall(_Examinable, Ball):
    pass


class ExamBox(_Examinable, Box):
    pass


class ExamKey(_Examinable, Key):
    pass


_CLASSES = {"ball": ExamBall, "box": ExamBox, "key": ExamKey}


class ExamineEnv(MiniGridEnv):
    """A size x size room (walls included) with `n_objects` examinable objects of distinct
    colour-type pairs and random properties; exactly one has the mission's property."""

    def __init__(self, size: int = 6, n_objects: int = 3, max_steps: int | None = None, **kwargs):
        if not 2 <= n_objects <= len(PROPERTIES):
            raise ValueError(f"n_objects must be in [2, {len(PROPERTIES)}], got {n_objects}")
        if (size - 2) ** 2 < n_objects + 1:
            raise ValueError(f"a {size}x{size} room cannot hold {n_objects} objects and the agent")
        self.n_objects = n_objects
        mission_space = MissionSpace(mission_func=lambda p: f"pick up the {p} object",
                                     ordered_placeholders=[list(PROPERTIES)])
        super().__init__(mission_space=mission_space, grid_size=size, see_through_walls=True,
                         max_steps=max_steps or 16 * size * n_objects, **kwargs)

    def _gen_grid(self, width, height):
        # a layout where the agent cannot reach (face) some object is drawn again; the first draw
        # is kept whenever it is solvable, so solvable seeds keep their layout
        for _ in range(100):
            self._draw_layout(width, height)
            if all(_path_to_face(self, o.cur_pos) is not None for o in self.objects):
                return

    def _draw_layout(self, width, height):
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        rng = self.np_random
        pairs = [(c, t) for c in COLOR_NAMES for t in OBJECT_TYPES]
        chosen = rng.choice(len(pairs), self.n_objects, replace=False)
        # distinct properties: the target's is unique, the others are what examining rules out
        props = rng.choice(len(PROPERTIES), self.n_objects, replace=False)
        self.objects = []
        for k, p in zip(chosen, props):
            colour, kind = pairs[k]
            obj = _CLASSES[kind](colour).setup(int(p))
            self.place_obj(obj)
            self.objects.append(obj)
        self.target = self.objects[int(rng.integers(self.n_objects))]
        self.place_agent()
        self.mission = f"pick up the {self.target.hidden_property} object"

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if action == Actions.pickup and self.carrying is not None:
            terminated = True
            reward = self._reward() if self.carrying is self.target else 0.0
        elif action == Actions.drop:
            pass  # nothing is ever carried for long: a pickup ends the episode
        return obs, reward, terminated, truncated, info


gym.register("Protege-Examine-v0", entry_point="protege.worlds.babyai.examine:ExamineEnv")


def check_world(size: int, n_objects: int) -> None:
    """ValueError naming the field when (size, n_objects) make no examine world."""
    if not 2 <= n_objects <= len(PROPERTIES):
        raise ValueError(f"n_objects must be in [2, {len(PROPERTIES)}] (one property each), got {n_objects}")
    if size < 4 or (size - 2) ** 2 < n_objects + 1:
        raise ValueError(f"size must be >= 4 and leave room for {n_objects} objects and the agent, got {size}")


def make_examine_env(size: int = 6, n_objects: int = 3, max_steps: int | None = None) -> gym.Env:
    """The examine world with a text mission (the observation of `levels.py`)."""
    try:
        env = gym.make("Protege-Examine-v0", size=size, n_objects=n_objects, max_steps=max_steps)
    except ValueError as e:
        raise UserError(f"examine world: {e}") from None
    return TextMission(env)


def object_name(obj) -> str:
    return f"{obj.color} {obj.type}"


def scene(env: gym.Env) -> list[str]:
    """What the Planner may see: the objects' names in placement order, never their properties."""
    return [object_name(o) for o in env.unwrapped.objects]


def parse_phrase(text: str, names: list[str]) -> tuple[str, str] | None:
    """(verb, object name) of an Actor instruction naming one of `names`, else None."""
    m = PHRASE.match(" ".join(text.lower().split()))
    if not m or f"{m.group(2)} {m.group(3)}" not in names:
        return None
    return m.group(1), f"{m.group(2)} {m.group(3)}"


def revealed_in_front(image: np.ndarray) -> str | None:
    """The property of the object the agent faces if it has been examined (read from the view)."""
    state = int(image[FRONT_CELL][2])
    obj = int(image[FRONT_CELL][0])
    if obj in (5, 6, 7) and state >= REVEALED_STATE:  # key, ball, box
        return PROPERTIES[state - REVEALED_STATE]
    return None


def _find(env, name: str):
    return next((o for o in env.objects if object_name(o) == name), None)


def _path_to_face(env, goal) -> list[int] | None:
    """Shortest action sequence (left/right/forward) after which the agent faces cell `goal`."""
    start = (*env.agent_pos, env.agent_dir)
    seen = {start: None}
    queue = deque([start])
    while queue:
        x, y, d = queue.popleft()
        dx, dy = DIR_TO_VEC[d]
        if (x + dx, y + dy) == tuple(goal):
            path, node = [], (x, y, d)
            while seen[node] is not None:
                node, action = seen[node]
                path.append(action)
            return path[::-1]
        nexts = [((x, y, (d - 1) % 4), Actions.left), ((x, y, (d + 1) % 4), Actions.right)]
        cell = env.grid.get(x + dx, y + dy)
        if cell is None or cell.can_overlap():
            nexts.append(((x + dx, y + dy, d), Actions.forward))
        for node, action in nexts:
            if node not in seen:
                seen[node] = ((x, y, d), action)
                queue.append(node)
    return None


def expert_action(env: gym.Env, phrase: str) -> int:
    """The scripted expert's next action towards `phrase`; `Actions.done` once the subgoal is
    reached (facing the object for "go to"; the object examined for "examine") or impossible."""
    env = env.unwrapped
    parsed = parse_phrase(phrase, [object_name(o) for o in env.objects])
    if parsed is None:
        return int(Actions.done)
    verb, name = parsed
    obj = _find(env, name)
    if obj is None or obj.cur_pos is None:
        return int(Actions.done)
    path = _path_to_face(env, obj.cur_pos)
    if path is None:
        return int(Actions.done)
    if path:
        return int(path[0])
    if verb == "examine":
        return int(Actions.done if obj.revealed else Actions.toggle)
    if verb == "pick up":
        return int(Actions.pickup)
    return int(Actions.done)
