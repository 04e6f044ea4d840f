"""A hierarchical BabyAI agent whose levels talk in subgoal phrases (arXiv:2309.11564).

    high level  `SubgoalChooser`: mission + observation history -> one of K phrases seen in the data
    low level   `BabyAIPolicy` (nn/babyai_policy.py) with the phrase as its instruction, its memory
                reset at every new subgoal
    done head   `SubgoalDone`: (current view, current phrase) -> "this subgoal is reached"

Why a choice among the phrases seen in data (each scored by its words) rather than a decoder: the bot's subgoal language over a
BabyAI level is small and closed (one PutNextLocal dataset holds ~100 distinct phrases, all
"verb the colour type"), so a K-way classifier covers it exactly, can never say a phrase the low
level was not trained on, and gives PPO a plain categorical policy whose KL to the BC prior is exact
(a token decoder would need a sequence-level policy gradient and an approximate KL). The cost:
a phrase never seen in training (e.g. a colour/type pair absent from the demos) cannot be chosen.

Acting (`HierarchicalAgent.step`, N environments in lockstep): the chooser reads every observation
(its LSTM keeps the history); the low level acts on the current phrase. When the phrase changes is
the agent's `replan` rule:
    "done"        a new phrase is chosen at the first step, and whenever the done head fires on the
                  current view or the subgoal has run `max_segment_steps` steps (the default);
    "done_other"  the same, but when the done head fires the phrase just reached cannot be chosen
                  again: in the bot's data consecutive subgoals always differ, and a chooser that
                  lags a step behind the boundary would otherwise pick the reached subgoal again;
    "done_keep"   as "done", but the low level's memory is wiped only when the new choice is a
                  different phrase: the done head fires on many steps where the subgoal is not
                  reached (on the agent's own episodes far more often than on the bot's), and a
                  chooser that names the same phrase again then no longer throws away the low
                  level's progress towards it (docs/results/subgoals.md, "what the gap to the
                  oracle is made of");
    "every_step"  the chooser names a phrase at every step (as it was trained: on every step's
                  phrase, teacher forced), and a different one replaces the current phrase at once;
                  the done head is not consulted. The bot itself replans at every step this way.
`switch_cost` (an acting setting, 0 by default): when the done head fires under "done" or
"done_keep", the phrase being pursued gets this bonus to its logit, so the chooser leaves it only for
a phrase exp(switch_cost) times likelier: a deliberation cost on switching (Harb et al.,
arXiv:1709.04571), against a head that fires mid-subgoal.
The low level's memory starts fresh at each new choice (and after `max_segment_steps` under one
phrase), except under "done_keep", where it starts fresh only when the phrase changes.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from torch import Tensor, nn

from protege.nn.babyai_policy import (
    VOCAB,
    BabyAIPolicy,
    PolicyConfig,
    ViewEncoder,
    read_words,
    reset_state,
    tokenize,
)

REPLAN_RULES = ("done", "done_other", "done_keep", "every_step")
CHOOSER_SCORINGS = ("words", "classes", "sequence", "grounded")
BARRED = -1e9
"""the logit of a phrase the chooser may not choose: exp() is exactly 0, and finite, so a KL or an
entropy over the distribution has no 0 * inf"""


NO_OBJECT, ANY = -2, -1
"""an object slot of a phrase or a mission: no object named ("explore"); any colour / any type
("the key", "the object")"""
PICKABLE = tuple(OBJECT_TO_IDX[t] for t in ("ball", "box", "key"))
GROUNDING = ("named in the mission", "in view", "in front", "carried")
"""what `grounding` says of each phrase's object, per step"""


def object_words(words: list[str]) -> tuple[int, int]:
    """(colour index, object index) of the last "[colour] type" in `words`, minigrid's indices;
    ANY where a colour is not given or the type is "object"; (NO_OBJECT, NO_OBJECT) without one."""
    for i in range(len(words) - 1, -1, -1):
        if words[i] in OBJECT_TO_IDX or words[i] == "object":
            colour = COLOR_TO_IDX.get(words[i - 1], ANY) if i else ANY
            return colour, OBJECT_TO_IDX.get(words[i], ANY)
    return NO_OBJECT, NO_OBJECT


_WORD_KIND = torch.tensor([OBJECT_TO_IDX.get(w, ANY) if w in OBJECT_TO_IDX or w == "object" else NO_OBJECT
                           for w in VOCAB])
_WORD_COLOUR = torch.tensor([COLOR_TO_IDX.get(w, ANY) for w in VOCAB])


def _matches(colour: Tensor, kind: Tensor, p_colour: Tensor, p_kind: Tensor) -> Tensor:
    """does an object (colour, kind) fit a phrase's (p_colour, p_kind)? ANY fits every value on
    either side, "object" (ANY type) only the pickable types; NO_OBJECT phrases fit nothing."""
    kind_ok = (kind == p_kind) | ((p_kind == ANY) & torch.isin(kind, torch.tensor(PICKABLE))) | (kind == ANY)
    colour_ok = (colour == p_colour) | (p_colour == ANY) | (colour == ANY)
    return kind_ok & colour_ok & (p_kind != NO_OBJECT)


def grounding(images: Tensor, tokens: Tensor, phrase_objects: Tensor) -> Tensor:
    """Per step and phrase, whether the phrase's object is named in the mission, in view, in the
    cell in front of the agent, carried (`GROUNDING`): images [B, T, 7, 7, 3] (minigrid's egocentric
    view, [x, y], the agent at (3, 6), what it carries drawn in its own cell), mission tokens [B, L],
    phrase_objects [K, 2] (colour, type as `object_words`) -> [B, T, K, 4] floats in {0, 1}.
    Why by hand: the chooser's errors name the right verb and the wrong object
    (docs/results/subgoals.md), and these are exact, cheap facts of the symbolic view it can weigh."""
    b, t = images.shape[:2]
    objects, phrase_of = torch.unique(phrase_objects, dim=0, return_inverse=True)  # ~30 objects, ~130 phrases
    p_colour, p_kind = objects[:, 0], objects[:, 1]
    # the mission's objects: each type word, with the colour word before it (ANY if none)
    kinds = _WORD_KIND[tokens]  # [B, L]
    colours = torch.cat([torch.full_like(tokens[:, :1], ANY), _WORD_COLOUR[tokens[:, :-1]]], 1)
    named = _matches(colours[..., None], kinds[..., None], p_colour, p_kind).any(1)  # [B, K]
    cells = _matches(images[..., 1, None].long(), images[..., 0, None].long(), p_colour, p_kind)  # [B, T, 7, 7, K]
    facts = torch.stack([named[:, None].expand(b, t, -1), cells.flatten(2, 3).any(2),
                         cells[:, :, 3, 5], cells[:, :, 3, 6]], -1)
    return facts[:, :, phrase_of].float()


def bar_phrases(scores: Tensor, barred: Tensor) -> Tensor:
    """scores [..., K] with the phrase barred[...] (>= 0) set to BARRED; -1 bars nothing."""
    hit = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, barred.clamp_min(0).unsqueeze(-1),
                                                              (barred >= 0).unsqueeze(-1))
    return scores.masked_fill(hit, BARRED)


class SubgoalChooser(nn.Module):
    """The high level: mission-conditioned view encoder -> LSTM over the history -> a logit per
    phrase (and a value, for PPO on the environment reward).

    scoring "words": logit_k = q(h) . sum_{w in phrase k} E[w] + b_k, a phrase scored by its words,
    so "pick up the red key" shares what was learnt about "pick up", "red" and "key" with every
    other phrase (a 77-way independent softmax, "classes", barely learns in 400 steps, see
    docs/results/subgoals.md); the per-phrase bias keeps every phrase separately adjustable.

    scoring "sequence": logit_k = q([h; m]) . g(phrase k) + b_k, the phrase read in order by its own
    GRU g and the query given the mission's encoding m beside the memory h. A sum of word vectors
    is additive in colour and type and blind to order, so it cannot prefer "the red ball" over "the
    red key" when the mission names a red ball and a blue key, nor tell "put the red ball next to
    the blue key" from its swap: the chooser's errors on MiniBossLevel were mostly the right verb
    with the wrong object."""

    def __init__(self, phrases: list[str], cfg: PolicyConfig = PolicyConfig(), scoring: str = "words"):
        super().__init__()
        if scoring not in CHOOSER_SCORINGS:
            raise ValueError(f"chooser scoring must be one of {', '.join(CHOOSER_SCORINGS)}, got {scoring!r}")
        d, k = cfg.dim, len(phrases)
        self.scoring = scoring
        self.encoder = ViewEncoder(cfg)
        self.memory = nn.LSTM(d, d, batch_first=True)
        if scoring == "classes":
            self.head = nn.Sequential(nn.Linear(d, 64), nn.Tanh(), nn.Linear(64, k))
        else:
            q_in = d if scoring == "words" else 2 * d
            self.query = nn.Sequential(nn.Linear(q_in, 64), nn.Tanh(), nn.Linear(64, 64))
            self.phrase_words = nn.Embedding(len(VOCAB), 64, padding_idx=0)
            self.phrase_bias = nn.Parameter(torch.zeros(k))
            self.register_buffer("tokens", tokenize(phrases), persistent=False)
        if scoring in ("sequence", "grounded"):
            self.phrase_gru = nn.GRU(64, 64, batch_first=True)
        if scoring == "grounded":
            self.fact_query = nn.Linear(2 * d, 64 * len(GROUNDING))
            self.fact_bias = nn.Parameter(torch.zeros(len(GROUNDING)))
            self.register_buffer("objects", torch.tensor([object_words(p.split()) for p in phrases]),
                                 persistent=False)
        self.critic = nn.Sequential(nn.Linear(d, 64), nn.Tanh(), nn.Linear(64, 1))

    def phrase_keys(self) -> Tensor:
        """[K, 64]: each phrase's vector, by its words (a sum) or read in order (a GRU)"""
        words = self.phrase_words(self.tokens)  # padding embeds to zero
        if self.scoring == "words":
            return words.sum(1)
        return read_words(self.phrase_gru, words, self.tokens)

    def scores(self, out: Tensor, mission: Tensor, facts: Tensor | None = None) -> Tensor:
        """memory outputs [B, T, D], the mission's encoding [B, D] (and for "grounded" the facts
        [B, T, K, 4] of `grounding`) -> phrase logits [B, T, K]"""
        if self.scoring == "classes":
            return self.head(out)
        if self.scoring != "words":
            out = torch.cat([out, mission.unsqueeze(1).expand_as(out)], -1)
        keys = self.phrase_keys()
        logits = self.query(out) @ keys.T + self.phrase_bias
        if self.scoring == "grounded":
            q = self.fact_query(out).unflatten(-1, (len(GROUNDING), -1))  # [B, T, 4, 64]
            weights = q @ keys.T + self.fact_bias[:, None]  # [B, T, 4, K]: each fact's weight per phrase
            logits = logits + (weights.transpose(-1, -2) * facts).sum(-1)
        return logits

    def forward(self, images: Tensor, directions: Tensor, tokens: Tensor, state=None,
                mask: Tensor | None = None):
        """images [B, T, 7, 7, 3], directions [B, T], mission tokens [B, L] ->
        phrase logits [B, T, K], values [B, T], state."""
        mission = self.encoder.instruction(tokens)
        feats = self.encoder(images, directions, mission, mask)
        out, state = self.memory(feats, state)
        facts = grounding(images, tokens, self.objects) if self.scoring == "grounded" else None
        return self.scores(out, mission, facts), self.critic(out).squeeze(-1), state


class SubgoalDone(nn.Module):
    """The done head: one view and the phrase being pursued -> logit of "reached" (the bot's
    subgoal changes at this step). A single frame suffices in BabyAI: facing the object, carrying it
    (shown in the agent's cell), an open door and empty hands are all in view."""

    def __init__(self, cfg: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.encoder = ViewEncoder(cfg)
        self.head = nn.Sequential(nn.Linear(cfg.dim, 64), nn.Tanh(), nn.Linear(64, 1))

    def forward(self, images: Tensor, directions: Tensor, tokens: Tensor) -> Tensor:
        """images [N, 7, 7, 3], directions [N], phrase tokens [N, L] -> logits [N]."""
        h = self.encoder.frames(images, directions, self.encoder.instruction(tokens))
        return self.head(h).squeeze(-1)


def check_replan(rule: str) -> str:
    if rule not in REPLAN_RULES:
        raise ValueError(f"replan must be one of {', '.join(REPLAN_RULES)}, got {rule!r}")
    return rule


@dataclass
class AgentMemory:
    """What `HierarchicalAgent.step` carries between steps for N environments."""
    chooser: tuple | None
    actor: tuple | None
    phrase: Tensor
    """[N] index of the phrase being pursued (-1 before the first choice)"""
    segment_steps: Tensor
    """[N] steps taken under the current phrase"""
    barred: Tensor | None = None
    """[N] the phrase the last choice was not allowed to make (-1: none; replan "done_other")"""


class HierarchicalAgent(nn.Module):
    """Chooser + low-level `BabyAIPolicy` + done head, over a fixed list of phrases."""

    def __init__(self, phrases: list[str], cfg: PolicyConfig = PolicyConfig(),
                 max_segment_steps: int = 32, scoring: str = "words", replan: str = "done"):
        super().__init__()
        if not phrases:
            raise ValueError("a hierarchical agent needs at least one subgoal phrase")
        self.replan = check_replan(replan)
        self.switch_cost = 0.0
        self.phrases = list(phrases)
        self.policy_config = cfg
        self.max_segment_steps = max_segment_steps
        self.chooser = SubgoalChooser(self.phrases, cfg, scoring)
        self.actor = BabyAIPolicy(cfg)
        self.done = SubgoalDone(cfg)
        self.register_buffer("phrase_tokens", tokenize(self.phrases), persistent=False)

    def memory(self, n: int) -> AgentMemory:
        return AgentMemory(None, None, torch.full((n,), -1), torch.zeros(n, dtype=torch.long))

    @torch.no_grad()
    def step(self, images: Tensor, directions: Tensor, mission_tokens: Tensor, mem: AgentMemory,
             greedy: bool = True, generator: torch.Generator | None = None,
             greedy_actor: bool | None = None):
        """One step for N environments: images [N, 7, 7, 3], directions [N], mission tokens [N, L].
        `greedy` is the chooser's (argmax, else sampled), `greedy_actor` the low level's (default:
        the same). Returns actions [N], new-subgoal flags [N] bool, the new memory (mem.phrase:
        the phrases)."""
        logits, _, chooser_state = self.chooser(images.unsqueeze(1), directions.unsqueeze(1),
                                                mission_tokens, mem.chooser)
        scores = logits[:, 0]
        new = (mem.phrase < 0) | (mem.segment_steps >= self.max_segment_steps)
        barred = torch.full_like(mem.phrase, -1)
        if self.replan != "every_step" and (~new).any():
            idx = (~new).nonzero().squeeze(1)
            done = self.done(images[idx], directions[idx], self.phrase_tokens[mem.phrase[idx]]) > 0
            new[idx[done]] = True
            if self.replan == "done_other":  # the subgoal just reached is never the next one
                barred[idx[done]] = mem.phrase[idx[done]]
                scores = bar_phrases(scores, barred)
            elif self.switch_cost:  # the pursued phrase's bonus where the head fired
                scores = scores.index_put((idx[done], mem.phrase[idx[done]]),
                                          torch.tensor(self.switch_cost), accumulate=True)
        choice = scores.argmax(-1) if greedy else torch.multinomial(
            F.softmax(scores, -1), 1, generator=generator).squeeze(-1)
        if self.replan == "every_step":
            new |= choice != mem.phrase
        phrase = torch.where(new, choice, mem.phrase)
        fresh = new & (phrase != mem.phrase) if self.replan == "done_keep" else new
        actor_state = reset_state(mem.actor, fresh)
        actions, _, _, actor_state = self.actor.act(images, directions, self.phrase_tokens[phrase],
                                                    actor_state,
                                                    greedy if greedy_actor is None else greedy_actor,
                                                    generator)
        steps = torch.where(new, torch.ones_like(mem.segment_steps), mem.segment_steps + 1)
        return actions, new, AgentMemory(chooser_state, actor_state, phrase, steps, barred)

    def reset_rows(self, mem: AgentMemory, rows: Tensor) -> AgentMemory:
        """Start fresh episodes in the rows where `rows` [N] bool is true."""
        return AgentMemory(reset_state(mem.chooser, rows), reset_state(mem.actor, rows),
                           torch.where(rows, torch.full_like(mem.phrase, -1), mem.phrase),
                           torch.where(rows, torch.zeros_like(mem.segment_steps), mem.segment_steps))
