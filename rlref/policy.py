"""A policy is an MLP whose output parameterizes a distribution.

Discrete actions: the MLP's output is the logits of a ``Categorical``. 1-D Box actions: the MLP's
output is the mean of a ``DiagGaussian`` whose log standard deviation is a state-independent
parameter ``params["log_std"]`` (shape (A,)); that key is what marks a Gaussian policy.

Backprop through a policy is the chain rule in two steps: the distribution gives the derivative
with respect to its own parameters (logits, or mean and log_std); ``mlp_backward`` carries it to
the weights. With J_i = d(distribution parameters of sample i) / d theta,

    d/dtheta mean_i l_i = (1/N) sum_i J_i^T (dl_i / d dist_i)                    (POL.1)

so, for example, the score of sample i is J_i^T dlogp_i. Forward mode gives J_i v (``policy_jvp``).

The Fisher matrix of the policy (the Hessian of the mean KL at theta_old, notebook 00) is J^T M J,
with M_i the Fisher of the distribution in its own parameters (DIST.4, DIST.8). Its product with a
vector needs no P x P matrix: one forward-mode pass, one product with M_i, one backward pass. It is
(TRPO.6), derived in notebooks/04_trpo.ipynb; the mean KL's gradient is (POL.1) applied to the KL's
own derivative (DIST.3, DIST.7):

    F v = (1/N) sum_i J_i^T (M_i (J_i v)) + damping v                             (TRPO.6)
    grad KLbar(theta) = (1/N) sum_i J_i^T dKL(pi_old,i || pi_theta,i) / d dist_i    (POL.3)

NPG, TRPO and the gradient checks all use these two.
"""
import numpy as np

from rlref.distributions import Categorical, DiagGaussian
from rlref.nn import flatten, init_mlp, mlp_backward, mlp_forward, mlp_jvp, unflatten


def init_policy(sizes, rng, gaussian=False, activation="tanh", out_gain=0.01, log_std=0.0,
                hidden_gain=np.sqrt(2.0), init="orthogonal"):
    """Policy parameters: an MLP [D, H..., A] (+ "log_std" (A,) for a Gaussian policy).

    out_gain=0.01 starts the policy near uniform / near a zero mean (an implementation detail from
    the PPO literature, Andrychowicz et al. 2021).
    """
    params = init_mlp(sizes, rng, activation=activation, out_gain=out_gain, hidden_gain=hidden_gain, init=init)
    if gaussian:
        params["log_std"] = np.full(sizes[-1], float(log_std))     # (A,)
    return params


def init_policy_from(config, obs_dim, act_dim, gaussian, rng, **init):
    """init_policy of an algorithm's Config: sizes [D, *config.hidden, A], its hidden activation and
    initial log_std; `init` passes init_policy's out_gain, hidden_gain and init through."""
    return init_policy([obs_dim, *config.hidden, act_dim], rng, gaussian, config.activation,
                       log_std=config.log_std_init, **init)


def is_gaussian(params):
    return "log_std" in params


def policy_forward(params, obs, check=True):
    """dist, cache = policy_forward(params, obs): obs (N, D) -> a distribution over N actions.

    obs is checked (finite float64, the network's input size) unless check=False; the network's
    output needs no check."""
    out, cache = mlp_forward(params, obs, check=check)              # (N, A)
    if is_gaussian(params):
        return DiagGaussian(out, params["log_std"], check=False), cache
    return Categorical(out, check=False), cache


def policy_backward(ddist, cache):
    """grads (dict like params) from the derivative w.r.t. the distribution's parameters.  (POL.1)

    ddist: dlogits (N, A) for a Categorical, (dmean (N, A), dlog_std (N, A)) for a Gaussian; the
    shared log_std collects the sum over samples.
    """
    if isinstance(ddist, tuple):
        dmean, dlog_std = ddist
        grads, _ = mlp_backward(dmean, cache, need_dx=False)
        grads["log_std"] = np.asarray(dlog_std).sum(axis=0)         # (A,)
        return grads
    grads, _ = mlp_backward(ddist, cache, need_dx=False)
    return grads


def policy_jvp(dparams, cache):
    """J v: the change of the distribution's parameters along a parameter tangent dparams."""
    dout = mlp_jvp(dparams, cache)                                  # (N, A)
    if "log_std" in dparams:
        return dout, np.broadcast_to(dparams["log_std"], dout.shape)
    return dout


def scale_rows(ddist, w):
    """Multiply a per-sample derivative (an array (N, A) or a Gaussian's (dmean, dlog_std)) by w:
    one weight per sample (N,), or one number for every sample."""
    w = w[:, None] if np.ndim(w) else w
    if isinstance(ddist, tuple):
        return tuple(d * w for d in ddist)
    return ddist * w


def add(ddist, other):
    """Sum of two per-sample derivatives of the same kind (array or Gaussian pair)."""
    if isinstance(ddist, tuple):
        return tuple(a + b for a, b in zip(ddist, other))
    return ddist + other


def fisher_vector_product(policy, obs, damping=0.0):
    """v -> F v + damping v (TRPO.6), matrix-free: one forward pass now, then per product one
    forward-mode pass (J_i v) and one reverse-mode pass (J_i^T ...). v and F v are flat (P,)."""
    dist, cache = policy_forward(policy, obs)
    N = obs.shape[0]

    def fvp(v):
        _, MJv = _fisher_forward(dist, cache, v, policy)
        return flatten(policy_backward(MJv, cache)) / N + damping * v   # (P,)   (TRPO.6)
    return fvp


def _fisher_forward(dist, cache, v, like):
    """The forward half of (TRPO.6): J_i v by forward mode, then M_i J_i v."""
    Jv = policy_jvp(unflatten(v, like, copy=False), cache)          # J_i v, (N, A) or a pair
    return Jv, dist.fisher_product(Jv)                              # M_i J_i v


def fisher_quadratic(dist, cache, x, like):
    """x^T F x (no damping) = mean_i (J_i x)^T M_i (J_i x) of (TRPO.6), by one forward-mode pass and
    no backward pass; dist and cache from policy_forward(like, obs)."""
    Jx, MJx = _fisher_forward(dist, cache, x, like)
    if isinstance(Jx, tuple):
        return float(sum((a * b).sum() for a, b in zip(Jx, MJx)) / Jx[0].shape[0])
    return float((Jx * MJx).sum() / Jx.shape[0])


def mean_kl_grad(policy, old_dist, theta, obs):
    """grad KLbar(theta) (POL.3), flat (P,): dKL(old || new) / d new from (DIST.3, DIST.7), then
    backprop; theta is the flat parameter vector of the new policy, shaped like `policy`."""
    new_dist, cache = policy_forward(unflatten(theta, policy, copy=False), obs)
    N = obs.shape[0]
    return flatten(policy_backward(scale_rows(old_dist.dkl(new_dist), 1.0 / N), cache))


def mean_kl(theta, old_dist, like, obs):
    """mean_i KL(pi_old(.|s_i) || pi_theta(.|s_i)) at the flat theta."""
    return float(old_dist.kl(policy_forward(unflatten(theta, like), obs)[0]).mean())


def matrix_free_fisher(params, obs):
    """F (P, P) column by column from the matrix-free product F e_j of (TRPO.6)."""
    fvp = fisher_vector_product(params, obs)
    return np.stack([fvp(e) for e in np.eye(flatten(params).size)], axis=1)
