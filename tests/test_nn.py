"""The MLP: forward values, backprop and forward mode against finite differences, init, flatten."""
import numpy as np
import pytest

from rlref.errors import ConfigError
from rlref.gradcheck import check_grad
from rlref.nn import (ACTIVATIONS, MLPParams, flatten, init_mlp, mlp_backward, mlp_forward,
                      mlp_jvp, orthogonal, unflatten)


def perturbed_mlp(sizes, rng, activation):
    """An MLP with nonzero biases and generic weights, so every term of backprop matters."""
    params = init_mlp(sizes, rng, activation=activation)
    for k in params:
        params[k] = params[k] + 0.3 * rng.standard_normal(params[k].shape)
    return params


def reference_forward(params, x, activation):
    """Sample by sample, unit by unit, with scalar maths: independent of mlp_forward's matrices."""
    f = {"tanh": np.tanh, "relu": lambda z: max(z, 0.0), "identity": lambda z: z}[activation]
    L = len([k for k in params if k.startswith("W")])
    out = []
    for row in x:
        h = list(row)
        for k in range(1, L + 1):
            W, b = params[f"W{k}"], params[f"b{k}"]
            z = [sum(h[i] * W[i, j] for i in range(len(h))) + b[j] for j in range(W.shape[1])]
            h = [f(v) for v in z] if k < L else z
        out.append(h)
    return np.array(out)


SHAPES = [[3, 2], [4, 6, 2], [2, 5, 7, 3], [5, 8, 8, 1]]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", SHAPES)
def test_forward_matches_scalar_reference(activation, sizes, rng):
    params = perturbed_mlp(sizes, rng, activation)
    x = rng.standard_normal((4, sizes[0]))
    out, _ = mlp_forward(params, x)
    np.testing.assert_allclose(out, reference_forward(params, x, activation), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("sizes", SHAPES)
def test_backward_matches_finite_differences(activation, batch, sizes, rng):
    params = perturbed_mlp(sizes, rng, activation)
    x = rng.standard_normal((batch, sizes[0]))
    R = rng.standard_normal((batch, sizes[-1]))             # random projection of the output
    loss = lambda p: np.sum(mlp_forward(p, x)[0] * R)
    assert check_grad(loss, lambda p: mlp_backward(R, mlp_forward(p, x)[1])[0], params) < 1e-7
    loss_x = lambda x_: np.sum(mlp_forward(params, x_)[0] * R)
    assert check_grad(loss_x, lambda x_: mlp_backward(R, mlp_forward(params, x_)[1])[1], x) < 1e-7


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_jvp_matches_finite_differences(activation, rng):
    params = perturbed_mlp([4, 6, 5, 3], rng, activation)
    x, dx = rng.standard_normal((8, 4)), rng.standard_normal((8, 4))
    dparams = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    _, cache = mlp_forward(params, x)
    shifted = lambda t: mlp_forward({k: params[k] + t * dparams[k] for k in params}, x + t * dx,
                                    activation=activation)[0]
    eps = 1e-6
    numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
    np.testing.assert_allclose(mlp_jvp(dparams, cache, dx=dx), numeric, rtol=1e-7, atol=1e-7)
    numeric_p = (mlp_forward({k: params[k] + eps * dparams[k] for k in params}, x, activation)[0]
                 - mlp_forward({k: params[k] - eps * dparams[k] for k in params}, x, activation)[0]) / (2 * eps)
    np.testing.assert_allclose(mlp_jvp(dparams, cache), numeric_p, rtol=1e-7, atol=1e-7)


def test_jvp_is_the_adjoint_of_backward(rng):
    """<J v, u> = <v, J^T u>: forward and reverse mode describe the same Jacobian (to roundoff)."""
    params = perturbed_mlp([3, 7, 2], rng, "tanh")
    x = rng.standard_normal((5, 3))
    _, cache = mlp_forward(params, x)
    v = {k: rng.standard_normal(w.shape) for k, w in params.items()}
    u = rng.standard_normal((5, 2))
    lhs = np.sum(mlp_jvp(v, cache) * u)
    rhs = flatten(v) @ flatten(mlp_backward(u, cache)[0])
    assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(lhs))


def test_backward_is_linear_in_dout_and_repeatable(rng):
    params = perturbed_mlp([4, 6, 3], rng, "tanh")
    x = rng.standard_normal((6, 4))
    _, cache = mlp_forward(params, x)
    d1, d2 = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    g1, dx1 = mlp_backward(d1, cache)
    g2, dx2 = mlp_backward(d2, cache)
    g12, dx12 = mlp_backward(2.0 * d1 - 3.0 * d2, cache)
    np.testing.assert_allclose(flatten(g12), 2.0 * flatten(g1) - 3.0 * flatten(g2), atol=1e-12)
    np.testing.assert_allclose(dx12, 2.0 * dx1 - 3.0 * dx2, atol=1e-12)
    again, dx_again = mlp_backward(d1, cache)
    assert np.array_equal(flatten(again), flatten(g1)) and np.array_equal(dx_again, dx1)
    assert mlp_backward(d1, cache, need_dx=False)[1] is None


def test_activation_is_remembered_and_can_be_overridden(rng):
    params = init_mlp([3, 4, 2], rng, activation="relu")
    x = rng.standard_normal((5, 3))
    assert np.array_equal(mlp_forward(params, x)[0], mlp_forward(dict(params), x, activation="relu")[0])
    assert not np.allclose(mlp_forward(params, x)[0], mlp_forward(dict(params), x)[0])  # plain dict: tanh
    assert unflatten(flatten(params), params).activation == "relu"
    assert params.copy().activation == "relu"


@pytest.mark.parametrize("shape", [(4, 4), (3, 7), (9, 2)])
def test_orthogonal_init_has_orthonormal_rows_or_columns(shape, rng):
    W = orthogonal(shape, rng, gain=2.0)
    small = W.T @ W if shape[0] >= shape[1] else W @ W.T
    np.testing.assert_allclose(small, 4.0 * np.eye(min(shape)), atol=1e-12)
    assert W.flags.c_contiguous


def test_init_gains_biases_and_determinism():
    params = init_mlp([4, 16, 16, 2], np.random.default_rng(0), out_gain=0.01)
    assert list(params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all(not params[f"b{k}"].any() for k in (1, 2, 3))
    np.testing.assert_allclose(params["W2"].T @ params["W2"], 2.0 * np.eye(16), atol=1e-12)
    np.testing.assert_allclose(params["W3"].T @ params["W3"], 1e-4 * np.eye(2), atol=1e-15)
    again = init_mlp([4, 16, 16, 2], np.random.default_rng(0), out_gain=0.01)
    assert np.array_equal(flatten(params), flatten(again))


def test_flatten_unflatten_round_trip(rng):
    params = perturbed_mlp([3, 5, 2], rng, "tanh")
    params["log_std"] = np.array([0.1, -0.2])               # extra keys travel too
    theta = flatten(params)
    assert theta.shape == (3 * 5 + 5 + 5 * 2 + 2 + 2,)
    back = unflatten(theta, params)
    assert list(back) == list(params)
    assert all(np.array_equal(back[k], params[k]) for k in params)
    theta[0] = 99.0                                          # unflatten copies: no aliasing
    assert back["W1"][0, 0] != 99.0
    with pytest.raises(ValueError, match="vector of 34 numbers"):
        unflatten(np.zeros(33), params)


def test_bad_inputs_raise_named_errors(rng):
    params = init_mlp([3, 4, 2], rng)
    with pytest.raises(ValueError, match="x must be finite"):
        mlp_forward(params, np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
        mlp_forward(params, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="x must have 2 dimension"):
        mlp_forward(params, np.zeros(3))
    with pytest.raises(ValueError, match="float64"):
        mlp_forward(params, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ConfigError, match="activation must be one of"):
        init_mlp([3, 4, 2], rng, activation="sigmoid")
    with pytest.raises(ConfigError, match="sizes"):
        init_mlp([3], rng)
    _, cache = mlp_forward(params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        mlp_backward(np.zeros((2, 3)), cache)
    with pytest.raises(ValueError, match="missing"):
        mlp_jvp({"W1": np.zeros((3, 4))}, cache)
    assert isinstance(params, MLPParams)


def test_xavier_init_has_the_glorot_range_and_variance(rng):
    params = init_mlp([300, 200, 2], rng, init="xavier", hidden_gain=1.0, out_gain=0.5)
    a1 = np.sqrt(6.0 / 500)                                  # gain 1 on the hidden layer
    W1 = params["W1"]
    assert W1.shape == (300, 200) and np.abs(W1).max() <= a1 and np.abs(W1).max() > 0.99 * a1
    assert abs(W1.var() / (a1 * a1 / 3.0) - 1.0) < 0.02      # U(-a, a) has variance a^2 / 3
    assert np.abs(params["W2"]).max() <= 0.5 * np.sqrt(6.0 / 202) and not np.any(params["b1"])
    with pytest.raises(ConfigError, match="init must be one of"):
        init_mlp([3, 2], rng, init="he")
