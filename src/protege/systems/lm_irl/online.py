"""Online IQLearn's batches: a fraction of each batch is replaced by the model's own samples."""

import torch

from protege.data.tokens import EncodedExample, collate, special_prefix
from protege.nn.decode import model_device
from protege.nn.lm import fit_prompt, generate, position_limit


class OnlineMixer:
    """Replaces `mixin` of each batch's rows by a completion sampled from the current model for the
    same prompt; those rows are marked non-expert, so only the value and TD terms see them."""

    def __init__(self, cfg, model, tokenizer):
        self.mixin, self.model, self.tokenizer = cfg.objective.mixin, model, tokenizer
        self.max_new_tokens = min(cfg.eval.max_new_tokens, cfg.model.context)
        self.context = cfg.model.context
        self.limit = position_limit(model)
        self.keep = len(special_prefix(tokenizer))  # a BOS survives cutting a long prompt

    @torch.no_grad()
    def sample(self, row: EncodedExample) -> EncodedExample:
        ids, max_new = fit_prompt(row.ids[:row.prompt_len], self.max_new_tokens, self.limit,
                                  self.keep)
        prompt = torch.tensor([ids], device=model_device(self.model))
        was_training = self.model.training
        self.model.eval()
        out = generate(self.model, input_ids=prompt, attention_mask=torch.ones_like(prompt),
                       do_sample=True, max_new_tokens=max_new,
                       eos_token_id=self.tokenizer.eos_token_id,
                       pad_token_id=self.tokenizer.pad_token_id)
        self.model.train(was_training)
        ids = out[0].tolist()[:self.context]
        if ids[-1] != self.tokenizer.eos_token_id and len(ids) < self.context:
            ids.append(self.tokenizer.eos_token_id)
        if len(ids) == len(prompt[0]):  # an empty sample still takes one action
            ids.append(self.tokenizer.eos_token_id)
        return EncodedExample(ids, len(prompt[0]))

    def mix(self, rows: list[EncodedExample]):
        n_policy = int(round(len(rows) * self.mixin))
        mixed = [self.sample(r) for r in rows[:n_policy]] + rows[n_policy:]
        return collate(mixed, self.tokenizer.pad_token_id,
                       is_expert=[False] * n_policy + [True] * (len(rows) - n_policy)).to(model_device(self.model))
