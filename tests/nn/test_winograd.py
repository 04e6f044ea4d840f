"""Winograd F(7x7, 3x3) computes the BabyAI encoder's convolutions: the same function as the direct
convolution (exactly in float64, to float32 rounding in float32), so the policy's outputs, losses and
gradients match the reference path and old checkpoints load and act the same. The first convolution
from the cells' embedding rows (`embedded_conv3x3_7x7`) is the same function again."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protege.nn.babyai_policy import (
    WINOGRAD_MIN_FRAMES,
    BabyAIPolicy,
    PolicyConfig,
    ViewEncoder,
)
from protege.nn.winograd import conv3x3_7x7, embedded_conv3x3_7x7, toom_cook

SMALL = PolicyConfig(dim=32, n_film=2)


def random_frames(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.stack([torch.randint(0, 11, (n, 7, 7), generator=g), torch.randint(0, 6, (n, 7, 7), generator=g),
                          torch.randint(0, 3, (n, 7, 7), generator=g)], -1).to(torch.uint8)
    return images, torch.randint(0, 4, (n,), generator=g)


def test_toom_cook_is_the_correlation():
    at, g, bt = toom_cook()
    rng = np.random.default_rng(0)
    for _ in range(5):
        d, w = rng.normal(size=9), rng.normal(size=3)
        direct = np.array([w @ d[i:i + 3] for i in range(7)])
        # exact up to float64 rounding: the sums' terms reach ~1e5 (the points' powers) and B^T is a
        # float64 inverse of an ill-conditioned Vandermonde matrix, so the error is measured against
        # the terms' magnitudes (a fixed atol passes or fails with the BLAS's order of summation);
        # one entry of B^T off by 0.1% puts it off by ~1e-4 of them; this allows 1e-12
        bound = np.abs(at) @ ((np.abs(g) @ np.abs(w)) * (np.abs(bt) @ np.abs(d)))
        assert np.all(np.abs(at @ ((g @ w) * (bt @ d)) - direct) <= 1e-12 * bound)


def test_conv_matches_conv2d_exactly_in_float64_and_to_rounding_in_float32():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3, padding=1)
    x = torch.randn(5, 16, 7, 7)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-4)):
        c, xs = conv.to(dtype), x.to(dtype)
        direct = F.conv2d(xs, c.weight, c.bias, padding=1)                      # [N, C, 7, 7]
        cells = xs.permute(2, 3, 0, 1).reshape(49, 5, 16)                      # [49, N, C]
        ours = conv3x3_7x7(cells, c).view(7, 7, 5, 24).permute(2, 3, 0, 1)
        assert (ours - direct).abs().max() <= tol * direct.abs().max()


def test_embedded_conv_is_the_conv_of_the_summed_embeddings_with_the_same_gradients():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3, padding=1)
    table = torch.randn(48, 16)
    g = torch.Generator().manual_seed(0)
    indices = torch.randint(0, 30, (49, 6, 3), generator=g)  # rows 30..47 unused; repeats within a cell
    indices[:, 0] = 7                                         # a frame of one repeated row
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-4)):
        c = conv.to(dtype)
        rows = table.to(dtype).requires_grad_()
        params = [rows, c.weight, c.bias]
        x = rows[indices].sum(2)                                 # [49, N, C_in], as the encoder sums them
        ref = (x, conv3x3_7x7(x, c))
        ours = embedded_conv3x3_7x7(rows, indices, c)
        probe = torch.randn(ref[1].shape, generator=g, dtype=dtype)
        grads = [torch.autograd.grad(o[0].square().sum() + (o[1] * probe).sum(), params) for o in (ref, ours)]
        for a, b in zip(ref, ours):
            assert (a - b).abs().max() <= tol * a.abs().max()
        for a, b in zip(*grads):
            assert (a - b).abs().max() <= tol * a.abs().max()
        assert not grads[1][0][30:].any()  # unused rows get no gradient


def test_encoder_matches_reference_outputs_and_gradients():
    torch.manual_seed(0)
    enc = ViewEncoder(SMALL)
    images, directions = random_frames(40)
    h = torch.randn(40, SMALL.dim)
    outs, grads = [], []
    for winograd, table in ((False, False), (True, False), (True, True)):
        enc.winograd, enc.cell_table = winograd, table
        out = enc.frames(images, directions, h)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), list(enc.parameters()), allow_unused=True))
    for new, new_grads in zip(outs[1:], grads[1:]):
        assert not torch.equal(new, outs[0])  # another path ran (other rounding)
        assert (outs[0] - new).abs().max() <= 2e-4 * outs[0].abs().max()
        for ref, grad in zip(grads[0], new_grads):
            if ref is not None:
                assert (ref - grad).norm() <= 1e-3 * ref.norm()


def test_policy_matches_reference_and_few_frames_or_autocast_run_direct():
    torch.manual_seed(0)
    model = BabyAIPolicy(SMALL)
    images, directions = random_frames(WINOGRAD_MIN_FRAMES, seed=1)
    tokens = torch.tensor([[12, 30, 28, 26, 6]] * WINOGRAD_MIN_FRAMES)
    h = model.encoder.instruction(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model.encoder.frames(images, directions, h),
                           model.encoder.frames_reference(images, directions, h))
    logits, _, _ = model(images.unsqueeze(1), directions.unsqueeze(1), tokens)
    ref = model.encoder.frames_reference(images, directions, h).unsqueeze(1)
    ref_logits = model.actor(model.memory(ref)[0])
    assert torch.allclose(logits, ref_logits, atol=1e-4)
    few = images[:WINOGRAD_MIN_FRAMES - 1], directions[:WINOGRAD_MIN_FRAMES - 1], h[:WINOGRAD_MIN_FRAMES - 1]
    assert torch.equal(model.encoder.frames(*few), model.encoder.frames_reference(*few))  # acting: direct


def test_learner_loss_and_gradients_match_the_direct_path_on_a_padded_batch():
    """The training step as the offline learner runs it (mask=, only the real frames encoded): the
    same loss and every parameter's gradient with the direct, Winograd and cell-table paths."""
    from protege.losses.iqlearn import iqlearn_loss

    torch.manual_seed(0)
    model = BabyAIPolicy(SMALL)
    B, T = 6, 9
    images, directions = random_frames(B * T, seed=2)
    lengths = torch.tensor([9, 3, 7, 1, 5, 8])
    mask = torch.arange(T)[None] < lengths[:, None]
    actions = torch.where(mask, torch.randint(0, 7, (B, T)), -1)
    terminal = torch.arange(T)[None] == (lengths - 1)[:, None]
    tokens = torch.tensor([[12, 30, 28, 26, 6], [23, 31, 3, 8, 16]] * 3)
    results = []
    for winograd, table in ((False, False), (True, False), (True, True)):
        model.encoder.winograd, model.encoder.cell_table = winograd, table
        model.zero_grad()
        logits, _, _ = model(images.view(B, T, 7, 7, 3), directions.view(B, T), tokens, mask=mask)
        loss, _ = iqlearn_loss(logits, actions, mask, terminal, lam=0.1, gamma=0.99)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (ref_loss, ref_grads), *others = results
    assert int(mask.sum()) >= WINOGRAD_MIN_FRAMES  # the fast paths ran
    for loss, grads in others:
        assert abs(float(loss - ref_loss)) <= 1e-5 * abs(float(ref_loss))
        assert len(grads) == len(ref_grads)
        for ref, grad in zip(ref_grads, grads):
            assert (ref - grad).norm() <= 1e-3 * ref.norm() + 1e-7
