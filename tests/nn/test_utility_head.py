"""The prefix utility: U at position t depends on tokens 0..t only, and saves and loads exactly."""

import pytest
import torch

from protege.core.errors import UserError
from protege.nn.lm import ModelConfig, build_model
from protege.nn.utility_head import PrefixUtility, load_utility, save_utility


def tiny(loglik: bool) -> PrefixUtility:
    torch.manual_seed(0)
    lm = build_model(ModelConfig(n_layer=1, n_embd=16, n_head=2, context=32), 50, 0, 1)
    model = PrefixUtility(lm, loglik)
    with torch.no_grad():  # a head that is not zero, so the utilities differ by prefix
        model.head.weight.normal_()
        model.loglik_scale.fill_(0.7)
    return model.eval()


@pytest.mark.parametrize("loglik", [True, False])
def test_utility_of_a_prefix_ignores_what_follows_it(loglik):
    model = tiny(loglik)
    ids = torch.randint(2, 50, (2, 12))
    changed = ids.clone()
    changed[:, 7:] = torch.randint(2, 50, (2, 5))
    a, b = model(ids, torch.ones_like(ids)), model(changed, torch.ones_like(ids))
    assert a.shape == (2, 12)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6) and not torch.allclose(a[:, 7:], b[:, 7:])


def test_the_loglik_term_is_the_running_log_likelihood_of_the_prefix():
    model = tiny(True)
    ids = torch.randint(2, 50, (1, 9))
    with torch.no_grad():
        logits = model.lm(input_ids=ids).logits[0]
        hidden_only = model.head(model.lm(input_ids=ids, output_hidden_states=True).hidden_states[-1])[0, :, 0]
    by_hand = [sum(torch.log_softmax(logits[s - 1], -1)[ids[0, s]].item() for s in range(1, t + 1))
               for t in range(9)]
    u = model(ids, torch.ones_like(ids))[0].detach()
    assert torch.allclose(u - hidden_only, 0.7 * torch.tensor(by_hand), atol=1e-4)


def test_save_and_load_give_the_same_utilities(tmp_path):
    model = tiny(True)
    save_utility(model, tmp_path / "u")
    loaded = load_utility(tmp_path / "u")
    ids = torch.randint(2, 50, (3, 10))
    assert torch.equal(model(ids, torch.ones_like(ids)), loaded(ids, torch.ones_like(ids)))
    (tmp_path / "u" / "utility.json").unlink()
    with pytest.raises(UserError, match="not a utility model"):
        load_utility(tmp_path / "u")
