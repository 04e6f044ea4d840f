"""A utility model over token prefixes: a decoder LM's hidden states and a linear head.

U(x_{<=t}) is the head applied to the last hidden state at position t. The decoder is causal, so the
state at t sees tokens 0..t only and one forward pass scores every prefix of a sequence at once
(the inter-temporal Bradley-Terry model of arXiv:2211.11602 on text: a process reward model).
The backbone is the LM without its output layer (`base_model`): a fresh built-in decoder, or a
trained LM's weights (its language knowledge is what a process reward model starts from).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from protege.core.errors import UserError

WEIGHTS = "utility.safetensors"
CONFIG = "config.json"


class PrefixUtility(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)  # U starts at 0 everywhere: no pair is ordered by chance
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids (right-padded) -> [B, T] utilities of the prefixes ending at each token."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden).squeeze(-1)


def backbone_of(lm: nn.Module) -> nn.Module:
    """The decoder of a causal LM without its output layer (GPT-2's `transformer`, Llama's `model`)."""
    return lm.base_model


def save_utility(model: PrefixUtility, folder: Path) -> None:
    """The backbone's config and all weights (one safetensors file), written atomically."""
    from safetensors.torch import save_file

    from protege.core.runs import atomic_path
    with atomic_path(Path(folder), replace_folder=True) as tmp:
        tmp.mkdir()
        (tmp / CONFIG).write_text(json.dumps(model.backbone.config.to_dict(), indent=2) + "\n")
        save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()},
                  str(tmp / WEIGHTS))


def load_utility(folder: Path) -> PrefixUtility:
    """A model written by `save_utility`; a missing or damaged folder is a one-line `UserError`."""
    from transformers import AutoConfig, AutoModel

    from protege.core.runs import check_safetensors, load_weights
    folder = Path(folder)
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise UserError(f"{folder}: not a utility model (needs {CONFIG} and {WEIGHTS})")
    config_dict = json.loads((folder / CONFIG).read_text())
    if "model_type" not in config_dict:
        raise UserError(f"{folder / CONFIG}: missing field 'model_type'")
    config = AutoConfig.for_model(**config_dict)
    model = PrefixUtility(AutoModel.from_config(config))
    model.load_state_dict(load_weights(check_safetensors(folder / WEIGHTS)))
    return model.eval()
