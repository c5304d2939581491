"""a2c.online_step (the notes' online actor-critic, notebook 02): each update against finite
differences of the quantity it follows, and against the batch loss at N = 1."""
import numpy as np
import pytest

from rlref.algos import a2c
from rlref.gradcheck import numerical_grad
from rlref.nn import flatten, init_mlp, mlp_forward, unflatten
from rlref.policy import init_policy, policy_forward


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("terminated", [False, True])
def test_online_step_against_finite_differences(gaussian, terminated):
    g = np.random.default_rng(3 + gaussian)
    policy = init_policy([3, 5, 2], g, gaussian=gaussian, out_gain=1.0, log_std=-0.2)
    value = init_mlp([3, 4, 1], g, out_gain=1.0)
    s, s2 = g.standard_normal(3), g.standard_normal(3)
    a = g.standard_normal(2) if gaussian else 1
    r, gamma, lr_pi, lr_v = 0.7, 0.9, 0.05, 0.1
    new_pi, new_v, delta = a2c.online_step(policy, value, s, a, r, s2, terminated, gamma, lr_pi, lr_v)

    V = lambda phi, x=s: mlp_forward(unflatten(phi, value), x[None])[0][0, 0]
    y = r + (0.0 if terminated else gamma * V(flatten(value), s2))           # target, held fixed
    assert abs(delta - (y - V(flatten(value)))) < 1e-14                      # (AC.4)
    half_sq = lambda phi: 0.5 * (V(phi) - y) ** 2
    want_v = flatten(value) - lr_v * numerical_grad(half_sq, flatten(value).copy())
    assert np.abs(flatten(new_v) - want_v).max() < 1e-9                      # (AC.5)

    act = np.asarray(a).reshape((1,) + np.shape(a))
    logp = lambda th: policy_forward(unflatten(th, policy), s[None])[0].logp(act)[0]
    want_pi = flatten(policy) + lr_pi * delta * numerical_grad(logp, flatten(policy).copy())
    assert np.abs(flatten(new_pi) - want_pi).max() < 1e-9                    # (AC.6)
    assert type(new_pi) is type(policy) and list(new_pi) == list(policy)


def test_online_actor_step_is_batch_step_at_n1():
    g = np.random.default_rng(9)
    policy = init_policy([3, 5, 2], g, out_gain=1.0)
    value = init_mlp([3, 4, 1], g, out_gain=1.0)
    s, s2 = g.standard_normal(3), g.standard_normal(3)
    new_pi, _, delta = a2c.online_step(policy, value, s, 0, 1.0, s2, False, 0.99, 0.1, 0.0)
    config = a2c.Config(ent_coef=0.0, vf_coef=0.0)
    _, (grads_pi, _), _ = a2c.loss_and_grad(policy, value, s[None], np.array([0]), np.array([delta]), np.zeros(1),
                                            config)
    assert np.abs(flatten(new_pi) - (flatten(policy) - 0.1 * flatten(grads_pi))).max() < 1e-14
