"""SGD and Adam against sequences computed by hand, clipping, and bad input."""
import math

import numpy as np
import pytest

from rlref.errors import ConfigError, NonFiniteError
from rlref.optim import adam_init, adam_step, clip_grad_norm, sgd_init, sgd_step


def test_adam_hand_computed_sequence():
    """beta1 = beta2 = 0.5, lr = 1, gradients 1, -1, 2 from theta = 0, worked out on paper:
    t=1: m=.5,   v=.5,    m_hat=1,    v_hat=1        step 1           theta = -1
    t=2: m=-.25, v=.75,   m_hat=-1/3, v_hat=1        step -1/3        theta = -2/3
    t=3: m=.875, v=2.375, m_hat=1,    v_hat=19/7     step sqrt(7/19)  theta = -2/3 - sqrt(7/19)"""
    theta, state = np.zeros(1), adam_init(np.zeros(1))
    expected = [-1.0, -2.0 / 3.0, -2.0 / 3.0 - math.sqrt(7.0 / 19.0)]
    for g, want in zip([1.0, -1.0, 2.0], expected):
        theta, state = adam_step(theta, np.array([g]), state, lr=1.0, beta1=0.5, beta2=0.5, eps=1e-12)
        assert abs(theta[0] - want) < 1e-11
    assert state["t"] == 3 and abs(state["m"][0] - 0.875) < 1e-15 and abs(state["v"][0] - 2.375) < 1e-15


def test_adam_constant_gradient_steps_lr_times_g_over_g_plus_eps():
    """With a constant gradient g, m_hat = g and v_hat = g^2 exactly, so each step is
    lr * g / (|g| + eps): this pins where eps enters (outside the root, after bias correction)."""
    theta, state = np.array([1.0, -1.0]), adam_init(np.zeros(2))
    g = np.array([0.5, -2e-8])
    for _ in range(5):
        theta, state = adam_step(theta, g, state, lr=0.1, eps=1e-8)
    np.testing.assert_allclose(theta, [1.0 - 5 * 0.1 * 0.5 / (0.5 + 1e-8), -1.0 + 5 * 0.1 * 2e-8 / 3e-8],
                               rtol=1e-12)


def test_sgd_with_momentum_hand_computed():
    theta, state = np.array([1.0]), sgd_init(np.zeros(1))
    for g, want in [(1.0, 0.9), (1.0, 0.9 - 0.1 * 1.5), (-2.0, 0.75 - 0.1 * (0.75 - 2.0))]:
        theta, state = sgd_step(theta, np.array([g]), state, lr=0.1, momentum=0.5)
        assert abs(theta[0] - want) < 1e-14


def test_steps_do_not_modify_their_inputs(rng):
    theta = rng.standard_normal(4)
    state = adam_init(theta)
    copies = theta.copy(), {k: np.copy(v) for k, v in state.items()}
    adam_step(theta, rng.standard_normal(4), state, lr=0.1)
    assert np.array_equal(theta, copies[0]) and all(np.array_equal(state[k], copies[1][k]) for k in state)


def test_non_finite_updates_raise_and_lose_nothing():
    theta, state = np.array([1.0, 2.0]), adam_init(np.zeros(2))
    with pytest.raises(NonFiniteError, match="grad contains NaN"):
        adam_step(theta, np.array([0.0, np.nan]), state, lr=0.1)
    with np.errstate(over="ignore", invalid="ignore"):                # let the step overflow
        with pytest.raises(NonFiniteError, match="parameters were not changed"):
            sgd_step(np.array([1e308]), np.array([-1e308]), sgd_init(np.zeros(1)), lr=10.0)
    assert np.array_equal(theta, [1.0, 2.0]) and state["t"] == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=0.0), r"lr must be in \(0"), (dict(lr=-1e-3), "lr"), (dict(lr=True), "finite real"),
    (dict(lr=1e-3, beta1=1.0), "beta1"), (dict(lr=1e-3, beta2=-0.1), "beta2"),
    (dict(lr=1e-3, eps=0.0), "eps"), (dict(lr=float("nan")), "lr")])
def test_adam_bad_hyperparameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        adam_step(np.zeros(2), np.zeros(2), adam_init(np.zeros(2)), **kwargs)


def test_grad_shape_mismatch():
    with pytest.raises(ValueError, match="shape of theta"):
        sgd_step(np.zeros(2), np.zeros(3), sgd_init(np.zeros(2)), lr=0.1)


def test_clip_grad_norm(rng):
    g = np.array([3.0, 4.0])
    clipped, norm = clip_grad_norm(g, 1.0)
    assert norm == 5.0 and np.allclose(clipped, [0.6, 0.8])
    same, _ = clip_grad_norm(g, 10.0)
    assert np.array_equal(same, g)
    grads = {"W": np.array([[1.0, 2.0]]), "b": np.array([2.0])}   # global norm 3 across both
    clipped, norm = clip_grad_norm(grads, 1.5)
    assert norm == 3.0 and np.allclose(clipped["W"], [[0.5, 1.0]]) and np.allclose(clipped["b"], [1.0])
    zero, norm = clip_grad_norm(np.zeros(3), 1.0)
    assert norm == 0.0 and not zero.any()
    with pytest.raises(ConfigError, match="max_norm"):
        clip_grad_norm(g, 0.0)
