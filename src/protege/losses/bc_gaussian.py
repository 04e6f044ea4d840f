"""Behavioural cloning for continuous actions: maximum likelihood under a diagonal Gaussian policy
(the continuous counterpart of `protege.losses.mle`; BC as in Pomerleau 1991 / Bain & Sammut 1995)."""

from torch import Tensor

from protege.nn.distributions import diag_gaussian_log_prob


def gaussian_nll_loss(mean: Tensor, log_std: Tensor, actions: Tensor):
    """Negative log-likelihood of demonstrated actions under N(mean, diag exp(log_std)^2):

        L = E_D[ sum_i ( (a_i - mu_i)^2 / (2 sigma_i^2) + log sigma_i + log(2 pi) / 2 ) ]

    mean, log_std, actions [B, A]. Returns (loss, metrics).
    """
    nll = -diag_gaussian_log_prob(actions, mean, log_std).mean()
    mse = (actions - mean).pow(2).sum(-1).mean()
    return nll, {"bc/nll": nll.detach(), "bc/mse": mse.detach(), "bc/std": log_std.exp().mean().detach()}
