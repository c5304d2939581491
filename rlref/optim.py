"""Optimizers with explicit state, on flat parameter vectors, and global-norm gradient clipping.

Every step *descends* a loss: theta_new = theta - (step). To ascend an objective J, pass -grad J.
States are plain dicts of arrays (saved as they are in a checkpoint). Steps are pure: they return a
new theta and a new state and never modify their inputs, so a step that would produce NaN or inf
raises ``NonFiniteError`` and the caller still holds the old parameters and state untouched.

SGD with momentum mu (mu = 0 is plain SGD):

    v <- mu v + g,   theta <- theta - lr v                                        (OPT.1)

Adam (Kingma & Ba 2015, Algorithm 1), t counting from 1:

    m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1^t),      v_hat = v / (1 - beta2^t)
    theta <- theta - lr m_hat / (sqrt(v_hat) + eps)                               (OPT.2)

epsilon enters *outside* the square root and *after* bias correction, exactly as in the paper
(and PyTorch's Adam). It bounds the step of a coordinate whose gradients have been ~0; with
eps = 1e-8 that bound is lr * |m_hat| / 1e-8, so PPO implementations often use eps = 1e-5.

Global-norm clipping (Pascanu et al. 2013): if ||g|| > max_norm, g <- g * max_norm / ||g||, where
||g|| is the Euclidean norm of all gradients together.                             (OPT.3)

A step size decayed linearly over the training budget (a learning rate, as A3C decays it, Mnih et
al. 2016; or a KL radius), with f in [0, 1] the fraction of the budget already used:

    step_size(f) = step_size_0 (1 - f)                                             (OPT.4)

Hyperparameters and gradients are checked when a caller passes them; rlref's training loops,
whose settings were validated once in their Config and whose gradients come from their own
backward passes, pass check=False. A step that would produce NaN or inf parameters always raises.
"""
import numpy as np

from rlref.errors import NonFiniteError, require_float


def _check_step_inputs(theta, grad):
    if np.shape(grad) != np.shape(theta):
        raise ValueError(f"grad must have the shape of theta, {np.shape(theta)}, got {np.shape(grad)}")
    if not np.isfinite(grad).all():
        raise NonFiniteError(f"grad contains NaN or inf at index {int(np.argmin(np.isfinite(grad)))}; "
                             f"the parameters were not changed")


def _commit(theta_new, what):
    if not np.isfinite(theta_new).all():
        raise NonFiniteError(f"the {what} step produced NaN or inf parameters; the parameters were "
                             f"not changed")
    return theta_new


def sgd_init(theta):
    return {"velocity": np.zeros_like(theta)}


def sgd_step(theta, grad, state, lr, momentum=0.0, check=True):
    """theta, state = sgd_step(theta, grad, state, lr, momentum).  (OPT.1)"""
    if check:
        lr = require_float("lr", lr, low=0.0, low_open=True)
        momentum = require_float("momentum", momentum, low=0.0, high=1.0, high_open=True)
        _check_step_inputs(theta, grad)
    velocity = momentum * state["velocity"] + grad                  # (P,)   (OPT.1)
    theta_new = _commit(theta - lr * velocity, "SGD")
    return theta_new, {"velocity": velocity}


def adam_init(theta):
    return {"m": np.zeros_like(theta), "v": np.zeros_like(theta), "t": 0}


def adam_step(theta, grad, state, lr, beta1=0.9, beta2=0.999, eps=1e-8, check=True):
    """theta, state = adam_step(theta, grad, state, lr, ...).  (OPT.2)"""
    if check:
        lr = require_float("lr", lr, low=0.0, low_open=True)
        beta1 = require_float("beta1", beta1, low=0.0, high=1.0, high_open=True)
        beta2 = require_float("beta2", beta2, low=0.0, high=1.0, high_open=True)
        eps = require_float("eps", eps, low=0.0, low_open=True)
        _check_step_inputs(theta, grad)
    t = int(state["t"]) + 1
    m = beta1 * state["m"] + (1.0 - beta1) * grad                   # (P,) first moment
    v = beta2 * state["v"] + (1.0 - beta2) * grad * grad            # (P,) second moment
    m_hat = m / (1.0 - beta1 ** t)                                  # bias corrections
    v_hat = v / (1.0 - beta2 ** t)
    theta_new = _commit(theta - lr * m_hat / (np.sqrt(v_hat) + eps), "Adam")   # (OPT.2)
    return theta_new, {"m": m, "v": v, "t": t}


def linear_decay(step_size, frac, decay=True):
    """step_size (1 - frac) (OPT.4), or step_size itself when decay is False. frac: the fraction of
    the training budget already used, in [0, 1)."""
    return step_size * (1.0 - frac) if decay else step_size


def clip_grad_norm(grad, max_norm, check=True):
    """(clipped grad, norm before clipping). grad: a flat array or a dict of arrays.  (OPT.3)
    A non-finite gradient always raises: its norm is not finite."""
    if check:
        max_norm = require_float("max_norm", max_norm, low=0.0, low_open=True)
    parts = list(grad.values()) if isinstance(grad, dict) else [grad]
    norm = float(np.sqrt(sum(float(np.sum(p * p)) for p in parts)))
    if not np.isfinite(norm):
        raise NonFiniteError(f"gradient norm is {norm}; the parameters were not changed")
    scale = min(1.0, max_norm / norm) if norm > 0.0 else 1.0
    if scale == 1.0:                                                # nothing to clip
        return grad, norm
    if isinstance(grad, dict):
        return {k: v * scale for k, v in grad.items()}, norm
    return grad * scale, norm
