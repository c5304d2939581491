"""Natural policy gradient (Kakade 2001) with an explicit Fisher matrix, as in Deep RL Bootcamp lab 4.

Derived in ``notebooks/03_natural_gradient.ipynb`` from the course notes: the *Lab 4 write-up*
("Natural Policy Gradient": F from outer products of grad log pi, F + reg * I, step size sqrt(2
max_kl / g^T F^-1 g)) and the *PG review notes* (TRPO: Taylor expansion of the KL, Lagrangian dual);
notebooks/README.md lists the notes. Notation: N valid samples (s_i, a_i) of one rollout, P policy
parameters theta, score_i = grad_theta log pi_theta(a_i|s_i) (a row of ``score``, shape (N, P)), J_i
= d(distribution parameters of sample i) / d theta, M_i the Fisher of the distribution in its own
parameters (DIST.4, DIST.8), xi = ``damping``.

    g = (1/N) sum_i score_i A_hat_i                     policy gradient, GAE advantages  (NPG.1)
    KL(pi_old || pi_{theta_old + s}) = 1/2 s^T F s + O(|s|^3),
        F = Hessian of the mean KL at theta_old                                         (NPG.2)
    F = (1/N) sum_i J_i^T M_i J_i                       exact Fisher (all actions)       (NPG.3)
    F = (1/N) sum_i score_i score_i^T = score^T score / N    empirical (sampled a_i)    (NPG.4)
    max_s g^T s  s.t.  1/2 s^T F s <= max_kl   =>   s = step_size x,   x = F^-1 g,
        step_size = sqrt(2 max_kl / x^T F x) = sqrt(2 max_kl / g^T x)                     (NPG.5)
    F + xi I = L L^T     (Cholesky);   L y = g,   L^T x = y                              (NPG.6)
    F = Z^T Z with Z (R, P), R < P:   x = (g - Z^T (xi I_R + Z Z^T)^-1 Z g) / xi          (NPG.7)
    tabular softmax, F weighted by the discounted visitation: x(s, a) = A(s, a) + c(s)     (NPG.8)

Both Fishers are Gram matrices F = Z^T Z of a "Fisher factor" Z with R rows: for (NPG.4) the rows
are score_i / sqrt(N) (R = N); for (NPG.3) they are the rows of sqrt(1/N) C_i J_i, with C_i a
square root of M_i (C_i^T C_i = M_i): A - 1 rows per sample for a categorical policy (its logits can
all shift by a constant without changing the probabilities, so M_i has rank A - 1), A rows per
sample plus A rows for the shared log_std for a Gaussian one. With Z = score / sqrt(N), (NPG.7) is the notes'
x = (1/xi)(g - score^T (N xi I + score score^T)^-1 score g).

Per-sample gradients, without N backward passes: (MLP.2) sums dW_k = sum_i outer(h_{k-1,i}, dz_{k,i})
over the batch; keeping the terms apart gives every sample's gradient at once from the one
backward recursion (MLP.3), which carries a whole (..., N, A) stack of output derivatives.

One iteration:
  Step 1. Collect T steps from each of the E envs with pi_theta (rlref.train).
  Step 2. V_phi on every observation; A_hat and R_hat by GAE (GAE.2).
  Step 3. g by (NPG.1), through the surrogate's backward pass (PG.4).
  Step 4. The Fisher factor Z: exact (NPG.3) or empirical (NPG.4).
  Step 5. x = (F + xi I)^-1 g by Cholesky: on the P x P matrix (NPG.6), or on the R x R
          matrix of (NPG.7) when R < P. A matrix that is not positive definite raises ConfigError.
  Step 6. theta <- theta_old + step_size x by (NPG.5), max_kl decayed linearly over the
          budget (anneal_kl); log the exact mean KL(pi_old || pi_new) on the batch.
  Step 7. Fit V_phi to R_hat with its own Adam optimizer.
"""
from dataclasses import dataclass

import numpy as np

from rlref.advantages import batch_samples
from rlref.config import TrainConfig
from rlref.errors import ConfigError, require_choice, require_float, require_int
from rlref.nn import act_grad, flatten, unflatten
from rlref.optim import linear_decay
from rlref.policy import fisher_quadratic, init_policy_from, is_gaussian, policy_backward, policy_forward, scale_rows
from rlref.value import fit_value, init_value

ROLLOUT = "steps"
FISHERS = ("exact", "empirical")
ROUTES = ("auto", "fisher", "woodbury")
# Per-env settings the command line applies under any --set. NOTE (implementation detail): on
# Pendulum TRPO's preset (gamma 0.9, 100 evaluation episodes for a policy that may swing up from
# some starts only, 200k steps); max_kl stays 0.01 (0.02 ended lower on the tuning seeds 901-904).
# docs/results.md has the tuning and the calibration on unseen seeds.
PRESETS = {"Pendulum-v1": {"gamma": 0.9, "total_steps": 200_000, "eval_episodes": 100}}


@dataclass
class Config(TrainConfig):
    total_steps: int = 300_000       # budget of env transitions
    hidden: tuple = (32,)            # small MLPs: P = 226 on CartPole, so F is only 226 x 226
    num_envs: int = 16               # E
    n_steps: int = 128               # T: steps per env per iteration (N = E T samples)
    lam: float = 0.97                # GAE lambda
    fisher: str = "exact"            # "exact" (NPG.3) or "empirical" (NPG.4)
    max_kl: float = 0.01             # max_kl: the KL budget of the quadratic model (NPG.5)
    damping: float = 0.1             # xi of F + xi I (NPG.6)
    anneal_kl: bool = True           # decay max_kl linearly to 0 over the step budget (OPT.4)
    lr_v: float = 3e-3               # Adam step size for phi
    v_iters: int = 40                # full-batch Adam steps on the value loss per iteration

    def __post_init__(self):
        super().__post_init__()
        require_int("n_steps", self.n_steps, 1)
        require_float("lam", self.lam, 0.0, 1.0)
        require_choice("fisher", self.fisher, FISHERS)
        require_float("max_kl", self.max_kl, 0.0, low_open=True)
        require_float("damping", self.damping, 0.0)
        require_float("lr_v", self.lr_v, 0.0, low_open=True)
        require_int("v_iters", self.v_iters, 1)


def init_agent(config, obs_dim, act_dim, gaussian, rng):
    policy = init_policy_from(config, obs_dim, act_dim, gaussian, rng)
    return {"policy": policy, **init_value(config, obs_dim, rng)}


# ------------------------------------------------------------------ per-sample gradients, Fisher

def _blocks(params):
    """{name: (start, stop)} of every parameter array inside flatten(params)."""
    stops = np.cumsum([np.size(v) for v in params.values()])
    return {k: (int(b - np.size(v)), int(b)) for (k, v), b in zip(params.items(), stops)}


def per_sample_grads(ddist, cache):
    """rows[..., i, :] = J_i^T ddist[..., i]: one gradient per sample (and per leading index).

    ddist: (..., N, A), or (dmean, dlog_std) each (..., N, A) for a Gaussian. Returns (..., N, P)
    in the order of flatten(params). (MLP.2) without its sum over samples, (MLP.3) unchanged.
    """
    params, hs, activation = cache["params"], cache["hs"], cache["activation"]
    dz, dlog_std = ddist if isinstance(ddist, tuple) else (ddist, None)
    lead, blocks = dz.shape[:-1], _blocks(params)                   # lead = (..., N)
    rows = np.empty(lead + (blocks[list(params)[-1]][1],))           # (..., N, P)
    for k in range(len(hs), 0, -1):
        h_prev = hs[k - 1]                                           # (N, H_{k-1})
        (w0, w1), (b0, b1) = blocks[f"W{k}"], blocks[f"b{k}"]
        dW = rows[..., w0:w1].reshape(lead + params[f"W{k}"].shape)  # a view into rows
        np.multiply(h_prev[..., :, None], dz[..., None, :], out=dW)  # (..., N, H_{k-1}, H_k) (MLP.2)
        rows[..., b0:b1] = dz                                        # (..., N, H_k)           (MLP.2)
        if k > 1:
            dz = (dz @ params[f"W{k}"].T) * act_grad(h_prev, activation)   # (MLP.3)
    if dlog_std is not None:
        rows[..., slice(*blocks["log_std"])] = dlog_std              # J_i is the identity there
    return rows


def score_matrix(policy, obs, actions):
    """score (N, P): row i is grad_theta log pi_theta(a_i|s_i), by manual backprop.  (NPG.4)"""
    dist, cache = policy_forward(policy, obs)
    return per_sample_grads(dist.dlogp(actions), cache)


def _categorical_root(probs):
    """C (N, A - 1, A) with C_i^T C_i = diag(p_i) - p_i p_i^T  (DIST.4): a square root of M_i.

    The A rows sqrt(p_a)(e_a - p) already give M = sum_a p_a (e_a - p)(e_a - p)^T; they satisfy one
    linear relation (sum_a sqrt(p_a) row_a = 0). A Householder reflection Q (orthogonal, so Q C
    keeps C^T C) that sends sqrt(p) to -e_A turns that relation into a zero last row, dropped here.
    """
    N, A = probs.shape
    sq = np.sqrt(probs)                                              # (N, A)
    C = sq[:, :, None] * (np.eye(A) - probs[:, None, :])             # (N, A, A) rows sqrt(p_a)(e_a - p)
    u = sq.copy()
    u[:, -1] += 1.0                                                  # u = sqrt(p) + e_A, |u|^2 >= 2
    uC = np.einsum("na,nab->nb", u, C)                               # (N, A)
    QC = C - (2.0 / (u * u).sum(axis=1))[:, None, None] * u[:, :, None] * uC[:, None, :]
    return QC[:, :-1, :]                                             # (N, A - 1, A)


def fisher_factor(policy, obs, kind="exact", actions=None, weights=None):
    """Z (R, P) with F = Z^T Z: the exact Fisher (NPG.3) or the empirical one (NPG.4).

    weights (N,), nonnegative, replace the 1/N of the sample mean (default: 1/N each).
    """
    require_choice("kind", kind, FISHERS)
    dist, cache = policy_forward(policy, obs)
    N = obs.shape[0]
    w = np.full(N, 1.0 / N) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (N,) or not np.all(np.isfinite(w)) or w.min(initial=0.0) < 0:
        raise ConfigError(f"weights must be {N} finite nonnegative numbers, got shape {w.shape}")
    sw = np.sqrt(w)                                                  # (N,)
    if kind == "empirical":
        if actions is None:
            raise ConfigError("the empirical Fisher (NPG.4) needs the sampled actions")
        return per_sample_grads(scale_rows(dist.dlogp(actions), sw), cache)   # (N, P) score_i sqrt(w_i)
    if not is_gaussian(policy):
        root = _categorical_root(dist.probs) * sw[:, None, None]     # (N, A - 1, A)
        rows = per_sample_grads(root.transpose(1, 0, 2), cache)      # (A - 1, N, P)
        return rows.reshape(-1, rows.shape[-1])
    # Gaussian: M_i = diag(1/sigma^2, 2) (DIST.8); mean rows e_d / sigma_d, then the shared log_std.
    A = dist.mean.shape[1]
    dmean = np.eye(A)[:, None, :] * (sw[:, None] / dist.std)[None]   # (A, N, A)
    rows = per_sample_grads((dmean, np.zeros_like(dmean)), cache).reshape(-1, flatten(policy).size)
    log_std_rows = np.zeros((A, rows.shape[1]))                      # sum_i w_i 2 I on log_std
    log_std_rows[:, slice(*_blocks(policy)["log_std"])] = np.sqrt(2.0 * w.sum()) * np.eye(A)
    return np.concatenate([rows, log_std_rows])                      # (N A + A, P)


def fisher_matrix(Z):
    """F = Z^T Z (P, P). Z.T @ Z is recognised by NumPy as a symmetric product (BLAS syrk)."""
    return Z.T @ Z


# ------------------------------------------------------------------ solving F x = g

def cholesky(S, name):
    """Lower L with L L^T = S, or ConfigError if the symmetric S is not (numerically) positive definite.

    A pivot below n * eps * max diag(S) means S is singular to working precision: a factor of it
    would exist only because of rounding and give a meaningless step.
    """
    n = S.shape[0]
    try:
        L = np.linalg.cholesky(S)
        ok = np.all(np.isfinite(L)) and np.diag(L).min() ** 2 > n * np.finfo(float).eps * np.diag(S).max()
    except np.linalg.LinAlgError:
        ok = False
    if not ok:
        raise ConfigError(f"{name} ({n} x {n}) is not positive definite: the Fisher is singular in some "
                          f"direction (a categorical policy always is: shifting all logits changes "
                          f"nothing); set damping > 0 (the default is 0.1)")
    return L


def solve_triangular(L, b, transpose=False, block=64):
    """Solve L y = b (or L^T y = b) for lower-triangular L (n, n), b (n,). Blocked substitution.

    NumPy has no triangular solver; np.linalg.solve on L would pay a full LU (~2n^3/3 flops).
    Here each block of rows costs one small solve of its diagonal block plus a matrix-vector product
    with the rows already solved: n^2 flops in all.
    """
    n = L.shape[0]
    y = np.zeros(n)
    starts = list(range(0, n, block))
    for j0 in (reversed(starts) if transpose else starts):
        j1 = min(j0 + block, n)
        if transpose:                                                # rows j1: of L^T y are known
            rhs = b[j0:j1] - L[j1:, j0:j1].T @ y[j1:]
            y[j0:j1] = np.linalg.solve(L[j0:j1, j0:j1].T, rhs)
        else:
            rhs = b[j0:j1] - L[j0:j1, :j0] @ y[:j0]
            y[j0:j1] = np.linalg.solve(L[j0:j1, j0:j1], rhs)
    return y


def cho_solve(L, b):
    """S^-1 b from the Cholesky factor L of S.  (NPG.6)"""
    return solve_triangular(L, solve_triangular(L, b), transpose=True)


def natural_direction(Z, g, damping, route="auto"):
    """x = (Z^T Z + damping I)^-1 g and the route taken: "fisher" (NPG.6) or "woodbury" (NPG.7).

    "auto" takes the R x R route when Z has fewer rows R than columns P. Without damping and with
    R < P, F has rank <= R < P: singular, refused before any arithmetic.
    """
    R, P = Z.shape
    require_choice("route", route, ROUTES)
    if damping == 0 and R < P:
        raise ConfigError(f"F = Z^T Z has rank at most R = {R} < P = {P} parameters, so it is singular; "
                          f"set damping > 0 (the default is 0.1) or use more samples")
    if route == "woodbury" or (route == "auto" and R < P):
        gram = Z @ Z.T                                               # (R, R) symmetric product
        gram[np.diag_indices(R)] += damping                          # xi I_R + Z Z^T
        y = cho_solve(cholesky(gram, "damping I + Z Z^T"), Z @ g)     # (R,)
        return (g - Z.T @ y) / damping, "woodbury"                   # (NPG.7)
    F = fisher_matrix(Z)                                             # (P, P)   (NPG.3) / (NPG.4)
    F[np.diag_indices(P)] += damping                                 # F + xi I
    return cho_solve(cholesky(F, "F + damping I"), g), "fisher"      # (NPG.6)


# ------------------------------------------------------------------ the update

def natural_step(policy, obs, actions, A_hat, config, route="auto", max_kl=None):
    """Steps 3-6: the new policy and diagnostics (max_kl defaults to config.max_kl). Pure."""
    max_kl = config.max_kl if max_kl is None else max_kl
    N = obs.shape[0]
    dist, cache = policy_forward(policy, obs)
    g = flatten(policy_backward(scale_rows(dist.dlogp(actions), A_hat / N), cache))    # (P,) (NPG.1)
    Z = fisher_factor(policy, obs, config.fisher, actions)                             # (R, P)
    x, route = natural_direction(Z, g, config.damping, route)                          # (NPG.6), (NPG.7)
    # NOTE (implementation detail): the step size uses x^T F x with the exact F, the Hessian of
    # the KL (NPG.2), as the lab does with its F. It equals the notes' g^T x when F is the exact
    # Fisher and damping = 0; with damping, g^T x = x^T F x + xi |x|^2 would make the step
    # shorter than the KL budget, and an empirical F only estimates the KL's curvature.
    xFx = fisher_quadratic(dist, cache, x, policy)                   # x^T F x of (NPG.5) by (TRPO.6)
    step_size = np.sqrt(2.0 * max_kl / xFx) if xFx > 0 else 0.0                        # (NPG.5)
    new_policy = unflatten(flatten(policy) + step_size * x, policy)
    diag = {"kl": float(dist.kl(policy_forward(new_policy, obs)[0]).mean()),   # exact, on the batch
            "kl_model": 0.5 * step_size ** 2 * xFx, "max_kl": float(max_kl),   # 1/2 s^T F s = max_kl
            "gTx": float(g @ x), "step_size": float(step_size),
            "step_norm": float(step_size * np.linalg.norm(x)),
            "grad_norm": float(np.linalg.norm(g)), "entropy": float(dist.entropy().mean()),
            "fisher_rows": float(Z.shape[0]), "woodbury": float(route == "woodbury")}
    return new_policy, diag


def update(agent, batch, config, rng, budget_used=0.0):
    samples = batch_samples(batch, agent["value"], config.gamma, config.lam)           # Step 2 (GAE.2)
    # NOTE (implementation detail): a fixed KL budget moves the policy by max_kl every iteration,
    # however small the gradient; decaying it to 0 over the budget (as A2C decays its learning rate,
    # Mnih et al. 2016) lets the final policy settle.
    max_kl = linear_decay(config.max_kl, budget_used, config.anneal_kl)                # (OPT.4)
    policy, diag = natural_step(agent["policy"], samples["obs"], samples["actions"], samples["A_hat"],
                                config, max_kl=max_kl)                                 # Steps 3-6
    agent, diag["loss_v"] = fit_value({**agent, "policy": policy}, samples["obs"], samples["R_hat"],
                                      config.lr_v, config.v_iters)                     # Step 7
    return agent, diag
