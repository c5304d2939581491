"""The checker itself: exact on a known gradient, catches a 0.1 %-wrong one, refuses float32,
restores its input bit for bit, and names the worst entry."""
import numpy as np
import pytest

from rlref.errors import GradientCheckError
from rlref.gradcheck import check_directional, check_grad, numerical_grad, numerical_jacobian


def quadratic(rng, n=6):
    A = rng.standard_normal((n, n))
    A = A + A.T
    b = rng.standard_normal(n)
    f = lambda x: 0.5 * x @ A @ x + b @ x
    grad = lambda x: A @ x + b
    return f, grad


def test_numerical_grad_of_a_quadratic_is_exact_to_roundoff(rng):
    f, grad = quadratic(rng)
    x = rng.standard_normal(6)
    np.testing.assert_allclose(numerical_grad(f, x), grad(x), atol=1e-8)
    assert check_grad(f, grad, x) < 1e-8


def test_step_is_relative_for_large_entries():
    """With h = 1e-6 * max(1, |x|) the check stays accurate at |x| = 1e6 (a fixed h would not)."""
    f, grad = (lambda x: np.sum(np.sin(x / 1e6))), (lambda x: np.cos(x / 1e6) / 1e6)
    x = np.array([1e6, -2e6, 3.0])
    assert check_grad(f, grad, x) < 1e-9


@pytest.mark.parametrize("scale_all", [False, True])
def test_a_gradient_that_is_one_tenth_of_a_percent_wrong_is_caught(scale_all, rng):
    f, grad = quadratic(rng)
    x = rng.standard_normal(6)
    g = grad(x)
    i = int(np.argmax(np.abs(g)))                                  # an entry of size ~1 or more

    def wrong(x_):
        out = grad(x_)
        if scale_all:
            return out * 1.001
        out[i] *= 1.001
        return out
    where = r"x\[\d+\]" if scale_all else rf"x\[{i}\]"
    with pytest.raises(GradientCheckError, match=where + ".*analytic.*numerical.*error") as info:
        check_grad(f, wrong, x)
    assert isinstance(info.value, AssertionError)


def test_failure_names_the_parameter_and_position(rng):
    params = {"W1": rng.standard_normal((2, 3)), "b1": rng.standard_normal(3)}
    f = lambda p: np.sum(p["W1"] ** 2) + np.sum(p["b1"] ** 3)

    def wrong(p):
        g = {"W1": 2 * p["W1"], "b1": 3 * p["b1"] ** 2}
        g["W1"][1, 2] += 0.01
        return g
    with pytest.raises(GradientCheckError, match=r"W1\[1, 2\]"):
        check_grad(f, wrong, params)


def test_refuses_float32_and_non_arrays():
    f, g = (lambda x: float(np.sum(x ** 2))), (lambda x: 2 * x)
    with pytest.raises(TypeError, match="float64"):
        check_grad(f, g, np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        numerical_grad(f, {"w": np.ones(3, dtype=np.float32)})
    with pytest.raises(TypeError, match="float64"):
        check_directional(f, g, np.ones(3, dtype=np.float32), np.random.default_rng(0))


def test_input_is_restored_bit_for_bit_even_when_not_contiguous(rng):
    """A transposed weight matrix is a non-contiguous view; reshape(-1) would copy it and the
    perturbation would be lost (a bug this project once had)."""
    W = rng.standard_normal((3, 4)).T                                # (4, 3), not C-contiguous
    before = W.copy()
    f = lambda w: np.sum(np.tanh(w) * np.arange(12.0).reshape(4, 3))
    g = lambda w: (1 - np.tanh(w) ** 2) * np.arange(12.0).reshape(4, 3)
    assert check_grad(f, g, W) < 1e-8
    assert np.array_equal(W, before) and W.tobytes() == before.tobytes()


def test_directional_check(rng):
    f, grad = quadratic(rng, n=50)
    x = rng.standard_normal(50)
    assert check_directional(f, grad, x, rng) < 1e-8
    with pytest.raises(GradientCheckError, match="directional check failed"):
        check_directional(f, lambda x_: grad(x_) * 1.001, x, rng)


def test_numerical_jacobian_of_a_linear_map(rng):
    M = rng.standard_normal((3, 5))
    np.testing.assert_allclose(numerical_jacobian(lambda x: M @ x, rng.standard_normal(5)), M, atol=1e-9)


def test_shape_mismatch_is_reported(rng):
    with pytest.raises(GradientCheckError, match="shape"):
        check_grad(lambda x: np.sum(x), lambda x: np.ones(2), np.ones(3))
