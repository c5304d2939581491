"""The table of every hand-derived derivative in rlref, checked against finite differences.

``python -m rlref gradcheck`` prints ``run_checks`` with ``format_table``; the test suite runs the same
table. Each group of ALL_CHECKS draws its random inputs and returns entries in the format of
``rlref.gradcheck.run_table``: gradient checks (quantity, shape, fn, x), fn(x) -> (value, gradient,
...), and agreements (quantity, shape, measure), measure() the error between two computations of one
quantity, computed when its row runs (so that a homework stub fails its own row only); fn and measure
are named functions, their fixed arguments bound by functools.partial. A check passes at error <= TOL.
A vector-valued out(x) is checked through a random projection: d/dx sum(out * proj) = backward(proj).
"""
from functools import partial

import numpy as np

from rlref.algos import a2c, npg, ppo, reinforce, trpo
from rlref.distributions import Categorical, DiagGaussian
from rlref.gradcheck import format_table, numerical_jacobian, rel_error, run_table   # format_table: re-exported
from rlref.nn import ACTIVATIONS, flatten, init_mlp, mlp_backward, mlp_forward, mlp_jvp, splitter, unflatten
from rlref.policy import (fisher_quadratic, fisher_vector_product, init_policy, matrix_free_fisher, mean_kl,
                          mean_kl_grad, policy_backward, policy_forward)
from rlref.value import value_loss_and_grad

TOL = 1e-6


def _max_error(a, n):
    return float(rel_error(a, n).max())


# ------------------------------------------------------------------ the MLP (MLP.1-4)

def _random_mlp(rng, activation, batch):
    """Random MLP, input and output projection. For relu, redraw until every hidden layer has an
    active unit for every sample: with all units of a layer off, both gradients are exactly 0 and
    the check would compare nothing."""
    sizes = [3, 5, 4, 2]
    for _ in range(100):
        params = init_mlp(sizes, rng, activation=activation)
        for k in params:                                    # nonzero biases exercise every term
            params[k] = params[k] + 0.3 * rng.standard_normal(params[k].shape)
        x = rng.standard_normal((batch, sizes[0]))
        hidden = mlp_forward(params, x)[1]["hs"][1:]        # h_1 .. h_{L-1}
        if all((h != 0).any(axis=1).all() for h in hidden):
            break
    proj = rng.standard_normal((batch, sizes[-1]))          # random projection of the output
    return params, x, proj


def _mlp_row(params, x, proj, wrt="params"):
    """sum(out * proj) and its gradient in the parameters or (wrt="x") in the input (MLP.2-3)."""
    out, cache = mlp_forward(params, x)
    grads, dx = mlp_backward(proj, cache)
    return np.sum(out * proj), grads if wrt == "params" else dx


def _jvp_error(params, x, v, numeric):
    """mlp_jvp along the parameter tangent v against the central differences `numeric`."""
    return _max_error(mlp_jvp(unflatten(v, params), mlp_forward(params, x)[1]), numeric)


def mlp_checks(rng, eps=1e-6):
    """Backprop (MLP.2-3) w.r.t. every parameter and the input, and forward mode (MLP.4)."""
    table = []
    for activation in ACTIVATIONS:
        for batch in (1, 7):
            params, x, proj = _random_mlp(rng, activation, batch)
            table.append((f"MLP {activation} d/dparams, batch {batch}", f"P={flatten(params).size}",
                          partial(_mlp_row, x=x, proj=proj), params))
            table.append((f"MLP {activation} d/dx, batch {batch}", str(x.shape),
                          partial(_mlp_row, params, proj=proj, wrt="x"), x))
        theta = flatten(params)                             # forward mode, on the batch of 7
        v = rng.standard_normal(theta.shape)
        out = [mlp_forward(unflatten(theta + h, params), x)[0] for h in (eps * v, -eps * v)]
        table.append((f"MLP {activation} forward mode (jvp)", "(7, 2)",
                      partial(_jvp_error, params, x, v, (out[0] - out[1]) / (2 * eps))))
    return table


# ------------------------------------------------------------------ distributions (DIST.1-7)

def _dist_row(x, w, method, args=(), p=None):
    """w . f(d) and its derivative in the own parameters x of the distribution d (logits, or
    {"mean", "log_std"}), f = d.method(*args) with derivative d.d<method>(*args), or for
    method="kl" f = p.kl(d) with derivative p.dkl(d), taken in the second argument."""
    d = DiagGaussian(x["mean"], x["log_std"]) if isinstance(x, dict) else Categorical(x)
    if method == "kl":
        value, deriv = p.kl(d), p.dkl(d)
    else:
        value, deriv = getattr(d, method)(*args), getattr(d, "d" + method)(*args)
    if isinstance(x, dict):
        return w @ value, {"mean": w[:, None] * deriv[0], "log_std": w[:, None] * deriv[1]}
    return w @ value, w[:, None] * deriv


def categorical_checks(rng, N=6, A=4):
    """Score (DIST.1), entropy (DIST.2), KL (DIST.3) in the logits."""
    z, zq = rng.standard_normal((N, A)), rng.standard_normal((N, A))
    a = rng.integers(A, size=N)
    w = rng.standard_normal(N)                              # random projection of per-sample values
    return [("Categorical d logp / d logits", str(z.shape), partial(_dist_row, w=w, method="logp", args=(a,)), z),
            ("Categorical d entropy / d logits", str(z.shape), partial(_dist_row, w=w, method="entropy"), z),
            ("Categorical d KL(p||q) / d logits_q", str(zq.shape),
             partial(_dist_row, w=w, method="kl", p=Categorical(z)), zq)]


def gaussian_checks(rng, N=6, D=3):
    """Score (DIST.5), entropy (DIST.6), KL (DIST.7) in (mean, log_std)."""
    mean, log_std = rng.standard_normal((N, D)), 0.3 * rng.standard_normal((N, D))
    mean_q, log_std_q = rng.standard_normal((N, D)), 0.3 * rng.standard_normal((N, D))
    a = rng.standard_normal((N, D))
    w = rng.standard_normal(N)
    x, shape = {"mean": mean, "log_std": log_std}, f"({N}, {D}) x2"    # a check restores x bit for bit
    return [("Gaussian d logp / d(mean, log_std)", shape, partial(_dist_row, w=w, method="logp", args=(a,)), x),
            ("Gaussian d entropy / d(mean, log_std)", shape, partial(_dist_row, w=w, method="entropy"), x),
            ("Gaussian d KL(p||q) / d(mean_q, log_std_q)", shape, partial(_dist_row, w=w, method="kl",
                                                                          p=DiagGaussian(mean, log_std)),
             {"mean": mean_q, "log_std": log_std_q})]


# ------------------------------------------------------------------ through the policy network

def _policy(rng, gaussian, N=5, sizes=(3, 4, 2)):
    params = init_policy(list(sizes), rng, gaussian=gaussian, out_gain=1.0)
    if gaussian:
        params["log_std"] = 0.3 * rng.standard_normal(sizes[-1])
    obs = rng.standard_normal((N, sizes[0]))
    return params, obs


def _kind(gaussian):
    return "Gaussian" if gaussian else "Categorical"


def _sampled(rng, gaussian, N):
    """(kind, policy, obs, actions sampled from the policy) for one policy kind."""
    policy, obs = _policy(rng, gaussian, N=N)
    return _kind(gaussian), policy, obs, policy_forward(policy, obs)[0].sample(rng)


def _mean_logp(params, obs, actions):
    """mean_i log pi(a_i|s_i) and its gradient, the score (DIST.1, DIST.5) carried back by (POL.1)."""
    dist, cache = policy_forward(params, obs)
    score, N = dist.dlogp(actions), obs.shape[0]
    return dist.logp(actions).mean(), policy_backward(tuple(s / N for s in score) if isinstance(score, tuple)
                                                      else score / N, cache)


def _mean_kl(theta, policy, old_dist, obs):
    return mean_kl(theta, old_dist, policy, obs), mean_kl_grad(policy, old_dist, theta, obs)


def _kl_hessian(policy, obs):
    """The Hessian of the mean KL at theta_old: central differences of its gradient (POL.3)."""
    old_dist = policy_forward(policy, obs)[0]
    return numerical_jacobian(partial(mean_kl_grad, policy, old_dist, obs=obs), flatten(policy))


def _explicit_fisher(policy, obs):
    return npg.fisher_matrix(npg.fisher_factor(policy, obs, "exact"))      # Z^T Z (NPG.3)


def _hessian_vs(fisher, policy, obs):
    return _max_error(fisher(policy, obs), _kl_hessian(policy, obs))


def _quadratic_vs_explicit(dist, cache, x, policy, obs):
    return _max_error(fisher_quadratic(dist, cache, x, policy), x @ _explicit_fisher(policy, obs) @ x)


def policy_checks(rng):
    """Through the network: the score (POL.1), the mean-KL gradient (POL.3), and the Fisher of
    (TRPO.6) as the Hessian of the mean KL at theta_old (finite differences of (POL.3)), against the
    explicit Z^T Z of npg (NPG.3), and its quadratic form."""
    return _policy_entries(rng, False) + _policy_entries(rng, True)


def _policy_entries(rng, gaussian):
    """The entries of policy_checks for one policy kind."""
    kind = _kind(gaussian)
    params, obs = _policy(rng, gaussian)
    a = policy_forward(params, obs)[0].sample(rng)
    theta_old = flatten(params)
    theta = theta_old + 0.3 * rng.standard_normal(theta_old.size)      # away from the minimum
    x = rng.standard_normal(theta_old.size)
    P = theta_old.size
    dist, cache = policy_forward(params, obs)
    return [(f"{kind} policy: d mean logp / d theta", f"P={P}", partial(_mean_logp, obs=obs, actions=a), params),
            (f"{kind} policy: mean KL gradient (POL.3) d/dtheta", f"P={P}",
             partial(_mean_kl, policy=params, old_dist=dist, obs=obs), theta),
            (f"{kind} policy: Hessian of mean KL at theta_old vs J^T M J", f"({P}, {P})",
             partial(_hessian_vs, matrix_free_fisher, params, obs)),
            (f"{kind} policy: x^T F x one forward pass vs explicit", "()",
             partial(_quadratic_vs_explicit, dist, cache, x, params, obs))]


# ------------------------------------------------------------------ the losses the algorithms descend

def _a2c(x, wrt, **data):
    """A2C's loss (AC.3) and its gradient in theta (wrt="policy", x the policy) or in phi (wrt="value")."""
    loss, (grads_pi, grads_v), _ = a2c.loss_and_grad(**{wrt: x}, **data)
    return loss, grads_pi if wrt == "policy" else grads_v


def _ppo_objective(params, obs, dist_old, actions, logp_old, A_hat, config):
    """PPO's policy loss through the network: (PPO.1) or (PPO.3) at beta = 0.5, carried back by (POL.1)."""
    dist, cache = policy_forward(params, obs)
    loss, ddist, _ = ppo.policy_loss_and_grad(dist, dist_old, actions, logp_old, A_hat, config, 0.5)
    return loss, policy_backward(ddist, cache)


def _ppo_logits(z, dist_old, actions, logp_old, A_hat, config):
    """The same loss at the distribution's own level, in the logits z."""
    return ppo.policy_loss_and_grad(Categorical(z), dist_old, actions, logp_old, A_hat, config, 0.5)


def loss_checks(rng):
    """The losses the algorithms descend: REINFORCE (PG.4), A2C (AC.3) in theta and in phi, TRPO's
    surrogate (TRPO.1-2) away from theta_old, PPO's clipped (PPO.1-2) and penalty (PPO.3) objectives
    in the distribution's parameters and through the network, PPO's joint loss (PPO.6), the value
    losses (V.1), (PPO.5), 1e-3 or more away from every kink (the flat regions: exact zeros, tests/)."""
    table = []
    for gaussian in (False, True):
        table += _algorithm_loss_entries(rng, gaussian) + _ppo_entries(rng, gaussian)
    V_old, R_hat = rng.standard_normal(20), rng.standard_normal(20)
    v = V_old + np.where(rng.random(20) < 0.5, 1, -1) * rng.uniform(0.05, 0.5, 20)   # |v - V_old| != 0.2
    v = np.where(np.abs(np.abs(v - V_old) - 0.2) < 1e-3, v + 0.01, v)
    table.append(("value loss (V.1)", str(v.shape), partial(value_loss_and_grad, R_hat=R_hat), v))
    table.append(("PPO clipped value loss (PPO.5)", str(v.shape),
                  partial(value_loss_and_grad, R_hat=R_hat, V_old=V_old, clip_eps=0.2), v))
    return table


def _algorithm_loss_entries(rng, gaussian):
    kind, policy, obs, actions = _sampled(rng, gaussian, N=8)
    A_hat, R_hat = rng.standard_normal(8), rng.standard_normal(8)
    value = init_mlp([obs.shape[1], 4, 1], rng, out_gain=1.0)
    config = a2c.Config(ent_coef=0.3, vf_coef=0.7)
    theta_old = flatten(policy) + 0.1 * rng.standard_normal(flatten(policy).size)
    logp_old = policy_forward(unflatten(theta_old, policy), obs)[0].logp(actions)   # ratio != 1
    P, data = f"P={flatten(policy).size}", dict(obs=obs, actions=actions, A_hat=A_hat, R_hat=R_hat, config=config)
    return [(f"REINFORCE loss (PG.4), {kind}", P, partial(reinforce.loss_and_grad, obs=obs, actions=actions, w=A_hat),
             policy),
            (f"A2C loss (AC.3) d/dtheta, with entropy, {kind}", P, partial(_a2c, wrt="policy", value=value, **data),
             policy),
            (f"A2C loss (AC.3) d/dphi (value term), {kind}", f"P={flatten(value).size}",
             partial(_a2c, wrt="value", policy=policy, **data), value),
            (f"TRPO surrogate (TRPO.1) d/dtheta, {kind}", P,
             partial(trpo.surrogate_and_grad, obs=obs, actions=actions, A_hat=A_hat, logp_old=logp_old), policy)]


def _ppo_entries(rng, gaussian):
    kind = _kind(gaussian)
    old, obs = _policy(rng, gaussian, N=12)
    dist_old = policy_forward(old, obs)[0]
    actions, A_hat = dist_old.sample(rng), rng.standard_normal(12)
    logp_old = dist_old.logp(actions)
    for _ in range(100):                                   # a theta with no ratio near 1 +- eps
        theta = unflatten(flatten(old) + 0.3 * rng.standard_normal(flatten(old).size), old)
        ratio = np.exp(policy_forward(theta, obs)[0].logp(actions) - logp_old)
        if np.min(np.abs(ratio[:, None] - [0.8, 1.2])) > 1e-3:
            break
    table, data = [], dict(dist_old=dist_old, actions=actions, logp_old=logp_old, A_hat=A_hat)
    for objective in ("clip", "penalty"):
        config = ppo.Config(objective=objective, ent_coef=0.1, kl_target=1e-4)   # hinge active
        tag = "PPO.1" if objective == "clip" else "PPO.3"
        table.append((f"PPO {objective} objective with entropy ({tag}), {kind}", f"P={flatten(theta).size}",
                      partial(_ppo_objective, obs=obs, config=config, **data), theta))
        if not gaussian:                                   # at its own level: no backprop needed
            logits = policy_forward(theta, obs)[0].logits.copy()
            table.append((f"PPO {objective} objective d/dlogits ({tag})", str(logits.shape),
                          partial(_ppo_logits, config=config, **data), logits))
    value = init_mlp([obs.shape[1], 4, 1], rng, out_gain=1.0)
    x = np.concatenate([flatten(theta), flatten(value)])
    mb = {"obs": obs, "actions": actions, "logp_old": logp_old, "A_hat": A_hat,
          "R_hat": rng.standard_normal(12), "V_old": rng.standard_normal(12), "dist_old": dist_old}
    config = ppo.Config(ent_coef=0.1, vf_coef=0.7, normalize_adv="none")
    table.append((f"PPO joint loss (PPO.6) d/d(theta, phi), {kind}", f"P={x.size}",
                  partial(ppo.minibatch_loss_and_grad, split=splitter(theta, value), mb=mb, config=config, beta=0.5),
                  x))
    return table


# ------------------------------------------------------------------ two computations, one quantity

def _fvp_vs_explicit(fvp_of, policy, obs, v):
    """A Fisher-vector product (TRPO.6 or TRPO.7, undamped) against the explicit Z^T Z v (NPG.3)."""
    return _max_error(fvp_of(policy, obs, 0.0)(v), _explicit_fisher(policy, obs) @ v)


def _score_rows(params, obs, actions, w):
    """w^T score and its gradient through npg's per-sample score matrix (NPG.4)."""
    return w @ policy_forward(params, obs)[0].logp(actions), unflatten(w @ npg.score_matrix(params, obs, actions),
                                                                       params)


def agreement_checks(rng):
    """The Fisher-vector products: matrix-free (TRPO.6) and by finite differences of the mean-KL
    gradient (TRPO.7), against the explicit Z^T Z of npg (NPG.3); Z^T Z against the Hessian of the
    mean KL; npg's per-sample score matrix (NPG.4) through a random projection."""
    table = []
    for gaussian in (False, True):
        kind = _kind(gaussian)
        policy, obs = _policy(rng, gaussian, N=8)
        v = rng.standard_normal(flatten(policy).size)
        table.append((f"TRPO F v matrix-free (TRPO.6) vs explicit, {kind}", f"P={v.size}",
                      partial(_fvp_vs_explicit, fisher_vector_product, policy, obs, v)))
        table.append((f"TRPO F v finite-difference (TRPO.7) vs explicit, {kind}", f"P={v.size}",
                      partial(_fvp_vs_explicit, trpo.fisher_vector_product_fd, policy, obs, v)))
    for gaussian in (False, True):
        kind, policy, obs, actions = _sampled(rng, gaussian, N=6)
        w = rng.standard_normal(6)                             # random projection over samples
        P = flatten(policy).size
        table.append((f"NPG score matrix rows (NPG.4), w^T score, {kind}", f"P={P}",
                      partial(_score_rows, obs=obs, actions=actions, w=w), policy))
        table.append((f"NPG exact Fisher Z^T Z (NPG.3) vs Hessian of mean KL, {kind}", f"({P}, {P})",
                      partial(_hessian_vs, _explicit_fisher, policy, obs)))
    return table


ALL_CHECKS = [mlp_checks, categorical_checks, gaussian_checks, policy_checks, loss_checks, agreement_checks]


def run_checks(seed=0, checks=None):
    """Every row of ALL_CHECKS (or of the given groups): (quantity, shape, error, passed)."""
    return run_table(checks or ALL_CHECKS, seed, TOL)
