import torch

from protege.rl.reward_model import train_and_reward


class Linear(torch.nn.Module):
    """reward = w * x; loss pulls w towards 3. Counts its calls."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.calls = 0

    def loss_and_reward(self, batch):
        self.calls += 1
        return (self.w - 3.0) ** 2, (self.w * batch["x"]).detach(), {"fake/w": float(self.w.detach())}

    def training_state(self):
        return {"calls": self.calls}

    def load_training_state(self, state):
        self.calls = state["calls"]


def test_updates_then_rewards_with_the_updated_model():
    model = Linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.25)
    batch = {"x": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}
    reward, metrics = train_and_reward(model, opt, batch, updates=2)
    # w: 0 -> 1.5 -> 2.25 (gradient 2 (w - 3), step 0.25); the reward uses the final w
    assert torch.allclose(model.w.detach(), torch.tensor(2.25))
    assert torch.allclose(reward, 2.25 * batch["x"]) and not reward.requires_grad
    assert metrics == {"fake/w": 1.5} and model.calls == 3
