"""Public tests of the homework exercises in the algorithms: shipped with every student version.

As in test_exercises_core.py: a probe calls the student's code on fixed inputs, a judge checks
the outputs. Losses are checked against finite differences of the student's own loss values (the
probe sends the loss at theta +- h e_i; the judge takes the differences), against exact values at
zero parameters, where the policy is uniform (or a unit Gaussian at zero) and the value net is 0,
and against invariants. The Fisher tests compare with the Hessian of the mean KL at theta_old by
second differences of KL values. Formula checks at random parameters are hidden tests.
"""
import numpy as np

from rlref.algos import a2c, npg, ppo, reinforce
from rlref.distributions import Categorical
from rlref.gradcheck import numerical_grad
from rlref.homework import expect
from rlref.homework.testing import exercise, values_around
from rlref.nn import flatten, init_mlp, unflatten
from rlref.policy import fisher_vector_product, init_policy, mean_kl, policy_forward

KINDS = ("categorical", "gaussian")


def policy_case(seed, gaussian, N=6, sizes=(3, 4, 2)):
    """A policy with non-trivial weights, observations, actions and per-sample weights w."""
    rng = np.random.default_rng(seed)
    params = init_policy(list(sizes), rng, gaussian=gaussian, out_gain=1.0)
    if gaussian:
        params["log_std"] = 0.3 * rng.standard_normal(sizes[-1])
    obs = rng.standard_normal((N, sizes[0]))
    actions = rng.standard_normal((N, sizes[-1])) if gaussian else rng.integers(sizes[-1], size=N)
    return params, obs, actions, rng.standard_normal(N)


def zeros_like(params):
    return {k: np.zeros_like(v) for k, v in params.items()}


def copy(params):
    return {k: v.copy() for k, v in params.items()}


def _zero_policy_logp(gaussian, actions, A=2):
    """log pi(a|s) at zero parameters: uniform over A actions, or a unit Gaussian at 0 per dimension."""
    if gaussian:
        return np.sum(-0.5 * actions ** 2 - 0.5 * np.log(2 * np.pi), axis=1)
    return np.full(len(actions), -np.log(A))


# ------------------------------------------------------------------ PG.4: REINFORCE

def reinforce_runs():
    out = {}
    for kind in KINDS:
        policy, obs, actions, w = policy_case(14, kind == "gaussian")
        loss = lambda p: reinforce.loss_and_grad(p, obs, actions, w)[0]
        out[kind] = {"loss_and_grad": reinforce.loss_and_grad(policy, obs, actions, w)[:2],
                     "around": values_around(loss, copy(policy)),
                     "at_zero": reinforce.loss_and_grad(zeros_like(policy), obs, actions, w)[0],
                     "double_w": reinforce.loss_and_grad(policy, obs, actions, 2 * w)[:2]}
    return out


@exercise("PG.4", reinforce_runs)
def test_reinforce_gradient_matches_finite_differences_of_the_loss(out):
    for kind in KINDS:
        policy = policy_case(14, kind == "gaussian")[0]
        expect.gradient(f"dL/dtheta ({kind})", out[kind]["loss_and_grad"][1], expect.differences(out[kind]["around"], policy))


@exercise("PG.4", reinforce_runs)
def test_reinforce_loss_at_zero_parameters_and_its_linearity_in_w(out):
    for kind in KINDS:
        _, _, actions, w = policy_case(14, kind == "gaussian")
        want = -np.mean(_zero_policy_logp(kind == "gaussian", actions) * w)
        expect.close(f"L at zero parameters ({kind}: the policy is uniform or N(0, 1))", out[kind]["at_zero"], want, atol=1e-12)
        L, grads = out[kind]["loss_and_grad"]
        L2, grads2 = out[kind]["double_w"]
        expect.close(f"L with the weights doubled ({kind})", L2, 2 * L, atol=1e-12, rtol=1e-12)
        for k, g in grads.items():
            expect.close(f"dL/d{k} with the weights doubled ({kind})", grads2[k], 2 * np.asarray(g), atol=1e-12, rtol=1e-12)


# ------------------------------------------------------------------ AC.3: A2C

A2C_CONFIG = dict(ent_coef=0.3, vf_coef=0.7)


def a2c_case(seed=15):
    policy, obs, actions, _ = policy_case(seed, False)
    rng = np.random.default_rng(seed + 1)
    value = init_mlp([3, 4, 1], rng)
    return policy, value, obs, actions, rng.standard_normal(len(obs)), rng.standard_normal(len(obs))


def a2c_runs():
    policy, value, obs, actions, A_hat, R_hat = a2c_case()
    config = a2c.Config(**A2C_CONFIG)
    run = lambda p, v: a2c.loss_and_grad(p, v, obs, actions, A_hat, R_hat, config)
    loss, grads, aux = run(policy, value)
    zero = run(zeros_like(policy), zeros_like(value))
    return {"loss": loss, "grads": grads, "around_pi": values_around(lambda p: run(p, value)[0], copy(policy)),
            "around_v": values_around(lambda v: run(policy, v)[0], copy(value)),
            "zero": [zero[0], {k: zero[2][k] for k in ("loss_pi", "entropy", "loss_v")}]}


@exercise("AC.3", a2c_runs)
def test_a2c_gradients_match_finite_differences_of_the_loss(out):
    policy, value = a2c_case()[:2]
    grads_pi, grads_v = out["grads"]
    expect.gradient("dL/dtheta", grads_pi, expect.differences(out["around_pi"], policy))
    expect.gradient("dL/dphi", grads_v, expect.differences(out["around_v"], value))


@exercise("AC.3", a2c_runs)
def test_a2c_loss_and_its_parts_at_zero_parameters(out):
    _, _, _, _, A_hat, R_hat = a2c_case()
    # a uniform policy over 2 actions: log pi = -log 2, H = log 2; the zero value net predicts V = 0
    want = {"loss_pi": np.log(2) * A_hat.mean(), "entropy": np.log(2), "loss_v": np.mean(R_hat ** 2)}
    loss, parts = out["zero"]
    for k, v in want.items():
        expect.close(f"aux[{k!r}] at zero parameters", parts[k], v, atol=1e-12)
    total = want["loss_pi"] - A2C_CONFIG["ent_coef"] * want["entropy"] + A2C_CONFIG["vf_coef"] * want["loss_v"]
    expect.close("L = loss_pi - ent_coef H + vf_coef loss_v at zero parameters", loss, total, atol=1e-12)


# ------------------------------------------------------------------ NPG.3, TRPO.6: the Fisher matrix

def kl_hessian(policy, obs, h=1e-4):
    """The Hessian of theta -> mean KL(pi_old || pi_theta) at theta_old (= the Fisher), by second
    central differences of KL values; error about 1e-8 here."""
    theta, old = flatten(policy), policy_forward(policy, obs)[0]
    f = lambda t: mean_kl(t, old, policy, obs)
    E = h * np.eye(theta.size)
    H = np.zeros((theta.size, theta.size))
    for i in range(theta.size):
        for j in range(i, theta.size):
            H[i, j] = H[j, i] = (f(theta + E[i] + E[j]) - f(theta + E[i] - E[j]) - f(theta - E[i] + E[j])
                                 + f(theta - E[i] - E[j])) / (4 * h * h)
    return H


def fisher_factor_runs():
    out = {kind: npg.fisher_factor(*policy_case(16, kind == "gaussian")[:2], "exact") for kind in KINDS}
    policy, obs, actions, _ = policy_case(16, False)
    out["empirical"] = npg.fisher_factor(policy, obs, "empirical", actions)
    return out


@exercise("NPG.3", fisher_factor_runs)
def test_exact_fisher_factor_gives_the_hessian_of_the_kl(out):
    for kind in KINDS:
        policy, obs = policy_case(16, kind == "gaussian")[:2]
        Z = expect.as_array(f"Z ({kind})", out[kind])
        expect.true(Z.ndim == 2 and Z.shape[1] == flatten(policy).size,
                    f"Z ({kind}) must have one column per parameter: shape (R, {flatten(policy).size}), got {Z.shape}")
        expect.close(f"Z^T Z ({kind}, against the Hessian of the mean KL)", Z.T @ Z, kl_hessian(policy, obs), atol=1e-6)


@exercise("NPG.3", fisher_factor_runs)
def test_empirical_fisher_factor_gives_the_mean_outer_product_of_scores(out):
    policy, obs, actions, _ = policy_case(16, False)
    theta = flatten(policy)
    logp = lambda t, i: policy_forward(unflatten(t, policy), obs[i:i + 1])[0].logp(actions[i:i + 1])[0]
    scores = np.stack([numerical_grad(lambda t: logp(t, i), theta.copy()) for i in range(len(obs))])   # (N, P)
    Z = expect.as_array("Z (empirical)", out["empirical"])
    expect.true(Z.ndim == 2 and Z.shape[1] == theta.size, f"Z must have {theta.size} columns, got shape {Z.shape}")
    expect.close("Z^T Z (empirical, NPG.4)", Z.T @ Z, scores.T @ scores / len(obs), atol=1e-7)


def fvp_vectors(policy, seed=17):
    return np.random.default_rng(seed).standard_normal((3, flatten(policy).size))


def fisher_vector_product_runs():
    out = {}
    for kind in KINDS:
        policy, obs = policy_case(18, kind == "gaussian")[:2]
        fvp = fisher_vector_product(policy, obs, damping=0.1)
        out[kind] = [fvp(v) for v in fvp_vectors(policy)]
    return out


def expect_fisher_products(out, fisher, atol, against):
    """The products the probe sent against F v + 0.1 v, F = fisher(policy, obs) for each kind."""
    for kind in KINDS:
        policy, obs = policy_case(18, kind == "gaussian")[:2]
        F = fisher(policy, obs)
        for k, v in enumerate(fvp_vectors(policy)):
            expect.close(f"F v + damping v ({kind}, vector {k}; F as {against})", out[kind][k], F @ v + 0.1 * v, atol=atol)


@exercise("TRPO.6", fisher_vector_product_runs)
def test_fisher_vector_product_against_the_hessian_of_the_kl(out):
    expect_fisher_products(out, kl_hessian, 1e-6, "the Hessian of the mean KL")


# ------------------------------------------------------------------ PPO.2: the clipped and penalty losses

def ppo_case(objective, seed=19, N=12, A=3):
    """Logits z and z_old with every ratio at least 1e-3 away from the clip's kinks 1 +- 0.2."""
    rng = np.random.default_rng(seed)
    z_old, actions = rng.standard_normal((N, A)), rng.integers(A, size=N)
    logp_old = Categorical(z_old).logp(actions)
    for _ in range(100):
        z = z_old + 0.4 * rng.standard_normal(z_old.shape)
        ratio = np.exp(Categorical(z).logp(actions) - logp_old)
        if np.min(np.abs(ratio[:, None] - [0.8, 1.2])) > 1e-3:
            break
    config = ppo.Config(objective=objective, ent_coef=0.05, clip_eps=0.2, kl_target=1e-3, hinge_coef=10.0)
    return z, z_old, actions, logp_old, rng.standard_normal(N), config


def ppo_runs():
    out = {}
    for objective in ("clip", "penalty"):
        z, z_old, actions, logp_old, A_hat, config = ppo_case(objective)
        run = lambda z_: ppo.policy_loss_and_grad(Categorical(z_), Categorical(z_old), actions, logp_old, A_hat, config, 0.5)
        loss, ddist, aux = run(z)
        out[objective] = {"loss": loss, "ddist": ddist, "ratio": aux["ratio"], "around": values_around(lambda z_: run(z_)[0], z.copy()),
                          "at_old": run(z_old.copy())[:2]}
    z, z_old, actions, logp_old, A_hat, _ = ppo_case("clip")
    no_entropy = ppo.Config(objective="clip", ent_coef=0.0, clip_eps=0.2)
    out["clip_no_entropy"] = ppo.policy_loss_and_grad(Categorical(z), Categorical(z_old), actions, logp_old, A_hat,
                                                      no_entropy, 0.5)[1]
    return out


@exercise("PPO.2", ppo_runs)
def test_ppo_loss_derivative_matches_finite_differences_of_the_loss(out):
    for objective in ("clip", "penalty"):
        z = ppo_case(objective)[0]
        expect.gradient(f"dL/dlogits ({objective})", out[objective]["ddist"], expect.differences(out[objective]["around"], z))


@exercise("PPO.2", ppo_runs)
def test_ppo_ratio_and_the_exactly_flat_clipped_region(out):
    z, _, actions, logp_old, A_hat, _ = ppo_case("clip")
    ratio = np.exp(Categorical(z).logp(actions) - logp_old)
    expect.close("aux['ratio'] = pi / pi_old", out["clip"]["ratio"], ratio, rtol=1e-12, atol=0)
    binds = ((A_hat > 0) & (ratio > 1.2)) | ((A_hat < 0) & (ratio < 0.8))
    assert binds.any() and (~binds).any(), "the case must have clipped and unclipped samples"
    ddist = expect.as_array("dL/dlogits (ent_coef = 0)", out["clip_no_entropy"], z.shape)
    expect.equal("dL/dlogits (ent_coef = 0) of the samples where the clip binds (exactly flat there)", ddist[binds],
                 np.zeros((binds.sum(), z.shape[1])))
    expect.true(np.abs(ddist[~binds]).min(axis=1).max() > 0, "the samples where the clip does not bind have a gradient")


@exercise("PPO.2", ppo_runs)
def test_ppo_losses_at_theta_old(out):
    z, z_old, actions, logp_old, A_hat, config = ppo_case("clip")
    # at theta_old every ratio is 1 and the KL is 0: both objectives are the mean advantage plus the entropy bonus
    want = -(A_hat.mean() + config.ent_coef * Categorical(z_old).entropy().mean())
    for objective in ("clip", "penalty"):
        expect.close(f"L at theta_old ({objective})", out[objective]["at_old"][0], want, atol=1e-12)
    expect.close("dL/dlogits at theta_old: the clipped and the penalty objective agree", out["clip"]["at_old"][1],
                 out["penalty"]["at_old"][1], atol=1e-12)
