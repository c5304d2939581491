"""Every hand-derived derivative in rlref, checked against finite differences on random inputs.

``python -m rlref gradcheck`` runs ``run_checks`` and prints the table; the test suite runs the same
list. Each check takes a generator and returns rows (quantity, shape, max error); an error is
|a - n| / max(1, |a|, |n|) as in ``rlref.gradcheck``. A check passes at error <= TOL.

Vector-valued functions are checked through a random projection: for out(x) and a random R of
out's shape, d/dx sum(out * R) must equal backward(R).
"""
import numpy as np

from rlref.distributions import Categorical, DiagGaussian
from rlref.gradcheck import check_grad, numerical_jacobian, rel_error
from rlref.nn import ACTIVATIONS, flatten, init_mlp, mlp_backward, mlp_forward, mlp_jvp, unflatten
from rlref.policy import init_policy, policy_backward, policy_forward, policy_jvp

TOL = 1e-6


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
    R = rng.standard_normal((batch, sizes[-1]))             # random projection of the output
    return params, x, R


def _error(f, grad_f, x):
    """The check's error; an analytic gradient that is identically zero is refused (inf), since
    agreeing with a zero finite difference proves nothing."""
    g = grad_f(x)
    if all(not np.any(v) for v in (g.values() if isinstance(g, dict) else [g])):
        return np.inf
    return check_grad(f, grad_f, x, tol=np.inf)             # tol=inf: measure, do not raise


def mlp_checks(rng):
    """Backprop (MLP.2-3) w.r.t. every parameter and the input, and forward mode (MLP.4)."""
    rows = []
    for activation in ACTIVATIONS:
        for batch in (1, 7):
            params, x, R = _random_mlp(rng, activation, batch)
            loss = lambda p: np.sum(mlp_forward(p, x)[0] * R)
            grads = lambda p: mlp_backward(R, mlp_forward(p, x)[1])[0]
            rows.append((f"MLP {activation} d/dparams, batch {batch}",
                         f"P={flatten(params).size}", _error(loss, grads, params)))
            loss_x = lambda x_: np.sum(mlp_forward(params, x_)[0] * R)
            grad_x = lambda x_: mlp_backward(R, mlp_forward(params, x_)[1])[1]
            rows.append((f"MLP {activation} d/dx, batch {batch}", str(x.shape), _error(loss_x, grad_x, x)))
        rows.append((f"MLP {activation} forward mode (jvp)", "(7, 2)", _jvp_error(params, x, rng)))
    return rows


def _jvp_error(params, x, rng, eps=1e-6):
    """mlp_jvp against central differences of the output along a random parameter tangent."""
    theta = flatten(params)
    v = rng.standard_normal(theta.shape)
    out = lambda t: mlp_forward(unflatten(t, params), x)[0]
    numeric = (out(theta + eps * v) - out(theta - eps * v)) / (2 * eps)
    analytic = mlp_jvp(unflatten(v, params), mlp_forward(params, x)[1])
    return float(rel_error(analytic, numeric).max())


def categorical_checks(rng, N=6, A=4):
    """Score (DIST.1), entropy (DIST.2), KL (DIST.3) in the logits."""
    z, zq = rng.standard_normal((N, A)), rng.standard_normal((N, A))
    a = rng.integers(A, size=N)
    w = rng.standard_normal(N)                              # random projection of per-sample values
    p = Categorical(z)
    return [
        ("Categorical d logp / d logits", str(z.shape),
         _error(lambda z_: w @ Categorical(z_).logp(a), lambda z_: w[:, None] * Categorical(z_).dlogp(a), z)),
        ("Categorical d entropy / d logits", str(z.shape),
         _error(lambda z_: w @ Categorical(z_).entropy(), lambda z_: w[:, None] * Categorical(z_).dentropy(), z)),
        ("Categorical d KL(p||q) / d logits_q", str(zq.shape),
         _error(lambda q: w @ p.kl(Categorical(q)), lambda q: w[:, None] * p.dkl(Categorical(q)), zq)),
    ]


def gaussian_checks(rng, N=6, D=3):
    """Score (DIST.5), entropy (DIST.6), KL (DIST.7) in (mean, log_std)."""
    mu, s = rng.standard_normal((N, D)), 0.3 * rng.standard_normal((N, D))
    mq, sq = rng.standard_normal((N, D)), 0.3 * rng.standard_normal((N, D))
    a = rng.standard_normal((N, D))
    w = rng.standard_normal(N)
    p = DiagGaussian(mu, s)

    def pair(value, deriv, x0):                             # x = {"mean", "log_std"}
        x = {"mean": x0[0].copy(), "log_std": x0[1].copy()}
        f = lambda x_: w @ value(x_["mean"], x_["log_std"])
        g = lambda x_: dict(zip(("mean", "log_std"),
                                (w[:, None] * d for d in deriv(x_["mean"], x_["log_std"]))))
        return _error(f, g, x)
    return [
        ("Gaussian d logp / d(mean, log_std)", f"({N}, {D}) x2",
         pair(lambda m, l: DiagGaussian(m, l).logp(a), lambda m, l: DiagGaussian(m, l).dlogp(a), (mu, s))),
        ("Gaussian d entropy / d(mean, log_std)", f"({N}, {D}) x2",
         pair(lambda m, l: DiagGaussian(m, l).entropy(), lambda m, l: DiagGaussian(m, l).dentropy(), (mu, s))),
        ("Gaussian d KL(p||q) / d(mean_q, log_std_q)", f"({N}, {D}) x2",
         pair(lambda m, l: p.kl(DiagGaussian(m, l)), lambda m, l: p.dkl(DiagGaussian(m, l)), (mq, sq))),
    ]


def _policy(rng, gaussian, N=5, sizes=(3, 4, 2)):
    params = init_policy(list(sizes), rng, gaussian=gaussian, out_gain=1.0)
    if gaussian:
        params["log_std"] = 0.3 * rng.standard_normal(sizes[-1])
    obs = rng.standard_normal((N, sizes[0]))
    return params, obs


def mean_kl_and_grad(theta, theta_old, like, obs):
    """mean_i KL(pi_old(.|s_i) || pi_theta(.|s_i)) and its gradient in theta (POL.1)."""
    old, _ = policy_forward(unflatten(theta_old, like), obs)
    new, cache = policy_forward(unflatten(theta, like), obs)
    N = obs.shape[0]
    ddist = old.dkl(new)
    ddist = tuple(d / N for d in ddist) if isinstance(ddist, tuple) else ddist / N
    return old.kl(new).mean(), flatten(policy_backward(ddist, cache))


def exact_fisher(params, obs):
    """F = (1/N) sum_i J_i^T M_i J_i, with J_i built column by column by forward mode."""
    theta = flatten(params)
    dist, cache = policy_forward(params, obs)
    N, P = obs.shape[0], theta.size
    F = np.zeros((P, P))
    for j in range(P):
        Jv = policy_jvp(unflatten(np.eye(P)[j], params), cache)     # column j of J_i, all i
        MJv = dist.fisher_product(Jv)                                # M_i J_i e_j
        F[:, j] = flatten(policy_backward(MJv, cache)) / N           # (1/N) sum_i J_i^T M_i J_i e_j
    return F


def fisher_checks(rng):
    """The Hessian of the mean KL at theta_old equals the Fisher J^T M J (DIST.4, DIST.8)."""
    rows = []
    for gaussian in (False, True):
        params, obs = _policy(rng, gaussian)
        theta_old = flatten(params)
        grad = lambda t: mean_kl_and_grad(t, theta_old, params, obs)[1]
        H = numerical_jacobian(grad, theta_old.copy())
        F = exact_fisher(params, obs)
        name = "Gaussian" if gaussian else "Categorical"
        rows.append((f"{name} policy: Hessian of mean KL at theta_old vs J^T M J",
                     str(F.shape), float(rel_error(F, H).max())))
    return rows


def policy_score_checks(rng):
    """The score d log pi(a|s) / d theta through the network (POL.1), both policy kinds."""
    rows = []
    for gaussian in (False, True):
        params, obs = _policy(rng, gaussian)
        dist, _ = policy_forward(params, obs)
        a = dist.sample(rng)
        f = lambda p: policy_forward(p, obs)[0].logp(a).mean()

        def g(p):
            d, cache = policy_forward(p, obs)
            score = d.dlogp(a)
            N = obs.shape[0]
            return policy_backward(tuple(s / N for s in score) if gaussian else score / N, cache)
        rows.append((f"{'Gaussian' if gaussian else 'Categorical'} policy: d mean logp / d theta",
                     f"P={flatten(params).size}", _error(f, g, params)))
    return rows


def surrogate_checks(rng):
    """The losses the algorithms descend: REINFORCE's (PG.4), A2C's (AC.3) in theta and in phi."""
    from rlref.algos import a2c, reinforce
    rows = []
    for gaussian in (False, True):
        kind = "Gaussian" if gaussian else "Categorical"
        policy, obs = _policy(rng, gaussian, N=8)
        actions = policy_forward(policy, obs)[0].sample(rng)
        A_hat, R_hat = rng.standard_normal(8), rng.standard_normal(8)
        rows.append((f"REINFORCE loss (PG.4), {kind}", f"P={flatten(policy).size}",
                     _error(lambda p: reinforce.loss_and_grads(p, obs, actions, A_hat)[0],
                            lambda p: reinforce.loss_and_grads(p, obs, actions, A_hat)[1], policy)))
        value = init_mlp([obs.shape[1], 4, 1], rng, out_gain=1.0)
        config = a2c.Config(ent_coef=0.3, vf_coef=0.7)
        a2c_loss = lambda p, v: a2c.loss_and_grads(p, v, obs, actions, A_hat, R_hat, config)
        rows.append((f"A2C loss (AC.3) d/dtheta, with entropy, {kind}", f"P={flatten(policy).size}",
                     _error(lambda p: a2c_loss(p, value)[0], lambda p: a2c_loss(p, value)[2], policy)))
        rows.append((f"A2C loss (AC.3) d/dphi (value term), {kind}", f"P={flatten(value).size}",
                     _error(lambda v: a2c_loss(policy, v)[0], lambda v: a2c_loss(policy, v)[3], value)))
    return rows


def trpo_checks(rng):
    """TRPO (rlref/algos/trpo.py): the importance-ratio surrogate's gradient (TRPO.2) away from
    theta_old, and the matrix-free (TRPO.6) and finite-difference (TRPO.7) Fisher-vector products
    against the explicit F v."""
    from rlref.algos import trpo
    rows = []
    for gaussian in (False, True):
        kind = "Gaussian" if gaussian else "Categorical"
        policy, obs = _policy(rng, gaussian, N=8)
        actions = policy_forward(policy, obs)[0].sample(rng)
        A_hat = rng.standard_normal(8)
        theta_old = flatten(policy) + 0.1 * rng.standard_normal(flatten(policy).size)
        logp_old = policy_forward(unflatten(theta_old, policy), obs)[0].logp(actions)   # ratio != 1
        L = lambda p: trpo.surrogate(p, obs, actions, A_hat, logp_old)[0]
        g = lambda p: unflatten(trpo.surrogate_and_grad(p, obs, actions, A_hat, logp_old)[1], p)
        rows.append((f"TRPO surrogate (TRPO.1) d/dtheta, {kind}", f"P={flatten(policy).size}",
                     _error(L, g, policy)))
        v = rng.standard_normal(flatten(policy).size)
        Fv = exact_fisher(policy, obs) @ v
        rows.append((f"TRPO F v matrix-free (TRPO.6) vs explicit, {kind}", f"P={v.size}",
                     float(rel_error(trpo.fisher_vector_product(policy, obs, 0.0)(v), Fv).max())))
        rows.append((f"TRPO F v finite-difference (TRPO.7) vs explicit, {kind}", f"P={v.size}",
                     float(rel_error(trpo.fisher_vector_product_fd(policy, obs, 0.0)(v), Fv).max())))
    return rows


def ppo_checks(rng):
    """PPO's clipped (PPO.1-2) and penalty (PPO.3) objectives and clipped value loss (PPO.5), at
    points at least 1e-3 away from every kink (the flat regions are tested for exact zeros)."""
    from rlref.algos import ppo
    rows = []
    for gaussian in (False, True):
        kind = "Gaussian" if gaussian else "Categorical"
        old, obs = _policy(rng, gaussian, N=12)
        dist_old = policy_forward(old, obs)[0]
        actions, A_hat = dist_old.sample(rng), rng.standard_normal(12)
        logp_old = dist_old.logp(actions)
        for _ in range(100):                               # a theta with no ratio near 1 +- eps
            theta = unflatten(flatten(old) + 0.3 * rng.standard_normal(flatten(old).size), old)
            ratio = np.exp(policy_forward(theta, obs)[0].logp(actions) - logp_old)
            if np.min(np.abs(ratio[:, None] - [0.8, 1.2])) > 1e-3:
                break
        for objective in ("clip", "penalty"):
            config = ppo.Config(objective=objective, ent_coef=0.1, kl_target=1e-4)   # hinge active
            f = lambda p: ppo.policy_loss_and_grad(policy_forward(p, obs)[0], dist_old, actions, logp_old,
                                                   A_hat, config, 0.5)[0]

            def g(p):
                dist, cache = policy_forward(p, obs)
                return policy_backward(ppo.policy_loss_and_grad(dist, dist_old, actions, logp_old, A_hat,
                                                                config, 0.5)[1], cache)
            rows.append((f"PPO {objective} objective with entropy (PPO.{1 if objective == 'clip' else 3}), {kind}",
                         f"P={flatten(theta).size}", _error(f, g, theta)))
    V_old, R_hat = rng.standard_normal(20), rng.standard_normal(20)
    v = V_old + np.where(rng.random(20) < 0.5, 1, -1) * rng.uniform(0.05, 0.5, 20)   # |v - V_old| != 0.2
    v = np.where(np.abs(np.abs(v - V_old) - 0.2) < 1e-3, v + 0.01, v)
    config = ppo.Config(clip_value=True)
    rows.append(("PPO clipped value loss (PPO.5)", str(v.shape),
                 _error(lambda x: ppo.value_loss_and_grad(x, V_old, R_hat, config)[0],
                        lambda x: ppo.value_loss_and_grad(x, V_old, R_hat, config)[1], v)))
    return rows


def npg_checks(rng):
    """NPG (rlref/algos/npg.py): the per-sample score matrix (NPG.4) through a random projection
    w^T score = d(w . logp)/dtheta, and the exact Fisher Z^T Z (NPG.3) against the Hessian of the
    mean KL at theta_old (finite differences of its analytic gradient)."""
    from rlref.algos import npg
    rows = []
    for gaussian in (False, True):
        kind = "Gaussian" if gaussian else "Categorical"
        policy, obs = _policy(rng, gaussian, N=6)
        actions = policy_forward(policy, obs)[0].sample(rng)
        w = rng.standard_normal(6)                             # random projection over samples
        rows.append((f"NPG score matrix rows (NPG.4), w^T score, {kind}", f"P={flatten(policy).size}",
                     _error(lambda p: w @ policy_forward(p, obs)[0].logp(actions),
                            lambda p: unflatten(w @ npg.score_matrix(p, obs, actions), p), policy)))
        theta_old = flatten(policy)
        H = numerical_jacobian(lambda t: mean_kl_and_grad(t, theta_old, policy, obs)[1], theta_old.copy())
        F = npg.fisher_matrix(npg.fisher_factor(policy, obs, "exact"))
        rows.append((f"NPG exact Fisher Z^T Z (NPG.3) vs Hessian of mean KL, {kind}", str(F.shape),
                     float(rel_error(F, H).max())))
    return rows


ALL_CHECKS = [mlp_checks, categorical_checks, gaussian_checks, policy_score_checks, fisher_checks,
              surrogate_checks, trpo_checks, ppo_checks, npg_checks]


def run_checks(seed=0, checks=None):
    """Run every check; returns rows (quantity, shape, error, passed)."""
    rng = np.random.default_rng(seed)
    rows = []
    for check in (checks or ALL_CHECKS):
        rows += [(q, s, e, bool(e <= TOL)) for q, s, e in check(rng)]
    return rows


def format_table(rows):
    width = max(len(r[0]) for r in rows)
    lines = [f"{'quantity':<{width}}  {'shape':<12}  {'max rel error':>13}  result",
             "-" * (width + 38)]
    for quantity, shape, error, passed in rows:
        lines.append(f"{quantity:<{width}}  {shape:<12}  {error:>13.2e}  {'pass' if passed else 'FAIL'}")
    n_fail = sum(not r[3] for r in rows)
    lines.append(f"{len(rows) - n_fail} of {len(rows)} checks passed (tolerance {TOL:.0e} on "
                 f"|a - n| / max(1, |a|, |n|), central differences with h = 1e-6 max(1, |x|))")
    return "\n".join(lines)
