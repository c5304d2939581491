"""Every hand-derived derivative in rlref, checked against finite differences on random inputs.

``python -m rlref gradcheck`` runs ``run_checks`` and prints the table; the test suite runs the same
list. Each function of ALL_CHECKS takes a generator and returns a table whose entries are either
gradient checks (quantity, shape, f, grad_f, x), measured here against central differences, or
agreements (quantity, shape, error) between two independent computations of one matrix or product,
where error is a number or a function of no arguments that measures it (so that a homework stub
fails its own row only). ``run_checks`` is one loop over them. An error is |a - n| / max(1, |a|, |n|)
as in ``rlref.gradcheck``; a check passes at error <= TOL.

Every loss-and-gradient function of rlref returns (loss, grad, aux), so its entry is
(quantity, shape, lambda x: fn(x)[0], lambda x: fn(x)[1], x). Vector-valued functions are checked
through a random projection: for out(x) and a random R of out's shape, d/dx sum(out * R) must
equal backward(R).
"""
import numpy as np

from rlref.distributions import Categorical, DiagGaussian
from rlref.gradcheck import check_grad, numerical_jacobian, rel_error
from rlref.nn import ACTIVATIONS, flatten, init_mlp, mlp_backward, mlp_forward, mlp_jvp, splitter, unflatten
from rlref.value import value_loss_and_grad
from rlref.policy import (fisher_quadratic, init_policy, matrix_free_fisher, mean_kl, mean_kl_grad,
                          policy_backward, policy_forward)

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


def _loss_entry(quantity, shape, loss_and_grad, x):
    """A gradient-check entry for a function with rlref's contract x -> (loss, grad, aux)."""
    return (quantity, shape, lambda x_: loss_and_grad(x_)[0], lambda x_: loss_and_grad(x_)[1], x)


def mlp_checks(rng):
    """Backprop (MLP.2-3) w.r.t. every parameter and the input, and forward mode (MLP.4)."""
    table = []
    for activation in ACTIVATIONS:
        for batch in (1, 7):
            params, x, R = _random_mlp(rng, activation, batch)
            table.append((f"MLP {activation} d/dparams, batch {batch}", f"P={flatten(params).size}",
                          lambda p, x=x, R=R: np.sum(mlp_forward(p, x)[0] * R),
                          lambda p, x=x, R=R: mlp_backward(R, mlp_forward(p, x)[1])[0], params))
            table.append((f"MLP {activation} d/dx, batch {batch}", str(x.shape),
                          lambda x_, p=params, R=R: np.sum(mlp_forward(p, x_)[0] * R),
                          lambda x_, p=params, R=R: mlp_backward(R, mlp_forward(p, x_)[1])[1], x))
        table.append((f"MLP {activation} forward mode (jvp)", "(7, 2)", _jvp_error(params, x, rng)))
    return table


def _jvp_error(params, x, rng, eps=1e-6):
    """mlp_jvp against central differences of the output along a random parameter tangent."""
    theta = flatten(params)
    v = rng.standard_normal(theta.shape)
    out = lambda t: mlp_forward(unflatten(t, params), x)[0]
    numeric = (out(theta + eps * v) - out(theta - eps * v)) / (2 * eps)
    return lambda: float(rel_error(mlp_jvp(unflatten(v, params), mlp_forward(params, x)[1]), numeric).max())


def categorical_checks(rng, N=6, A=4):
    """Score (DIST.1), entropy (DIST.2), KL (DIST.3) in the logits."""
    z, zq = rng.standard_normal((N, A)), rng.standard_normal((N, A))
    a = rng.integers(A, size=N)
    w = rng.standard_normal(N)                              # random projection of per-sample values
    p = Categorical(z)
    return [
        ("Categorical d logp / d logits", str(z.shape),
         lambda z_: w @ Categorical(z_).logp(a), lambda z_: w[:, None] * Categorical(z_).dlogp(a), z),
        ("Categorical d entropy / d logits", str(z.shape),
         lambda z_: w @ Categorical(z_).entropy(), lambda z_: w[:, None] * Categorical(z_).dentropy(), z),
        ("Categorical d KL(p||q) / d logits_q", str(zq.shape),
         lambda q: w @ p.kl(Categorical(q)), lambda q: w[:, None] * p.dkl(Categorical(q)), zq),
    ]


def gaussian_checks(rng, N=6, D=3):
    """Score (DIST.5), entropy (DIST.6), KL (DIST.7) in (mean, log_std)."""
    mu, s = rng.standard_normal((N, D)), 0.3 * rng.standard_normal((N, D))
    mq, sq = rng.standard_normal((N, D)), 0.3 * rng.standard_normal((N, D))
    a = rng.standard_normal((N, D))
    w = rng.standard_normal(N)
    p = DiagGaussian(mu, s)

    def entry(quantity, value, deriv, x0):                  # x = {"mean", "log_std"}
        x = {"mean": x0[0].copy(), "log_std": x0[1].copy()}
        f = lambda x_: w @ value(x_["mean"], x_["log_std"])
        g = lambda x_: dict(zip(("mean", "log_std"), (w[:, None] * d for d in deriv(x_["mean"], x_["log_std"]))))
        return (quantity, f"({N}, {D}) x2", f, g, x)
    return [
        entry("Gaussian d logp / d(mean, log_std)",
              lambda m, l: DiagGaussian(m, l).logp(a), lambda m, l: DiagGaussian(m, l).dlogp(a), (mu, s)),
        entry("Gaussian d entropy / d(mean, log_std)",
              lambda m, l: DiagGaussian(m, l).entropy(), lambda m, l: DiagGaussian(m, l).dentropy(), (mu, s)),
        entry("Gaussian d KL(p||q) / d(mean_q, log_std_q)",
              lambda m, l: p.kl(DiagGaussian(m, l)), lambda m, l: p.dkl(DiagGaussian(m, l)), (mq, sq)),
    ]


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


def policy_checks(rng):
    """Through the network: the score (POL.1), the mean-KL gradient (POL.3), and the Fisher of
    (POL.2) as the Hessian of the mean KL at theta_old (finite differences of (POL.3)), against the
    explicit Z^T Z of npg (NPG.3), and its quadratic form."""
    return _policy_entries(rng, False) + _policy_entries(rng, True)


def _policy_entries(rng, gaussian):
    """The entries of policy_checks for one policy kind (a function each, so that every lambda
    closes over its own arrays)."""
    from rlref.algos import npg
    table = []
    params, obs = _policy(rng, gaussian)
    a = policy_forward(params, obs)[0].sample(rng)
    N = obs.shape[0]

    def g(p):
        d, cache = policy_forward(p, obs)
        score = d.dlogp(a)
        return policy_backward(tuple(s_ / N for s_ in score) if gaussian else score / N, cache)
    table.append((f"{_kind(gaussian)} policy: d mean logp / d theta", f"P={flatten(params).size}",
                  lambda p: policy_forward(p, obs)[0].logp(a).mean(), g, params))
    theta_old = flatten(params)
    old_dist = policy_forward(params, obs)[0]
    theta = theta_old + 0.3 * rng.standard_normal(theta_old.size)      # away from the minimum
    table.append((f"{_kind(gaussian)} policy: mean KL gradient (POL.3) d/dtheta", f"P={theta.size}",
                  lambda t: mean_kl(t, old_dist, params, obs), lambda t: mean_kl_grad(params, old_dist, t, obs),
                  theta))
    H = lambda: numerical_jacobian(lambda t: mean_kl_grad(params, old_dist, t, obs), theta_old.copy())
    P = theta_old.size
    table.append((f"{_kind(gaussian)} policy: Hessian of mean KL at theta_old vs J^T M J",
                  f"({P}, {P})", lambda: float(rel_error(matrix_free_fisher(params, obs), H()).max())))
    F_explicit = lambda: npg.fisher_matrix(npg.fisher_factor(params, obs, "exact"))
    x = rng.standard_normal(theta_old.size)
    dist, cache = policy_forward(params, obs)
    table.append((f"{_kind(gaussian)} policy: x^T F x one forward pass vs explicit", "()",
                  lambda: float(rel_error(fisher_quadratic(dist, cache, x, params), x @ F_explicit() @ x))))
    return table


def loss_checks(rng):
    """The losses the algorithms descend, each through rlref's (loss, grad, aux) contract:
    REINFORCE (PG.4), A2C (AC.3) in theta and in phi, TRPO's surrogate (TRPO.1-2) away from
    theta_old, PPO's clipped (PPO.1-2) and penalty (PPO.3) objectives at the distribution's own
    parameters and through the network, PPO's joint loss (PPO.6), and the value losses (V.1),
    (PPO.5), at points at least 1e-3 away from every kink (flat regions are tested for exact zeros)."""
    table = []
    for gaussian in (False, True):
        table += _algorithm_loss_entries(rng, gaussian) + _ppo_entries(rng, gaussian)
    V_old, R_hat = rng.standard_normal(20), rng.standard_normal(20)
    v = V_old + np.where(rng.random(20) < 0.5, 1, -1) * rng.uniform(0.05, 0.5, 20)   # |v - V_old| != 0.2
    v = np.where(np.abs(np.abs(v - V_old) - 0.2) < 1e-3, v + 0.01, v)
    table.append(_loss_entry("value loss (V.1)", str(v.shape), lambda x: value_loss_and_grad(x, R_hat), v))
    table.append(_loss_entry("PPO clipped value loss (PPO.5)", str(v.shape),
                             lambda x: value_loss_and_grad(x, R_hat, V_old, 0.2), v))
    return table


def _algorithm_loss_entries(rng, gaussian):
    from rlref.algos import a2c, reinforce, trpo
    table = []
    kind, policy, obs, actions = _sampled(rng, gaussian, N=8)
    A_hat, R_hat = rng.standard_normal(8), rng.standard_normal(8)
    table.append(_loss_entry(f"REINFORCE loss (PG.4), {kind}", f"P={flatten(policy).size}",
                             lambda p: reinforce.loss_and_grad(p, obs, actions, A_hat), policy))
    value = init_mlp([obs.shape[1], 4, 1], rng, out_gain=1.0)
    config = a2c.Config(ent_coef=0.3, vf_coef=0.7)
    table.append((f"A2C loss (AC.3) d/dtheta, with entropy, {kind}", f"P={flatten(policy).size}",
                  lambda p: a2c.loss_and_grad(p, value, obs, actions, A_hat, R_hat, config)[0],
                  lambda p: a2c.loss_and_grad(p, value, obs, actions, A_hat, R_hat, config)[1][0], policy))
    table.append((f"A2C loss (AC.3) d/dphi (value term), {kind}", f"P={flatten(value).size}",
                  lambda v: a2c.loss_and_grad(policy, v, obs, actions, A_hat, R_hat, config)[0],
                  lambda v: a2c.loss_and_grad(policy, v, obs, actions, A_hat, R_hat, config)[1][1], value))
    theta_old = flatten(policy) + 0.1 * rng.standard_normal(flatten(policy).size)
    logp_old = policy_forward(unflatten(theta_old, policy), obs)[0].logp(actions)   # ratio != 1
    table.append(_loss_entry(f"TRPO surrogate (TRPO.1) d/dtheta, {kind}", f"P={flatten(policy).size}",
                             lambda p: trpo.surrogate_and_grad(p, obs, actions, A_hat, logp_old), policy))
    return table


def _ppo_entries(rng, gaussian):
    from rlref.algos import ppo
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
    table = []
    for objective in ("clip", "penalty"):
        config = ppo.Config(objective=objective, ent_coef=0.1, kl_target=1e-4)   # hinge active
        tag = "PPO.1" if objective == "clip" else "PPO.3"

        def g(p, config=config):
            dist, cache = policy_forward(p, obs)
            return policy_backward(ppo.policy_loss_and_grad(dist, dist_old, actions, logp_old, A_hat,
                                                            config, 0.5)[1], cache)
        table.append((f"PPO {objective} objective with entropy ({tag}), {kind}", f"P={flatten(theta).size}",
                      lambda p, config=config: ppo.policy_loss_and_grad(policy_forward(p, obs)[0], dist_old, actions,
                                                                        logp_old, A_hat, config, 0.5)[0], g, theta))
        if not gaussian:                                   # at its own level: no backprop needed
            logits = policy_forward(theta, obs)[0].logits.copy()
            table.append(_loss_entry(f"PPO {objective} objective d/dlogits ({tag})", str(logits.shape),
                                     lambda z, config=config: ppo.policy_loss_and_grad(
                                         Categorical(z), dist_old, actions, logp_old, A_hat, config, 0.5), logits))
    value = init_mlp([obs.shape[1], 4, 1], rng, out_gain=1.0)
    x = np.concatenate([flatten(theta), flatten(value)])
    split = splitter(theta, value)
    mb = {"obs": obs, "actions": actions, "logp_old": logp_old, "A_hat": A_hat,
          "R_hat": rng.standard_normal(12), "V_old": rng.standard_normal(12), "dist_old": dist_old}
    config = ppo.Config(ent_coef=0.1, vf_coef=0.7, normalize_adv="none")
    table.append(_loss_entry(f"PPO joint loss (PPO.6) d/d(theta, phi), {kind}", f"P={x.size}",
                             lambda t: ppo.minibatch_loss_and_grad(t, split, mb, config, 0.5), x))
    return table


def agreement_checks(rng):
    """The Fisher-vector products: matrix-free (POL.2, TRPO.6) and by finite differences of the
    mean-KL gradient (TRPO.7), against the explicit Z^T Z of npg (NPG.3); Z^T Z against the
    Hessian of the mean KL; npg's per-sample score matrix (NPG.4) through a random projection."""
    from rlref.algos import npg, trpo
    table = []
    for gaussian in (False, True):
        kind = _kind(gaussian)
        policy, obs = _policy(rng, gaussian, N=8)
        v = rng.standard_normal(flatten(policy).size)
        Fv = lambda policy=policy, obs=obs, v=v: npg.fisher_matrix(npg.fisher_factor(policy, obs, "exact")) @ v
        table.append((f"TRPO F v matrix-free (TRPO.6) vs explicit, {kind}", f"P={v.size}",
                      lambda policy=policy, obs=obs, v=v, Fv=Fv: float(rel_error(
                          trpo.fisher_vector_product(policy, obs, 0.0)(v), Fv()).max())))
        table.append((f"TRPO F v finite-difference (TRPO.7) vs explicit, {kind}", f"P={v.size}",
                      lambda policy=policy, obs=obs, v=v, Fv=Fv: float(rel_error(
                          trpo.fisher_vector_product_fd(policy, obs, 0.0)(v), Fv()).max())))
    for gaussian in (False, True):
        table += _npg_entries(rng, gaussian)
    return table


def _npg_entries(rng, gaussian):
    from rlref.algos import npg
    table = []
    kind, policy, obs, actions = _sampled(rng, gaussian, N=6)
    w = rng.standard_normal(6)                             # random projection over samples
    table.append((f"NPG score matrix rows (NPG.4), w^T score, {kind}", f"P={flatten(policy).size}",
                  lambda p: w @ policy_forward(p, obs)[0].logp(actions),
                  lambda p: unflatten(w @ npg.score_matrix(p, obs, actions), p), policy))
    theta_old = flatten(policy)
    old_dist = policy_forward(policy, obs)[0]
    H = lambda: numerical_jacobian(lambda t: mean_kl_grad(policy, old_dist, t, obs), theta_old.copy())
    F = lambda: npg.fisher_matrix(npg.fisher_factor(policy, obs, "exact"))
    table.append((f"NPG exact Fisher Z^T Z (NPG.3) vs Hessian of mean KL, {kind}",
                  f"({theta_old.size}, {theta_old.size})", lambda: float(rel_error(F(), H()).max())))
    return table


ALL_CHECKS = [mlp_checks, categorical_checks, gaussian_checks, policy_checks, loss_checks, agreement_checks]


def not_implemented(err):
    """The error column of a row whose code is a homework stub: "not implemented (Exercise TAG)"."""
    text = str(err)
    tag = text.split(":")[0].removeprefix("Exercise ").strip() if text.startswith("Exercise ") else ""
    return f"not implemented (Exercise {tag})" if tag else "not implemented"


def run_checks(seed=0, checks=None):
    """Run every check; returns rows (quantity, shape, error, passed). In a student version of the
    package, a row (or a whole group, when building its inputs already needs a stub) whose code
    raises NotImplementedError gets the error "not implemented (Exercise TAG)" and fails."""
    rng = np.random.default_rng(seed)
    rows = []
    for check in (checks or ALL_CHECKS):
        try:
            table = check(rng)
        except NotImplementedError as err:
            rows.append((f"{check.__name__} (every row)", "", not_implemented(err), False))
            continue
        for quantity, shape, *rest in table:
            try:                                                      # (f, grad_f, x), or an error to measure
                error = _error(*rest) if len(rest) == 3 else (rest[0]() if callable(rest[0]) else rest[0])
            except NotImplementedError as err:
                rows.append((quantity, shape, not_implemented(err), False))
                continue
            rows.append((quantity, shape, error, bool(error <= TOL)))
    return rows


def format_table(rows):
    width = max(len(r[0]) for r in rows)
    lines = [f"{'quantity':<{width}}  {'shape':<12}  {'max rel error':>13}  result",
             "-" * (width + 38)]
    for quantity, shape, error, passed in rows:
        if isinstance(error, str):                                    # a homework stub
            lines.append(f"{quantity:<{width}}  {shape:<12}  {'':>13}  {error}")
            continue
        lines.append(f"{quantity:<{width}}  {shape:<12}  {error:>13.2e}  {'pass' if passed else 'FAIL'}")
    n_fail = sum(not r[3] for r in rows)
    lines.append(f"{len(rows) - n_fail} of {len(rows)} checks passed (tolerance {TOL:.0e} on "
                 f"|a - n| / max(1, |a|, |n|), central differences with h = 1e-6 max(1, |x|))")
    return "\n".join(lines)
