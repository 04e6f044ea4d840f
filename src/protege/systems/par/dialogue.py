"""The text between the Planner and the rest (arXiv:2302.00763): the Planner's prompt, the parsing
of its replies, and the Reporters that turn the Actor's last view into a report.

The prompt (the Planner sees the mission and the objects, never their properties):

    Task: pick up the sticky object
    Objects: red ball, blue key, green box
    Instructions: examine the <object>, pick up the <object>, go to the <object>
    Planner: examine the red ball
    Reporter: it is heavy
    Planner:

A reply is one instruction naming a listed object (its first line is read); anything else is
malformed: the Planner is re-asked with a note (`reprompts` times), then the episode fails.
Without a Reporter, no "Reporter:" lines are written.

Reports are chosen among REPORTS, the same set for every Reporter: "nothing to report", one
"it is <property>" per hidden property, and one "it is <colour>" per colour (true of the object
but useless to the Planner), so a learnt Reporter must find which to say.
"""

import re
from dataclasses import dataclass

import numpy as np
import torch
from minigrid.core.constants import COLOR_NAMES

from protege.worlds.babyai.examine import (
    FRONT_CELL,
    PROPERTIES,
    parse_phrase,
    revealed_in_front,
)

REPORTS = (["nothing to report"] + [f"it is {p}" for p in PROPERTIES]
           + [f"it is {c}" for c in COLOR_NAMES])
NOTHING = 0
REPROMPT_NOTE = "Note: answer with exactly one instruction about one listed object."


@dataclass
class Turn:
    """One exchange: what the Planner said, how the Actor did, what the Reporter said."""
    reply: str
    """the Planner's raw reply"""
    instruction: str | None
    """the parsed instruction (None: malformed)"""
    actor_steps: int = 0
    report: str | None = None
    """None: no Reporter"""


def planner_prompt(mission: str, objects: list[str], turns: list[Turn], reprompt: bool = False) -> str:
    lines = [f"Task: {mission}", f"Objects: {', '.join(objects)}",
             "Instructions: examine the <object>, pick up the <object>, go to the <object>"]
    for turn in turns:
        if turn.instruction is None:
            continue  # a malformed reply is not part of the dialogue
        lines.append(f"Planner: {turn.instruction}")
        if turn.report is not None:
            lines.append(f"Reporter: {turn.report}")
    if reprompt:
        lines.append(REPROMPT_NOTE)
    lines.append("Planner:")
    return "\n".join(lines)


def parse_reply(reply: str, objects: list[str]) -> str | None:
    """The instruction of a reply, canonical ("examine the red ball"), else None."""
    first = next((line for line in str(reply).strip().splitlines() if line.strip()), "")
    first = re.sub(r"^planner:\s*", "", first.strip(), flags=re.IGNORECASE).strip(" .\"'")
    parsed = parse_phrase(first, objects)
    return None if parsed is None else f"{parsed[0]} the {parsed[1]}"


class NoReporter:
    """The Planner hears nothing back."""
    name = "none"

    def report(self, image: np.ndarray) -> None:
        return None


class OracleReporter:
    """Hand-written: reads the faced object's revealed property from the view (world's encoding)."""
    name = "oracle"

    def report(self, image: np.ndarray) -> str:
        prop = revealed_in_front(image)
        return REPORTS[NOTHING] if prop is None else f"it is {prop}"


class CaptionReporter:
    """Hand-written, truthful and useless: names the faced object's colour (the kind of report a
    Reporter not trained for the task may give)."""
    name = "colour"

    def report(self, image: np.ndarray) -> str:
        colour = int(image[FRONT_CELL][1])
        return f"it is {COLOR_NAMES[colour]}" if int(image[FRONT_CELL][0]) in (5, 6, 7) else REPORTS[NOTHING]


class LearntReporter:
    """A `ReportPolicy`: greedy at evaluation, sampled in training (its choices and their views are
    recorded for the policy gradient)."""
    name = "learnt"

    def __init__(self, policy, sample: bool = False, generator: torch.Generator | None = None):
        self.policy, self.sample, self.generator = policy, sample, generator
        self.views: list[np.ndarray] = []
        self.choices: list[int] = []

    @torch.no_grad()
    def report(self, image: np.ndarray) -> str:
        logits = self.policy(torch.as_tensor(image).unsqueeze(0))[0]
        if self.sample:
            choice = int(torch.multinomial(logits.softmax(-1), 1, generator=self.generator))
        else:
            choice = int(logits.argmax())
        self.views.append(np.asarray(image))
        self.choices.append(choice)
        return REPORTS[choice]
