"""A utility model over token prefixes: a decoder LM's hidden states and a linear head.

    U(x_{<=t}) = w . h_t + b + c * sum_{s=1..t} log p(x_s | x_{<s})          (c = 0 without loglik)

h_t is the decoder's last hidden state at position t. The decoder is causal, so h_t and the running
log-likelihood see tokens 0..t only and one forward pass scores every prefix of a sequence at once
(the inter-temporal Bradley-Terry model of arXiv:2211.11602 on text: a process reward model).
The decoder is a fresh built-in one or a trained LM (whose knowledge a process reward starts from).
Why the log-likelihood term: a step with a wrong value is a token the LM finds unlikely, but that
comparison (the value predicted at "=" against the value written) is not linear in the hidden state
at the step's end; measured on the arithmetic policy, a linear probe of h_t at the marks is at the
base rate while the LM's log-probability of the written value separates right from wrong first
steps 92% of the time (docs/results/ibt_text.md). With c learned (initialised at 0) the step reward
r_t = U(x_{<=t+1}) - U(x_{<=t}) weighs the step's likelihood as the marks say it should.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from protege.core.errors import UserError

WEIGHTS = "utility.safetensors"
CONFIG = "config.json"


UTILITY = "utility.json"


class PrefixUtility(nn.Module):
    def __init__(self, lm: nn.Module, loglik: bool = True):
        super().__init__()
        self.lm = lm
        """a causal LM (its output layer gives the log-likelihood term)"""
        self.loglik = loglik
        self.head = nn.Linear(lm.config.hidden_size, 1)
        self.loglik_scale = nn.Parameter(torch.zeros(()))
        nn.init.zeros_(self.head.weight)  # U starts at 0 everywhere: no pair is ordered by chance
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids (right-padded) -> [B, T] utilities of the prefixes ending at each token."""
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        utility = self.head(out.hidden_states[-1]).squeeze(-1)
        if not self.loglik:
            return utility
        token_loglik = torch.log_softmax(out.logits[:, :-1].float(), -1).gather(
            -1, input_ids[:, 1:, None]).squeeze(-1)
        running = torch.nn.functional.pad(token_loglik.cumsum(-1), (1, 0))  # nothing before token 0
        return utility + self.loglik_scale * running


def save_utility(model: PrefixUtility, folder: Path) -> None:
    """The LM's config, the utility's settings and all weights (one safetensors file), atomically."""
    from safetensors.torch import save_file

    from protege.core.atomic import atomic_path
    with atomic_path(Path(folder), replace_folder=True) as tmp:
        tmp.mkdir()
        (tmp / CONFIG).write_text(json.dumps(model.lm.config.to_dict(), indent=2) + "\n")
        (tmp / UTILITY).write_text(json.dumps({"loglik": model.loglik}) + "\n")
        save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()},
                  str(tmp / WEIGHTS))


def load_utility(folder: Path) -> PrefixUtility:
    """A model written by `save_utility`; a missing or damaged folder is a one-line `UserError`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from protege.core.runs import check_safetensors, load_weights
    folder = Path(folder)
    if not all((folder / f).is_file() for f in (CONFIG, WEIGHTS, UTILITY)):
        raise UserError(f"{folder}: not a utility model (needs {CONFIG}, {UTILITY} and {WEIGHTS})")
    config_dict = json.loads((folder / CONFIG).read_text())
    if "model_type" not in config_dict:
        raise UserError(f"{folder / CONFIG}: missing field 'model_type'")
    config = AutoConfig.for_model(**config_dict)
    settings = json.loads((folder / UTILITY).read_text())
    model = PrefixUtility(AutoModelForCausalLM.from_config(config), bool(settings.get("loglik", True)))
    model.load_state_dict(load_weights(check_safetensors(folder / WEIGHTS)))
    return model.eval()
