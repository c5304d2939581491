"""Trust Region Policy Optimization (TRPO): Schulman, Levine, Moritz, Jordan, Abbeel, ICML 2015.

Derived in ``notebooks/04_trpo.ipynb`` from the course notes: the *TRPO paper notes* (a walk through
a reference trpo_step), the *PG review notes* (importance sampling, Taylor expansion, Lagrangian,
line search, conjugate gradient) and the *TRPO and PPO lecture notes* (trust regions);
notebooks/README.md lists the notes. Notation: N sampled pairs (s_i, a_i) from pi_old =
pi_theta_old; A_hat_i their GAE advantages; J_i = d(distribution parameters of sample i) / d theta,
the Jacobian of the policy network; M_i the Fisher of the distribution in its own parameters
(DIST.4, DIST.8); P the number of policy parameters; s a step theta - theta_old.

    ratio_i(theta) = pi_theta(a_i|s_i) / pi_old(a_i|s_i) = exp(logp_i(theta) - logp_old_i)
    L(theta) = (1/N) sum_i ratio_i(theta) A_hat_i                          surrogate      (TRPO.1)
    g = grad L(theta) = (1/N) sum_i ratio_i A_hat_i J_i^T dlogp_i           its gradient   (TRPO.2)
    KLbar(theta) = (1/N) sum_i KL(pi_old(.|s_i) || pi_theta(.|s_i)) <= max_kl  trust region (TRPO.3)
    L(theta_old + s) ~ L(theta_old) + g^T s,   KLbar(theta_old + s) ~ 1/2 s^T F s,
        F = Hessian of KLbar at theta_old = (1/N) sum_i J_i^T M_i J_i                     (TRPO.4)
    max_s g^T s  s.t.  1/2 s^T F s <= max_kl   =>   s_max = sqrt(2 max_kl / (x^T F x)) x,
        x = F^-1 g   (the natural gradient; 1/2 s_max^T F s_max = max_kl exactly)         (TRPO.5)
        (in the code, F is the damped F + damping I of (TRPO.6) throughout)
    F v = (1/N) sum_i J_i^T (M_i (J_i v)) + damping v      one forward-mode pass (J_i v) and
        one backward pass (J_i^T), never forming F (P x P); rlref.policy.fisher_vector_product  (TRPO.6)
    F v ~ (grad KLbar(theta_old + h v) - grad KLbar(theta_old - h v)) / (2 h)
        the finite-difference product of Deep RL Bootcamp lab 4, for comparison             (TRPO.7)
    conjugate gradient for F x = g: r_0 = p_0 = g, x_0 = 0,
        alpha_k = r_k^T r_k / p_k^T F p_k,  x_{k+1} = x_k + alpha_k p_k,  r_{k+1} = r_k - alpha_k F p_k,
        p_{k+1} = r_{k+1} + (r_{k+1}^T r_{k+1} / r_k^T r_k) p_k                             (TRPO.8)
    theta_new = theta_old + c^j s_max for the smallest j = 0, 1, ... (c = backtrack_coef) with
        L(theta_new) > L(theta_old) and KLbar(theta_new) <= max_kl; none: theta_new = theta_old  (TRPO.9)

One iteration:
  Step 1. V_phi on every observation; GAE advantages A_hat (GAE.2) and targets R_hat.
  Step 2. L and g at theta_old (TRPO.1, TRPO.2), by manual backprop.
  Step 3. x ~ F^-1 g by conjugate gradient (TRPO.8) from Fisher-vector products (TRPO.6).
  Step 4. The maximal step s_max (TRPO.5), then the backtracking line search (TRPO.9) on the exact
          surrogate and the exact mean KL; if every fraction fails, theta stays theta_old bitwise.
          (With anneal_kl, max_kl decays linearly to 0 over the step budget.)
  Step 5. Fit V_phi to R_hat with its own Adam optimizer, several epochs of minibatches (V.1).

Logged per update: kl (exact KLbar of the applied step; 0 after a failed search), max_kl (the radius
used), surrogate_gain (L_new - L_old), expected_gain (g^T of the applied step), step_frac (c^j, 0
on failure), line_search_failed (0/1), backtracks (rejected fractions), cg_residual (||g - F x|| /
||g||, recursively updated) and cg_iters, kl_model (1/2 s^T (F + damping I) s of the full step),
kl_full and surrogate_gain_full (exact, at the full step), entropy, loss_v, explained_var.

The switches `direction`, `line_search` and `lr` turn this into the variants notebook 04 compares
(what happens without the KL constraint): "improve_only" keeps the line search but ignores the KL;
"none" takes the full step (the natural policy gradient with its quadratic-model step); direction
"vanilla" with a fixed `lr` takes plain gradient steps on the surrogate.

Return contracts: ``surrogate`` gives a value and its by-products, (L, aux); ``surrogate_and_grad``
a value and its gradient, (L, grads, aux) with grads a dict like the policy's parameters, as every
loss-and-gradient function of rlref does.
"""
from dataclasses import dataclass

import numpy as np

from rlref.advantages import batch_samples, standardize
from rlref.config import TrainConfig
from rlref.errors import NonFiniteError, require_array, require_choice, require_float, require_int
from rlref.nn import flatten, unflatten
from rlref.optim import linear_decay
from rlref.policy import (fisher_vector_product, init_policy_from, mean_kl_grad, policy_backward, policy_forward,
                          scale_rows)
from rlref.value import explained_variance, init_value, value_step

ROLLOUT = "steps"
# Per-env settings the command line applies under any --set. NOTE (implementation detail): on
# Pendulum gamma 0.9 (RL-Zoo's TRPO value): with 0.95 a policy that swings up from most starts often
# drifts away again after solving (advantages near zero are standardized noise); and 100 evaluation
# episodes, since a policy that fails from some starts makes a 20-episode mean noisy (docs/results.md, table of
# choices has the runs).
PRESETS = {"Pendulum-v1": {"gamma": 0.9, "total_steps": 200_000, "eval_episodes": 100}}
# MuJoCo: close to RL-Zoo's sb3-contrib TRPO settings (2 envs x 1024 steps, max KL 0.01, lam 0.95,
# normalized observations), not calibrated yet: docs/results.md says what they reach.
PRESETS.update({env: dict(total_steps=1_000_000, hidden=(64, 64), num_envs=2, n_steps=1024, max_kl=0.01,
                          anneal_kl=False, lam=0.95, gamma=0.99, normalize_obs=True, v_minibatch=128,
                          eval_episodes=10)
                for env in ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")})
LINE_SEARCHES = ("kl_and_improve", "improve_only", "none")
DIRECTIONS = ("natural", "vanilla")
FVPS = ("exact", "fd")


@dataclass
class Config(TrainConfig):
    total_steps: int = 100_000       # budget of env transitions
    num_envs: int = 16               # E
    n_steps: int = 128               # T: steps per env per iteration (N ~ E T samples)
    lam: float = 0.97                # GAE lambda
    normalize_adv: bool = True       # A_hat <- (A_hat - mean) / (std + 1e-8) over the batch
    max_kl: float = 0.02             # the trust-region radius on the mean KL (TRPO.3)
    anneal_kl: bool = True           # decay max_kl linearly to 0 over the step budget (OPT.4)
    damping: float = 0.01            # lambda of F + lambda I (TRPO.6)
    cg_iters: int = 10               # iteration cap of conjugate gradient (TRPO.8)
    cg_tol: float = 1e-10            # stop when ||g - F x|| <= cg_tol ||g||
    fisher_frac: float = 0.2         # fraction of the batch (drawn anew each update) for F v
    fvp: str = "exact"               # "exact" forward+reverse mode (TRPO.6) or "fd" (TRPO.7)
    backtrack_coef: float = 0.5      # c of the line search (TRPO.9)
    max_backtracks: int = 10         # trial fractions c^0 .. c^(max_backtracks - 1)
    line_search: str = "kl_and_improve"   # or "improve_only" (ignore the KL), "none" (full step)
    direction: str = "natural"       # x = F^-1 g, or "vanilla": x = g
    lr: float = None                 # None: the step of (TRPO.5); a number: the step lr * x
    lr_v: float = 3e-3               # Adam step size for phi
    v_epochs: int = 10               # passes over the batch when fitting V_phi
    v_minibatch: int = 256           # minibatch size of those passes

    def __post_init__(self):
        super().__post_init__()
        require_int("n_steps", self.n_steps, 1)
        require_float("lam", self.lam, 0.0, 1.0)
        require_float("max_kl", self.max_kl, 0.0, low_open=True)
        require_float("damping", self.damping, 0.0)
        require_int("cg_iters", self.cg_iters, 1)
        require_float("cg_tol", self.cg_tol, 0.0)
        require_float("fisher_frac", self.fisher_frac, 0.0, 1.0, low_open=True)
        require_float("backtrack_coef", self.backtrack_coef, 0.0, 1.0, low_open=True, high_open=True)
        require_int("max_backtracks", self.max_backtracks, 1)
        require_choice("fvp", self.fvp, FVPS)
        require_choice("line_search", self.line_search, LINE_SEARCHES)
        require_choice("direction", self.direction, DIRECTIONS)
        if self.lr is not None:
            require_float("lr", self.lr, 0.0, low_open=True)
        require_float("lr_v", self.lr_v, 0.0, low_open=True)
        require_int("v_epochs", self.v_epochs, 1)
        require_int("v_minibatch", self.v_minibatch, 1)


def init_agent(config, obs_dim, act_dim, gaussian, rng):
    policy = init_policy_from(config, obs_dim, act_dim, gaussian, rng)
    return {"policy": policy, **init_value(config, obs_dim, rng)}


def surrogate(policy, obs, actions, A_hat, logp_old):
    """L(theta) of (TRPO.1), and {"dist", "cache", "ratio"} of its forward pass."""
    dist, cache = policy_forward(policy, obs)
    ratio = np.exp(dist.logp(actions) - logp_old)                     # (N,)
    return float(np.mean(ratio * A_hat)), {"dist": dist, "cache": cache, "ratio": ratio}


def surrogate_and_grad(policy, obs, actions, A_hat, logp_old):
    """L(theta), its gradient g (a dict like policy) by backprop, with dL/dlogp_i = ratio_i A_hat_i
    / N, and the by-products of surrogate.  (TRPO.2)"""
    L, aux = surrogate(policy, obs, actions, A_hat, logp_old)
    ddist = scale_rows(aux["dist"].dlogp(actions, check=False), aux["ratio"] * A_hat / len(A_hat))
    return L, policy_backward(ddist, aux["cache"]), aux                # (POL.1)


def fisher_vector_product_fd(policy, obs, damping, eps=1e-5):
    """v -> F v + damping v by central differences of the mean-KL gradient (TRPO.7): two forward
    and two backward passes per product, with an error O(h^2) from the truncation and O(u / h) from
    rounding; h = eps max(1, |theta|_inf) / |v|_inf keeps the perturbation of theta at eps scale."""
    theta_old = flatten(policy)
    old_dist, _ = policy_forward(policy, obs)

    def fvp(v):
        h = eps * max(1.0, float(np.abs(theta_old).max())) / max(float(np.abs(v).max()), 1e-300)
        plus = mean_kl_grad(policy, old_dist, theta_old + h * v, obs)
        minus = mean_kl_grad(policy, old_dist, theta_old - h * v, obs)
        return (plus - minus) / (2.0 * h) + damping * v                # (P,)   (TRPO.7)
    return fvp


def fisher_subsample(N, frac, rng):
    """Sorted indices of round(frac N) (at least 1) of the N samples, drawn without replacement.

    NOTE (implementation detail): F v on a fraction of the batch, as the reference trpo_step of
    the course notes (FISHER_FRAC_SAMPLES) and OpenAI baselines' trpo_mpi (every 5th sample) do: the
    curvature needs far fewer samples than the gradient, and conjugate gradient gets cheaper.
    """
    return np.sort(rng.choice(N, size=max(1, round(frac * N)), replace=False))


def conjugate_gradient(Avp, b, max_iters=10, tol=1e-10):
    """x ~ A^-1 b for a symmetric positive definite A known only through products Avp(p).  (TRPO.8)

    Stops after max_iters products or when ||b - A x|| <= tol ||b|| (the recursively updated
    residual). Returns (x, relative residual, iterations). Raises np.linalg.LinAlgError when a
    search direction has p^T A p <= 0: A is not positive definite, and the quadratic model has no
    maximum along p.
    """
    x = np.zeros_like(b)                                               # (P,)
    r, p = b.copy(), b.copy()                                          # residual b - A x, direction
    rr, b_norm = float(r @ r), float(np.sqrt(b @ b))
    if b_norm == 0.0:
        return x, 0.0, 0
    for k in range(1, max_iters + 1):
        Ap = Avp(p)                                                    # (P,)
        pAp = float(p @ Ap)
        if not np.isfinite(pAp):
            raise NonFiniteError(f"conjugate gradient: p^T A p = {pAp} at iteration {k}")
        if pAp <= 0.0:
            raise np.linalg.LinAlgError(
                f"conjugate gradient met non-positive curvature p^T A p = {pAp:.3e} at iteration "
                f"{k}: the matrix is not positive definite (for a Fisher matrix, use damping > 0)")
        alpha = rr / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= tol * b_norm:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, float(np.sqrt(rr_new)) / b_norm, k


def max_step(x, fvp, max_kl):
    """(s_max, 1/2 s_max^T F s_max): s_max = sqrt(2 max_kl / (x^T F x)) x, so the model's KL is
    max_kl.  (TRPO.5)"""
    xFx = float(x @ fvp(x))
    if not xFx > 0.0:
        raise np.linalg.LinAlgError(f"x^T F x = {xFx:.3e} must be > 0 to scale the step "
                                    f"(use damping > 0)")
    coeff = np.sqrt(2.0 * max_kl / xFx)
    return coeff * x, 0.5 * coeff * coeff * xFx                       # (P,), the model's KL


def line_search(theta_old, full_step, L_old, evaluate, max_kl, backtrack_coef=0.5, max_backtracks=10,
                rule="kl_and_improve"):
    """Backtracking along full_step (TRPO.9). evaluate(theta) -> (L(theta), KLbar(theta)), exact.

    Returns (theta, frac, trials, L, kl): the first accepted point theta_old + frac full_step
    and its surrogate and KL. When no fraction is accepted, theta is theta_old itself (bitwise),
    frac = 0, L = L_old, kl = 0. rule "improve_only" ignores the KL; "none" accepts the full step.
    """
    trials = []
    for j in range(max_backtracks):
        frac = backtrack_coef ** j
        theta = theta_old + frac * full_step                           # (P,)
        L, kl = evaluate(theta)
        trials.append((frac, L, kl))
        accept = {"kl_and_improve": L > L_old and kl <= max_kl,        # (TRPO.9)
                  "improve_only": L > L_old, "none": True}[rule]
        if accept:
            return theta, frac, trials, L, kl
    return theta_old, 0.0, trials, L_old, 0.0


def step_direction(policy, obs, g, config, rng, max_kl):
    """Steps 3-4a: the direction x (TRPO.8) and the full step with its quadratic-model KL (TRPO.5).

    Returns (x, full_step, kl_model, cg_residual, cg_iters)."""
    if config.fisher_frac < 1.0:                                       # F v on a subsample
        obs = obs[fisher_subsample(obs.shape[0], config.fisher_frac, rng)]
    make = fisher_vector_product if config.fvp == "exact" else fisher_vector_product_fd
    fvp = make(policy, obs, config.damping)
    if config.direction == "natural":
        x, residual, iters = conjugate_gradient(fvp, g, config.cg_iters, config.cg_tol)   # (TRPO.8)
    else:
        x, residual, iters = g, 0.0, 0
    if not np.any(x):                                                  # g = 0: no ascent direction
        return x, np.zeros_like(x), 0.0, residual, iters
    if config.lr is None:
        return (x, *max_step(x, fvp, max_kl), residual, iters)         # (TRPO.5)
    full_step = config.lr * x                                          # a fixed step, no model
    return x, full_step, 0.5 * float(full_step @ fvp(full_step)), residual, iters


def trpo_step(policy, obs, actions, A_hat, config, rng, logp_old=None, max_kl=None):
    """Steps 2-4 on one batch: returns (new policy, info). info holds the floats that are logged
    and the arrays g, x and full_step (flat, (P,)) for tests and notebooks.

    logp_old defaults to log pi_old(a_i|s_i) recomputed on the whole batch, so that the ratio at
    theta_old is exactly 1 and L(theta_old) = mean(A_hat). max_kl defaults to config.max_kl.
    """
    max_kl = config.max_kl if max_kl is None else max_kl
    A_hat = require_array("A_hat", A_hat, ndim=1, error=NonFiniteError)   # a caller's advantages
    theta_old = flatten(policy)                                        # (P,)
    old_dist, _ = policy_forward(policy, obs)
    logp_old = old_dist.logp(actions) if logp_old is None else logp_old    # (N,)
    L_old, grads, _ = surrogate_and_grad(policy, obs, actions, A_hat, logp_old)   # Step 2 (TRPO.1-2)
    g = flatten(grads)                                                 # (P,)
    x, full_step, kl_model, residual, iters = step_direction(policy, obs, g, config, rng, max_kl)

    def evaluate(theta):                                               # exact L and KLbar at theta
        L, aux = surrogate(unflatten(theta, policy), obs, actions, A_hat, logp_old)
        return L, float(old_dist.kl(aux["dist"]).mean())               # (TRPO.1), (TRPO.3)

    theta, frac, trials, L_new, kl = line_search(theta_old, full_step, L_old, evaluate, max_kl,
                                                 config.backtrack_coef, config.max_backtracks,
                                                 config.line_search)   # Step 4b (TRPO.9)
    failed = frac == 0.0
    new_policy = policy if failed else unflatten(theta, policy)        # failure: theta_old itself
    info = {"kl": kl, "surrogate_gain": L_new - L_old, "expected_gain": frac * float(g @ full_step),
            "step_frac": frac, "line_search_failed": float(failed),
            "backtracks": float(len(trials) if failed else len(trials) - 1),
            "cg_residual": residual, "cg_iters": float(iters), "kl_model": kl_model,
            "kl_full": trials[0][2], "surrogate_gain_full": trials[0][1] - L_old,
            "entropy": float(old_dist.entropy().mean()),
            "g": g, "x": x, "full_step": full_step}                  # arrays: not logged
    return new_policy, info


def fit_value_epochs(value, opt, obs, R_hat, config, rng):
    """Step 5: v_epochs passes of Adam over shuffled minibatches of mean (V - R_hat)^2 (V.1)."""
    N = len(R_hat)
    losses = []
    for _ in range(config.v_epochs):
        order = rng.permutation(N)
        for start in range(0, N, config.v_minibatch):
            idx = order[start:start + config.v_minibatch]
            value, opt, loss = value_step(value, opt, obs[idx], R_hat[idx], config.lr_v)
            losses.append(loss)
    return value, opt, losses[0]


def update(agent, batch, config, rng, budget_used=0.0):
    samples = batch_samples(batch, agent["value"], config.gamma, config.lam)   # Step 1 (GAE.2)
    A_hat = samples["A_hat"]
    if config.normalize_adv:
        A_hat = standardize(A_hat)            # NOTE (implementation detail): per batch, as in trpo_mpi
    # NOTE (implementation detail): like the learning-rate decay of rlref's A2C (Mnih et al. 2016),
    # a radius decaying to 0 over the budget lets the policy settle instead of taking full-size
    # steps on the noise of advantages that have become uninformative (a solved CartPole).
    max_kl = linear_decay(config.max_kl, budget_used, config.anneal_kl)  # (OPT.4)
    policy, info = trpo_step(agent["policy"], samples["obs"], samples["actions"], A_hat, config, rng,
                             max_kl=max_kl)
    value, opt_v, loss_v = fit_value_epochs(agent["value"], agent["opt_v"], samples["obs"], samples["R_hat"],
                                            config, rng)               # Step 5 (V.1)
    diag = {k: v for k, v in info.items() if not isinstance(v, np.ndarray)}
    diag["max_kl"] = max_kl
    diag["loss_v"] = loss_v
    diag["explained_var"] = explained_variance(samples["R_hat"], samples["V_old"])
    return {"policy": policy, "value": value, "opt_v": opt_v}, diag
