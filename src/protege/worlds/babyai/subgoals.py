"""The BabyAI bot's subgoals as short English phrases, and a dataset of (mission, observation
history, subgoal phrase) with subgoal boundaries (the "human language" subgoal space of
arXiv:2309.11564, with the bot standing in for the people).

minigrid's `BabyAIBot` keeps a stack of subgoals; the one on top after `replan` is what the step's
action pursues. `demos.describe_subgoal` records it per step as "GoNextTo(red ball)" / "Pickup()" /
"Drop()" / "Open()" / "GoNextTo(4,6)" plus its `reason` ("PutNext", "Open", "Explore", ...).
Pickup, Drop and Open carry no object in the bot (they act on the cell in front), so the phrase takes
its object from the episode so far: the object last gone to (pick up, open) or last picked up (drop).

    bot subgoal                         kind        canonical phrase
    GoNextTo(obj)                       go_to       go to the red ball
    GoNextTo(obj), reason PutNext       go_beside   go next to the blue key
    GoNextTo(door), reason Open         go_to       go to the green door
    Pickup()                            pick_up     pick up the red ball
    Drop()                              put_down    put down the red ball
    Open()                              open        open the green door
    Close()                             close       close the green door
    GoNextTo(x,y), reason Explore       explore     explore
    GoNextTo(x,y), other reasons        step_aside  move out of the way

Canonical phrases use the BabyAI grammar's words where it has them (they are the low-level policy's
instructions, and its tokenizer maps other words to <unk>); each kind also has paraphrase templates
(`PARAPHRASES`), which `parse_phrase` reads back to the same `Subgoal`. A boundary is a step whose
phrase differs from the previous step's (consecutive Explore targets merge into one "explore").
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.core.errors import UserError, unknown_name

FORMAT = "protege-babyai-subgoals-v1"
COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")
TYPES = ("ball", "box", "key", "door", "object")

CANONICAL = {
    "go_to": "go to the {obj}",
    "go_beside": "go next to the {obj}",
    "pick_up": "pick up the {obj}",
    "put_down": "put down the {obj}",
    "open": "open the {obj}",
    "close": "close the {obj}",
    "explore": "explore",
    "step_aside": "move out of the way",
}
PARAPHRASES = {
    "go_to": ("go to the {obj}", "walk to the {obj}", "head over to the {obj}", "approach the {obj}"),
    "go_beside": ("go next to the {obj}", "find a free spot beside the {obj}",
                  "stand by the {obj}"),
    "pick_up": ("pick up the {obj}", "grab the {obj}", "take the {obj}"),
    "put_down": ("put down the {obj}", "drop the {obj}", "let go of the {obj}"),
    "open": ("open the {obj}", "push open the {obj}", "unlatch the {obj}"),
    "close": ("close the {obj}", "shut the {obj}"),
    "explore": ("explore", "look around", "search for what is not seen yet"),
    "step_aside": ("move out of the way", "clear the path", "make room"),
}
KINDS = tuple(CANONICAL)
_OBJECT = re.compile(r"^(?:(%s) )?(%s)$" % ("|".join(COLOURS), "|".join(TYPES)))


@dataclass(frozen=True)
class Subgoal:
    kind: str
    """one of KINDS"""
    target: str = ""
    """"[colour] type" (e.g. "red ball", "key", "object"); "" for explore and step_aside"""

    def __post_init__(self):
        if self.kind not in CANONICAL:
            raise unknown_name("subgoal kind", self.kind, KINDS)
        needs = "{obj}" in CANONICAL[self.kind]
        if needs and not _OBJECT.match(self.target):
            raise UserError(f"subgoal {self.kind}: target {self.target!r} is not '[colour] type' "
                            f"(colours {', '.join(COLOURS)}; types {', '.join(TYPES)})")
        if not needs and self.target:
            raise UserError(f"subgoal {self.kind} takes no target, got {self.target!r}")

    def phrase(self, template: int = 0) -> str:
        """The phrase of paraphrase template `template` (0 is the canonical one)."""
        return PARAPHRASES[self.kind][template].format(obj=self.target)


def _templates() -> list[tuple[re.Pattern, str]]:
    out = []
    for kind, templates in PARAPHRASES.items():
        for t in templates:
            pattern = re.escape(t).replace(re.escape("{obj}"), r"(?P<obj>[a-z ]+)")
            out.append((re.compile(f"^{pattern}$"), kind))
    return out


_PATTERNS = _templates()


def parse_phrase(phrase: str) -> Subgoal:
    """The `Subgoal` a phrase (canonical or paraphrase) names; a UserError for anything else."""
    text = " ".join(str(phrase).lower().split())
    for pattern, kind in _PATTERNS:
        m = pattern.match(text)
        if m and (kind in ("explore", "step_aside") or _OBJECT.match(m.group("obj"))):
            return Subgoal(kind, m.groupdict().get("obj") or "")
    examples = "; ".join(CANONICAL[k].format(obj="red ball") for k in KINDS)
    raise UserError(f"subgoal phrase {phrase!r} matches no template (e.g. {examples})")


_RECORD = re.compile(r"^(\w+)\((.*)\)$")


def bot_subgoals(records: list[str], reasons: list[str]) -> list[Subgoal]:
    """One episode's recorded bot subgoals ("GoNextTo(red ball)", reason) as `Subgoal`s, with the
    object of Pickup/Drop/Open/Close taken from the episode so far (see the module docstring)."""
    out, last_seen, carried = [], "object", "object"
    for record, reason in zip(records, reasons):
        m = _RECORD.match(record)
        if not m:
            raise UserError(f"bot subgoal record {record!r} is not Kind(target)")
        kind, target = m.groups()
        is_position = bool(re.match(r"^-?\d+,-?\d+$", target))
        if kind == "GoNextTo" and is_position:
            last_seen = "object"
            out.append(Subgoal("explore" if reason == "Explore" else "step_aside"))
        elif kind == "GoNextTo":
            last_seen = target or "object"
            out.append(Subgoal("go_beside" if reason == "PutNext" else "go_to", last_seen))
        elif kind == "Pickup":
            carried = last_seen
            out.append(Subgoal("pick_up", carried))
        elif kind == "Drop":
            out.append(Subgoal("put_down", carried))
        elif kind in ("Open", "Close"):
            out.append(Subgoal(kind.lower(), last_seen if last_seen.endswith("door") else "door"))
        else:
            raise UserError(f"bot subgoal record {record!r}: unknown kind {kind!r} "
                            f"(GoNextTo, Pickup, Drop, Open, Close)")
    return out


def boundaries(phrases: list[str]) -> np.ndarray:
    """bool per step: a new subgoal starts here (step 0, or the phrase changed)."""
    out = np.ones(len(phrases), bool)
    out[1:] = [a != b for a, b in zip(phrases[1:], phrases[:-1])]
    return out


@dataclass(frozen=True)
class SubgoalData:
    """Episodes with per-step subgoal phrases (flat arrays, episode e = steps starts[e]:+lengths[e]).
        images [N+E, 7, 7, 3] uint8 and directions [N+E]: each episode's T+1 observations
        actions [N], phrases [N] (canonical), paraphrases [N] (a seeded paraphrase of each segment),
        boundary [N] bool; per episode: missions, seeds, lengths."""
    level: str
    images: np.ndarray
    directions: np.ndarray
    actions: np.ndarray
    phrases: np.ndarray
    paraphrases: np.ndarray
    boundary: np.ndarray
    missions: np.ndarray
    seeds: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def starts(self) -> np.ndarray:
        """first step of each episode in the step arrays"""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    @property
    def obs_starts(self) -> np.ndarray:
        """first observation of each episode in images/directions (T+1 per episode)"""
        return self.starts + np.arange(len(self))

    def concat(self, other: "SubgoalData") -> "SubgoalData":
        """These episodes, then `other`'s (same level)."""
        join = {k: np.concatenate([getattr(self, k), getattr(other, k)])
                for k in self.__dataclass_fields__ if k != "level"}
        return SubgoalData(self.level, **join)

    def subset(self, n: int) -> "SubgoalData":
        """The first `n` episodes (equal demonstrations for every learner)."""
        if not 0 < n <= len(self):
            raise UserError(f"n_demos: asked for {n} episodes, the subgoal dataset holds {len(self)}")
        s, o = int(self.lengths[:n].sum()), int(self.lengths[:n].sum()) + n
        return SubgoalData(self.level, self.images[:o], self.directions[:o], self.actions[:s],
                           self.phrases[:s], self.paraphrases[:s], self.boundary[:s],
                           self.missions[:n], self.seeds[:n], self.lengths[:n])


def annotate(episodes, seed: int = 0) -> SubgoalData:
    """`demos.read_episodes` output -> `SubgoalData` (paraphrase templates drawn with `seed`)."""
    rng = np.random.default_rng(seed)
    images, directions, actions, phrases, paraphrases, bounds = [], [], [], [], [], []
    for e in episodes:
        subgoals = bot_subgoals(e.annotations["subgoal"], e.annotations["subgoal_reason"])
        canon = [s.phrase() for s in subgoals]
        starts = boundaries(canon)
        template = 0
        for s, new in zip(subgoals, starts):
            template = int(rng.integers(len(PARAPHRASES[s.kind]))) if new else template
            paraphrases.append(s.phrase(template))
        images.append(e.observations["image"]); directions.append(e.observations["direction"])
        actions.append(np.asarray(e.actions, np.int64)); phrases += canon; bounds.append(starts)
    return SubgoalData(level=episodes[0].env_id, images=np.concatenate(images).astype(np.uint8),
                       directions=np.concatenate(directions).astype(np.int64),
                       actions=np.concatenate(actions), phrases=np.asarray(phrases, str),
                       paraphrases=np.asarray(paraphrases, str), boundary=np.concatenate(bounds),
                       missions=np.asarray([e.instruction for e in episodes], str),
                       seeds=np.asarray([e.seed for e in episodes], np.int64),
                       lengths=np.asarray([len(e) for e in episodes], np.int64))


DATA_FILE = "subgoals.npz"


def write_subgoal_data(demos: Path, out: Path, seed: int = 0) -> dict:
    """Annotate a demonstrations folder (`protege data demos`) into `out`: subgoals.npz plus a
    checksum manifest. Writes only a new folder or one this function wrote before."""
    from protege.data.manifest import check_output_folder, output_folder, verify_manifest, write_manifest
    from protege.worlds.babyai.demos import read_episodes
    check_output_folder(Path(out), FORMAT, [Path(demos)])  # refuse before any work
    data = annotate(read_episodes(Path(demos)), seed)
    source = verify_manifest(Path(demos))
    with output_folder(Path(out), kind=FORMAT, inputs=[Path(demos)]) as folder:
        with open(folder / DATA_FILE, "wb") as f:  # the folder appears whole, in one rename
            np.savez(f, **{k: getattr(data, k) for k in data.__dataclass_fields__ if k != "level"})
        stats = {"episodes": len(data), "steps": int(data.lengths.sum()),
                 "segments": int(data.boundary.sum()), "phrases": len(set(data.phrases.tolist()))}
        write_manifest(folder, {"kind": FORMAT, "format": FORMAT, "level": data.level, "seed": seed,
                                "source": str(demos), "source_files": source["files"], "stats": stats})
    return stats


def load_subgoal_data(folder: Path, level: str | None = None) -> SubgoalData:
    """Read a folder written by `write_subgoal_data` (checksums verified first)."""
    from protege.data.manifest import read_kind
    folder = Path(folder)
    meta = read_kind(folder, FORMAT, "subgoal dataset", "protege data subgoals")
    if level is not None and meta.get("level") != level:
        raise UserError(f"{folder}: subgoals of {meta.get('level')}, but the run is on {level}")
    with np.load(folder / DATA_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return SubgoalData(level=meta["level"], **arrays)


def describe(folder: Path) -> tuple[str, dict]:
    """`protege data validate` row for a subgoal dataset."""
    data = load_subgoal_data(folder)
    return "BabyAI subgoal phrases", {"level": data.level, "episodes": len(data),
                                      "steps": int(data.lengths.sum()),
                                      "segments": int(data.boundary.sum()),
                                      "phrases": len(set(data.phrases.tolist()))}
