"""bfloat16 hidden layers for the small MLPs of continuous control (SAC's reward models).

On CPUs with native bfloat16 (AVX512-BF16, AMX) the 256 x 256 matmuls that dominate these networks run
about twice as fast in bfloat16 (fp32 accumulation); on CPUs without it (AVX2) bfloat16 is emulated and
~10x slower. Whether to use it is decided by `protege.core.precision` (`precision: auto`); this module
only computes it. Only the hidden layers are cast: the output layer (Q-values, log-stds, discriminator
logits, density parameters) stays fp32, where the precision matters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor


def bf16_hidden(net: nn.Sequential, x: Tensor, enabled: bool) -> Tensor:
    """Run `net[:-1]` under bfloat16 autocast (when `enabled`) and the last layer `net[-1]` in fp32."""
    if not enabled:  # fp32 throughout, also inside an enclosing autocast region (SAC.update's)
        with torch.autocast("cpu", enabled=False):
            return net(x)
    with torch.autocast("cpu", torch.bfloat16):
        for layer in net[:-1]:
            x = layer(x)
    with torch.autocast("cpu", enabled=False):  # fp32 even inside an enclosing autocast region
        return net[-1](x.float())
