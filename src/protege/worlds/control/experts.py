"""Scripted expert controllers for Control Suite tasks (observations in, actions in [-1, 1] out).

Scripted rather than SAC-trained: on this 2-core machine a SAC expert for cartpole-swingup costs
~100k steps (20+ minutes), while these controllers reach expert-level returns in microseconds.
Measured returns (mean over seeds 0-9, 1000 steps) are recorded in docs/results/form.md.

    cartpole-swingup  energy pumping (Astrom & Furuta 2000) until the pole is near upright, then a
                      discrete LQR stabiliser; K was solved once with scipy's discrete Riccati solver on
                      MuJoCo's finite-difference linearisation at the upright (Q=diag(1,10,.1,.1), R=.1)
    point_mass-easy   PD control towards the origin (the target)
    reacher-easy      damped-least-squares inverse kinematics of the 2-link arm (links 0.12 m): joint
                      velocity targets J^T (J J^T + 1e-3 I)^-1 (target - finger), PD on the joints
                      (plain Jacobian-transpose control stalled near the stretched-arm singularity)
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from protege.core.errors import unknown_name

Policy = Callable[[np.ndarray], np.ndarray]

_CARTPOLE_K = np.array([-2.75179992, -16.95958257, -3.09542028, -3.84831077])
_CARTPOLE_INERTIA_RATIO = 1 / 14.7  # I_pivot / (m g l_c) of the uniform 1 m, 0.1 kg pole


def cartpole_swingup(obs: np.ndarray) -> np.ndarray:
    x, cos, sin, x_dot, theta_dot = obs[:5]
    if cos > 0.8:  # near upright: LQR on (x, theta, x_dot, theta_dot)
        u = -_CARTPOLE_K @ np.array([x, np.arctan2(sin, cos), x_dot, theta_dot])
    else:  # pump energy towards the upright rest energy (0), keep the cart near the centre
        energy = 0.5 * _CARTPOLE_INERTIA_RATIO * theta_dot ** 2 + (cos - 1.0)
        u = 20.0 * energy * theta_dot * cos - 0.3 * x - 0.3 * x_dot
    return np.clip(np.array([u]), -1, 1).astype(np.float32)


def point_mass_easy(obs: np.ndarray) -> np.ndarray:
    return np.clip(-20.0 * obs[:2] - 3.0 * obs[2:4], -1, 1).astype(np.float32)


def reacher_easy(obs: np.ndarray, link: float = 0.12, damping: float = 1e-3) -> np.ndarray:
    q1, q2, to_target, q_dot = obs[0], obs[1], obs[2:4], obs[4:6]
    s1, c1, s12, c12 = np.sin(q1), np.cos(q1), np.sin(q1 + q2), np.cos(q1 + q2)
    jacobian = np.array([[-link * (s1 + s12), -link * s12], [link * (c1 + c12), link * c12]])
    dq = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping * np.eye(2), to_target)
    return np.clip(10.0 * dq - 0.5 * q_dot, -1, 1).astype(np.float32)


EXPERTS: dict[str, Policy] = {
    "cartpole-swingup": cartpole_swingup,
    "point_mass-easy": point_mass_easy,
    "reacher-easy": reacher_easy,
}


def scripted_expert(task: str) -> Policy:
    if task not in EXPERTS:
        raise unknown_name("scripted expert task", task, EXPERTS)
    return EXPERTS[task]
