import numpy as np
import torch

from protege.losses.iqlearn import iqlearn_loss
from protege.losses.mle import mle_loss
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.systems.agent_imitation.evaluate import rollout, summarise
from protege.systems.agent_imitation.offline import make_batch, sequence_loss
from protege.worlds.babyai.demos import load_demos

SMALL = PolicyConfig(dim=32, n_film=1)


def test_iqlearn_lambda_zero_equals_bc_loss(redball_demos):
    demos = load_demos(redball_demos)
    torch.manual_seed(0)
    model = BabyAIPolicy(SMALL)
    batch = make_batch(demos, np.arange(8))
    assert batch.images.shape[:2] == batch.actions.shape == batch.mask.shape
    assert batch.terminal.sum() == 8 and (batch.actions[~batch.mask] == -1).all()
    logits, _, _ = model(batch.images, batch.directions, batch.tokens)
    bc, _ = mle_loss(logits, batch.actions, batch.mask)
    iq0, _ = sequence_loss(model, batch, lam=0.0, gamma=0.99)
    assert torch.allclose(iq0, bc, atol=1e-6)
    iq, m = iqlearn_loss(logits, batch.actions, batch.mask, batch.terminal, lam=0.5, gamma=0.99)
    assert iq > bc and m["iqlearn/td_penalty"] > 0


def test_padding_does_not_change_the_loss(redball_demos):
    """An episode's loss is the same alone or padded in a batch with a longer one."""
    demos = load_demos(redball_demos)
    torch.manual_seed(0)
    model = BabyAIPolicy(SMALL)
    short, long = int(np.argmin(demos.lengths)), int(np.argmax(demos.lengths))
    alone, _ = sequence_loss(model, make_batch(demos, np.array([short])), 0.3, 0.99)
    pair = make_batch(demos, np.array([short, long]))
    logits, _, _ = model(pair.images, pair.directions, pair.tokens)
    row0, _ = iqlearn_loss(logits[:1], pair.actions[:1], pair.mask[:1], pair.terminal[:1], 0.3, 0.99)
    assert torch.allclose(alone, row0, atol=1e-5)


def test_packed_frames_match_padded_batch(redball_demos):
    """Encoding only the real frames (mask=) gives the same logits on real steps, and the same loss
    and gradients, as encoding the whole padded batch."""
    demos = load_demos(redball_demos)
    torch.manual_seed(0)
    model = BabyAIPolicy(SMALL)
    batch = make_batch(demos, np.argsort(demos.lengths)[[0, 1, -1, -2, 5]])
    assert not batch.mask.all()
    full, _, _ = model(batch.images, batch.directions, batch.tokens)
    packed, _, _ = model(batch.images, batch.directions, batch.tokens, mask=batch.mask)
    assert torch.allclose(full[batch.mask], packed[batch.mask], atol=1e-5)
    grads = []
    for mask in (None, batch.mask):
        model.zero_grad()
        logits, _, _ = model(batch.images, batch.directions, batch.tokens, mask=mask)
        loss, _ = iqlearn_loss(logits, batch.actions, batch.mask, batch.terminal, 0.3, 0.99)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_bc_beats_random_policy(redball_demos):
    """BC from 300 GoToRedBall bot episodes, 300 steps: clearly above a uniform random policy."""
    torch.manual_seed(0)
    demos = load_demos(redball_demos)
    model = BabyAIPolicy(SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(300):
        loss, _ = sequence_loss(model, make_batch(demos, rng.choice(len(demos), 32)), 0.0, 0.99)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seeds = list(range(10**9, 10**9 + 60))
    bc = summarise("GoToRedBall", rollout(model, "BabyAI-GoToRedBall-v0", seeds, greedy=True))
    random_model = BabyAIPolicy(SMALL)
    for p in random_model.parameters():  # zero weights: uniform logits, so sampling is uniform
        torch.nn.init.zeros_(p)
    rand = summarise("GoToRedBall", rollout(random_model, "BabyAI-GoToRedBall-v0", seeds, greedy=False))
    print("bc", bc["success"], "random", rand["success"])
    assert bc["success"] >= rand["success"] + 0.3, (bc, rand)
