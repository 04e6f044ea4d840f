"""The success detector: one logit per episode, blind to padding and to the other rows of a batch."""

import pytest
import torch

from protege.nn.babyai_policy import tokenize
from protege.nn.success_detector import DetectorConfig, SuccessDetector


def _batch(B=3, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 11, (B, T, 7, 7, 3), generator=g).to(torch.uint8)
    directions = torch.randint(0, 4, (B, T), generator=g)
    return images, directions, tokenize(["go to the red ball", "pick up a key", "open the door"][:B])


@pytest.mark.parametrize("positions", [False, True])
def test_padding_and_batch_neighbours_do_not_change_a_prediction(positions):
    torch.manual_seed(0)
    model = SuccessDetector(DetectorConfig(dim=16, n_film=1, positions=positions)).eval()
    images, directions, tokens = _batch()
    lengths = torch.tensor([5, 2, 3])
    logits = model(images, directions, tokens, lengths)
    assert logits.shape == (3,)
    noisy = images.clone()
    noisy[1, 2:] = 9  # garbage after row 1's real frames
    noisy_dirs = directions.clone()
    noisy_dirs[1, 2:] = 3
    again = model(noisy, noisy_dirs, tokens, lengths)
    assert torch.allclose(logits, again, atol=1e-6)
    alone = model(images[1:2, :2], directions[1:2, :2], tokens[1:2, :tokens[1].ne(0).sum()], lengths[1:2])
    assert torch.allclose(logits[1], alone[0], atol=1e-5)


def test_the_last_frame_and_the_instruction_matter():
    torch.manual_seed(0)
    model = SuccessDetector(DetectorConfig(dim=16, n_film=1)).eval()
    images, directions, tokens = _batch()
    lengths = torch.tensor([5, 5, 5])
    base = model(images, directions, tokens, lengths)
    changed = images.clone()
    changed[:, -1] = 0
    assert not torch.allclose(base, model(changed, directions, tokens, lengths))
    assert not torch.allclose(base, model(images, directions, tokens.flip(0), lengths))
    p = model.probability(images, directions, ["go to the red ball"] * 3, lengths)
    assert ((p > 0) & (p < 1)).all()


def test_placed_cells_tell_where_an_object_is():
    """The same view shifted by one column: max-pooled features cannot tell apart a pattern away
    from the border; with place embeddings they can."""
    torch.manual_seed(0)
    images = torch.zeros(2, 1, 7, 7, 3, dtype=torch.uint8)
    images[..., 0] = 1  # empty cells
    images[0, 0, 3, 3] = torch.tensor([6, 0, 0], dtype=torch.uint8)  # a red ball, centre
    images[1, 0, 2, 3] = torch.tensor([6, 0, 0], dtype=torch.uint8)  # one cell to the left
    args = (images, torch.zeros(2, 1, dtype=torch.long), tokenize(["go to the red ball"] * 2), torch.ones(2, dtype=torch.long))
    for positions, differ in ((False, False), (True, True)):
        model = SuccessDetector(DetectorConfig(dim=8, n_film=0, positions=positions)).eval()
        logits = model(*args)
        assert torch.isclose(logits[0], logits[1], atol=1e-6) != differ
