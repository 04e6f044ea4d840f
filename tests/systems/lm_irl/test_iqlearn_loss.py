
import pytest
import torch

from protege.losses.iqlearn import extracted_reward, iqlearn_loss, iqlearn_online_loss
from protege.losses.mle import masked_mean, mle_loss


def random_batch(seed=0, B=3, T=6, A=5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, A, generator=g, requires_grad=True)
    actions = torch.randint(0, A, (B, T), generator=g)
    lengths = [6, 4, 2]
    mask = torch.zeros(B, T, dtype=torch.bool)
    terminal = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, 1:n] = True  # step 0 is "prompt": not counted
        terminal[b, n - 1] = True
    return logits, actions, mask, terminal


def naive_iqlearn(logits, actions, mask, terminal, lam, gamma):
    """Per-step Python reference: -log pi(a|s) + lam (Q(s,a) - gamma V(s'))^2, averaged over counted steps."""
    total, count = 0.0, 0
    B, T, _ = logits.shape
    for b in range(B):
        for t in range(T):
            if not mask[b, t]:
                continue
            q = logits[b, t, actions[b, t]]
            v = torch.logsumexp(logits[b, t], 0)
            v_next = 0.0 if terminal[b, t] else torch.logsumexp(logits[b, t + 1], 0)
            total = total + (v - q) + lam * (q - gamma * v_next) ** 2
            count += 1
    return total / count


@pytest.mark.parametrize("lam,gamma", [(0.0, 1.0), (0.1, 1.0), (1.0, 0.9), (0.01, 0.0)])
def test_vectorised_loss_matches_naive_reference_values_and_gradients(lam, gamma):
    logits, actions, mask, terminal = random_batch()
    loss, _ = iqlearn_loss(logits, actions, mask, terminal, lam, gamma)
    (grad,) = torch.autograd.grad(loss, logits)
    reference = naive_iqlearn(logits, actions, mask, terminal, lam, gamma)
    (ref_grad,) = torch.autograd.grad(reference, logits)
    assert torch.allclose(loss, reference, atol=1e-5)
    assert torch.allclose(grad, ref_grad, atol=1e-6)


def test_lambda_zero_is_exactly_mle():
    logits, actions, mask, terminal = random_batch(1)
    iq, _ = iqlearn_loss(logits, actions, mask, terminal, lam=0.0)
    mle, _ = mle_loss(logits, actions, mask)
    assert torch.allclose(iq, mle, atol=1e-6)
    g1 = torch.autograd.grad(iq, logits)[0]
    g2 = torch.autograd.grad(mle, logits)[0]
    assert torch.allclose(g1, g2, atol=1e-7)


def test_masked_positions_and_terminal_value():
    logits, actions, mask, terminal = random_batch(2)
    loss, _ = iqlearn_loss(logits, actions, mask, terminal, lam=0.5)
    # changing logits where nothing is counted and nothing is bootstrapped from leaves the loss alone
    poked = logits.detach().clone()
    poked[2, 3:] += 100.0  # row 2 ends (terminal) at step 1: steps 2.. are padding
    poked[0, 0] += 0.0
    loss2, _ = iqlearn_loss(poked, actions, mask, terminal, lam=0.5)
    assert torch.allclose(loss, loss2)
    # the terminal step's reward is Q(s, a) itself: V after the end is 0
    r = extracted_reward(logits, actions, terminal)
    q_last = logits[1, 3, actions[1, 3]]
    assert torch.allclose(r[1, 3], q_last)
    # and a non-terminal step bootstraps from the next state's soft value
    assert torch.allclose(r[0, 2], logits[0, 2, actions[0, 2]] - torch.logsumexp(logits[0, 3], 0))


def test_online_loss_with_only_expert_rows_equals_offline():
    logits, actions, mask, terminal = random_batch(3)
    offline, _ = iqlearn_loss(logits, actions, mask, terminal, lam=0.3, gamma=0.95)
    online, _ = iqlearn_online_loss(logits, actions, mask, terminal, torch.ones(3, dtype=torch.bool),
                                    lam=0.3, gamma=0.95)
    assert torch.allclose(offline, online, atol=1e-5)


def naive_mean(per_row: list[list], per_sequence: bool):
    """Mean of the terms of every row, or (per_sequence) of each non-empty row's mean."""
    if per_sequence:
        means = [sum(row) / len(row) for row in per_row if row]
        return sum(means) / len(means)
    flat = [x for row in per_row for x in row]
    return sum(flat) / len(flat)


def naive_online(logits, actions, mask, terminal, is_expert, lam, gamma, per_sequence):
    """Per-step Python reference of online IQ-Learn (arXiv:2106.12142):
    -E_expert[Q(s,a) - gamma V(s')] + E_all[V(s) - gamma V(s')] + lam E_all[(Q(s,a) - gamma V(s'))^2]."""
    B, T, _ = logits.shape
    reward, value_gap, td2, nll = ([[] for _ in range(B)] for _ in range(4))
    for b in range(B):
        for t in range(T):
            if not mask[b, t]:
                continue
            q = logits[b, t, actions[b, t]]
            v = torch.logsumexp(logits[b, t], 0)
            v_next = 0.0 if terminal[b, t] else torch.logsumexp(logits[b, t + 1], 0)
            value_gap[b].append(v - gamma * v_next)
            td2[b].append((q - gamma * v_next) ** 2)
            if is_expert[b]:
                reward[b].append(q - gamma * v_next)
                nll[b].append(v - q)
    terms = {"iqlearn/expert_reward": naive_mean(reward, per_sequence),
             "iqlearn/value_gap": naive_mean(value_gap, per_sequence),
             "iqlearn/td_penalty": naive_mean(td2, per_sequence),
             "iqlearn/nll": naive_mean(nll, per_sequence)}
    loss = -terms["iqlearn/expert_reward"] + terms["iqlearn/value_gap"] + lam * terms["iqlearn/td_penalty"]
    return loss, terms


@pytest.mark.parametrize("lam,gamma,per_sequence", [(0.0, 1.0, False), (0.3, 0.9, False),
                                                    (0.3, 0.9, True), (1.0, 1.0, True)])
def test_online_loss_matches_naive_reference_values_metrics_and_gradients(lam, gamma, per_sequence):
    logits, actions, mask, terminal = random_batch(4)
    is_expert = torch.tensor([True, False, True])
    loss, metrics = iqlearn_online_loss(logits, actions, mask, terminal, is_expert, lam, gamma,
                                        per_sequence=per_sequence)
    reference, terms = naive_online(logits, actions, mask, terminal, is_expert, lam, gamma, per_sequence)
    assert torch.allclose(loss, reference, atol=1e-5), (loss, reference)
    for key, value in terms.items():
        assert torch.allclose(metrics[key], value.detach(), atol=1e-5), key
    (grad,) = torch.autograd.grad(loss, logits)
    (ref_grad,) = torch.autograd.grad(reference, logits)
    assert torch.allclose(grad, ref_grad, atol=1e-6)


def test_online_policy_rows_enter_only_the_value_terms():
    logits, actions, mask, terminal = random_batch(4)
    is_expert = torch.tensor([True, True, False])
    _, metrics = iqlearn_online_loss(logits, actions, mask, terminal, is_expert, lam=0.0)
    poked = logits.detach().clone()
    poked[2] += 5.0  # shifting all Q of a policy row by a constant moves V(s) and Q(s,a) alike
    _, poked_metrics = iqlearn_online_loss(poked, actions, mask, terminal, is_expert, lam=0.0)
    # the expert reward term does not see the policy row ...
    assert torch.equal(metrics["iqlearn/expert_reward"], poked_metrics["iqlearn/expert_reward"])
    # ... the value term does: row 2 has one step (terminal), so its V(s) - 0 rises by 5, and the
    # flat mean over the 5 + 3 + 1 counted steps rises by 5 / 9
    gap = poked_metrics["iqlearn/value_gap"] - metrics["iqlearn/value_gap"]
    assert float(gap) == pytest.approx(5.0 / 9, abs=1e-5)


def test_per_sequence_reduction_weighs_rows_equally():
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    assert float(masked_mean(x, mask)) == pytest.approx(7 / 5)
    assert float(masked_mean(x, mask, per_sequence=True)) == pytest.approx(2.0)


def test_bad_hyperparameters_are_rejected():
    logits, actions, mask, terminal = random_batch()
    with pytest.raises(ValueError, match="lambda"):
        iqlearn_loss(logits, actions, mask, terminal, lam=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        iqlearn_loss(logits, actions, mask, terminal, lam=0.1, gamma=1.5)
