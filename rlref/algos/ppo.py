"""Proximal policy optimization (Schulman et al. 2017), clipped or with an adaptive KL penalty.

Derived in ``notebooks/05_ppo.ipynb`` from the course notes: the *PG review notes* (PPO), the *DPPO
notes* and the *TRPO and PPO lecture notes* (notebooks/README.md lists them). ratio_i =
pi_theta(a_i|s_i) / pi_old(a_i|s_i) = exp(logp_i - logp_old_i); A_hat from GAE; KL_i =
KL(pi_old(.|s_i) || pi_theta(.|s_i)), always in that direction.

    L_clip(theta) = mean_i min(ratio_i A_i, clip(ratio_i, 1 - eps, 1 + eps) A_i)          (PPO.1)
    d L_clip / d logp_i = ratio_i A_i where the unclipped term is the minimum, else 0     (PPO.2)
    L_pen(theta) = mean_i ratio_i A_i - beta mean_i KL_i
                   - eta max(0, mean_i KL_i - 2 kl_target)^2       (hinge of the DPPO notes)  (PPO.3)
    after each iteration, with d = mean KL(pi_old || pi_new):
        d < kl_target / 1.5 -> beta / 2;   d > 1.5 kl_target -> beta * 2,
        then beta is kept in [beta_min, beta_max]                                          (PPO.4)
    L_v(phi) = mean_i (V_i - R_i)^2, or with clipping against V_old stored at collection:
        mean_i max((V_i - R_i)^2, (V_old_i + clip(V_i - V_old_i, -eps_v, eps_v) - R_i)^2)  (PPO.5)
    loss = -L_policy - c_ent mean_i H_i + c_v L_v                                          (PPO.6)

One iteration:
  Step 1. Collect T steps of E envs (the collector normalizes observations and scales rewards
          when asked), storing logp_old.
  Step 2. V_old = V_phi(obs) once, before any update (it is what clipping compares with); GAE;
          advantages standardized over the batch.
  Step 3. For each epoch, for each shuffled minibatch: the gradients of (PPO.6) by manual
          backprop, global-norm clipping (OPT.3), one Adam step (OPT.2) on (theta, phi).
          Optionally stop the epochs once the k3 estimate of the KL exceeds 1.5 early_stop_kl.
  Step 4. The exact mean KL(pi_old || pi_new) over the batch; adapt beta (PPO.4) for the penalty.
  Step 5. Log the KL, its k1 and k3 estimates, the clip fraction, entropy, explained variance.

A loss and its gradient follow one contract everywhere in rlref: ``loss, grad, aux =
..._loss_and_grad(...)``, loss a float, grad in the format of what is differentiated (here the
distribution's parameters, as ``dist.dlogp`` returns them), aux a dict of by-products.

Each implementation detail is a named, switchable Config field; notebooks/05_ppo.ipynb measures
what each buys.
"""
from dataclasses import dataclass, replace

import numpy as np

from rlref.advantages import batch_samples, standardize
from rlref.config import TrainConfig
from rlref.errors import ConfigError, require_choice, require_float, require_int
from rlref.nn import INITS, flatten, mlp_backward, mlp_forward, splitter
from rlref.optim import adam_init, adam_step, clip_grad_norm, linear_decay
from rlref.policy import add, init_policy_from, policy_backward, policy_forward, scale_rows
from rlref.value import explained_variance, init_value, value_loss_and_grad

ROLLOUT = "steps"
OBJECTIVES = ("clip", "penalty")
ADV_NORMS = ("batch", "minibatch", "none")

# Settings per env, applied by the command line under any --set (the Config defaults are
# CartPole's). Pendulum needs the continuous-control details: normalized observations, scaled
# rewards, longer rollouts, more epochs at a lower rate, and a shorter horizon (gamma 0.95).
# NOTE (implementation detail): on Acrobot scaled rewards and an entropy bonus of 0.01: without
# them a run whose policy turns deterministic before it finds the goal stays there (every episode
# -500, advantages zero, nothing to learn from); with them the two such seeds of 41 solve
# (docs/results.md has the runs and the rate on unseen seeds).
PRESETS = {
    "Pendulum-v1": dict(total_steps=200_000, hidden=(64, 64), num_envs=8, n_steps=256, epochs=10,
                        minibatch_size=256, gamma=0.95, lam=0.95, lr=1e-3, vf_coef=0.5, ent_coef=0.0,
                        max_grad_norm=0.5, normalize_obs=True, scale_reward=True),
    "Acrobot-v1": dict(total_steps=200_000, hidden=(64, 64), num_envs=8, n_steps=128, epochs=4,
                       minibatch_size=256, gamma=0.99, lam=0.95, lr=1e-3, vf_coef=0.5, ent_coef=0.01,
                       max_grad_norm=0.5, normalize_obs=True, scale_reward=True),
}
# MuJoCo: the PPO paper's settings as CleanRL's ppo_continuous_action runs them (the published table
# docs/results.md compares with): one env, 2048-step rollouts, 10 epochs of 32 minibatches of 64, lr 3e-4
# annealed, minibatch advantage standardization, value clipping, no entropy bonus, normalized
# observations and scaled rewards. CleanRL's value loss is 0.5 mean(...) with c_v 0.5: c_v 0.25 here.
MUJOCO = dict(total_steps=1_000_000, hidden=(64, 64), num_envs=1, n_steps=2048, epochs=10, minibatch_size=64,
              gamma=0.99, lam=0.95, lr=3e-4, vf_coef=0.25, ent_coef=0.0, clip_value=True, max_grad_norm=0.5,
              normalize_adv="minibatch", normalize_obs=True, scale_reward=True, eval_episodes=10)
PRESETS.update({env: MUJOCO for env in ("HalfCheetah-v5", "Walker2d-v5")})
# NOTE (implementation detail): Hopper without value clipping: with it, some seeds stay in Hopper's
# dive-and-fall optimum (docs/mujoco.md has the runs of both).
PRESETS["Hopper-v5"] = {**MUJOCO, "clip_value": False}
# Box2D: RL-Zoo's LunarLander settings (gamma 0.999, lam 0.98, 4 epochs, minibatches of 64, entropy
# 0.01, no normalization) with 8 envs x 256 steps per batch instead of 16 x 1024 (the same 128
# minibatch steps per 2048 samples, in shorter iterations).
PRESETS.update({env: dict(total_steps=1_000_000, hidden=(64, 64), num_envs=8, n_steps=256, epochs=4,
                          minibatch_size=64, gamma=0.999, lam=0.98, lr=3e-4, vf_coef=0.5, ent_coef=0.01,
                          max_grad_norm=0.5, anneal_lr=False, eval_episodes=20)
                for env in ("LunarLander-v3", "LunarLanderContinuous-v3")})


# NOTE (implementation detail): the CartPole defaults are chosen for the time to solve, not only the
# steps: the minibatch steps are arithmetic-bound in float64 NumPy, so the defaults do less arithmetic
# per solve (one small layer, small batches that improve the policy more often per sample, a larger lr).
# docs/results.md has the sweep that chose them and what was rejected. Every other
# preset, and DPPO, keeps its own settings (they name every one of these fields).
@dataclass
class Config(TrainConfig):
    total_steps: int = 100_000       # budget (lr decays linearly to 0 over it)
    hidden: tuple = (32,)            # one layer of 32 is enough for CartPole (see the NOTE above)
    num_envs: int = 16               # E
    n_steps: int = 8                 # T: steps per env per iteration (a batch of E T = 128)
    epochs: int = 5                  # passes over the batch
    minibatch_size: int = 128        # samples per gradient step
    gamma: float = 0.98              # discount
    lam: float = 0.8                 # GAE lambda
    objective: str = "clip"          # "clip" (PPO.1) or "penalty" (PPO.3)
    clip_eps: float = 0.2            # epsilon of (PPO.1)
    beta: float = 1.0                # initial KL coefficient of (PPO.3)
    kl_target: float = 0.01          # d_targ of (PPO.4)
    beta_min: float = 1e-4           # the band (PPO.4) keeps beta in, so that it can always
    beta_max: float = 1e4            # ... recover within a few iterations (about 13 doublings)
    hinge_coef: float = 50.0         # eta of the hinge in (PPO.3); 0 disables it
    ent_coef: float = 0.005          # c_ent: a little keeps the policy from settling early on a mediocre gait
    vf_coef: float = 1.0             # c_v (with separate networks it acts through the shared clip)
    clip_value: bool = False         # value clipping (PPO.5) against V_old, with eps_v = clip_eps
    normalize_adv: str = "batch"     # advantage standardization: "batch", "minibatch" or "none"
    lr: float = 2e-2                 # Adam step size
    adam_eps: float = 1e-5           # Adam epsilon
    anneal_lr: bool = True           # decay lr linearly to 0 over the budget
    max_grad_norm: float = 1.0       # global-norm clip of the joint gradient
    early_stop_kl: float = None      # stop the epochs when k3 > 1.5 early_stop_kl (None: never)
    pi_out_gain: float = 0.01        # orthogonal init gain of the policy's last layer
    v_out_gain: float = 1.0          # ... and of the value function's
    hidden_gain: float = 1.4142135623730951   # ... and of hidden layers (sqrt 2)
    init: str = "orthogonal"         # weight init with those gains, or "xavier" (Glorot uniform)

    def __post_init__(self):
        super().__post_init__()
        for name in ("n_steps", "epochs", "minibatch_size"):
            require_int(name, getattr(self, name), 1)
        if self.minibatch_size > self.num_envs * self.n_steps:
            raise ConfigError(f"minibatch_size must be at most the batch, num_envs * n_steps = "
                              f"{self.num_envs * self.n_steps}, got {self.minibatch_size}")
        require_choice("objective", self.objective, OBJECTIVES)
        require_choice("normalize_adv", self.normalize_adv, ADV_NORMS)
        require_choice("init", self.init, INITS)
        require_float("lam", self.lam, 0.0, 1.0)
        require_float("clip_eps", self.clip_eps, 0.0, low_open=True)
        require_float("kl_target", self.kl_target, 0.0, low_open=True)
        require_float("beta_min", self.beta_min, 0.0, low_open=True)
        require_float("beta_max", self.beta_max, self.beta_min)
        require_float("beta", self.beta, self.beta_min, self.beta_max)
        for name in ("hinge_coef", "ent_coef", "vf_coef"):
            require_float(name, getattr(self, name), 0.0)
        for name in ("lr", "adam_eps", "max_grad_norm", "pi_out_gain", "v_out_gain", "hidden_gain"):
            require_float(name, getattr(self, name), 0.0, low_open=True)
        if self.early_stop_kl is not None:
            require_float("early_stop_kl", self.early_stop_kl, 0.0, low_open=True)


def init_agent(config, obs_dim, act_dim, gaussian, rng):
    policy = init_policy_from(config, obs_dim, act_dim, gaussian, rng, out_gain=config.pi_out_gain,
                              hidden_gain=config.hidden_gain, init=config.init)
    value = init_value(config, obs_dim, rng, out_gain=config.v_out_gain, hidden_gain=config.hidden_gain,
                       init=config.init)["value"]
    theta = np.concatenate([flatten(policy), flatten(value)])
    return {"policy": policy, "value": value, "opt": adam_init(theta), "state": {"beta": np.array(config.beta)}}


def kl_verdict(kl, config):
    """The direction in which PPO's rule (PPO.4) moves beta for a measured mean KL d: -1 (beta
    falls) when d < kl_target / 1.5, +1 (beta rises) when d > 1.5 kl_target, 0 in between and at
    the two boundaries. It asks adapt_beta itself, from beta = 1 in a band [1/2, 2] that never
    binds, so that the rule is written once (the distributed PPO's workers vote with it)."""
    moved = adapt_beta(1.0, kl, replace(config, beta=1.0, beta_min=0.5, beta_max=2.0))
    return int(moved > 1.0) - int(moved < 1.0)


def adapt_beta(beta, kl, config):
    """The PPO paper's rule (PPO.4): halve beta when the KL was well below kl_target (d < kl_target
    / 1.5), double it when well above (d > 1.5 kl_target); the boundaries leave it.

    NOTE (implementation detail): beta stays in [beta_min, beta_max] (the DPPO notes keep it in a
    band): on an easy task the KL stays below target for many iterations and an unbounded beta
    halves towards 1e-16, from where it would need fifty doublings to matter again."""
    if kl < config.kl_target / 1.5:
        beta = beta / 2.0
    elif kl > 1.5 * config.kl_target:
        beta = beta * 2.0
    return float(np.clip(beta, config.beta_min, config.beta_max))


def policy_loss_and_grad(dist, dist_old, actions, logp_old, A_hat, config, beta):
    """-L_policy (PPO.1 or PPO.3) minus the entropy bonus, its derivative w.r.t. the
    distribution's parameters (the format of dist.dlogp), and {"ratio": r_t(theta) (N,)}."""
    N = len(A_hat)
    ratio = np.exp(dist.logp(actions, check=False) - logp_old)             # (N,)
    score = dist.dlogp(actions, check=False)
    if config.objective == "clip":
        unclipped = ratio * A_hat
        clipped = ratio.clip(1.0 - config.clip_eps, 1.0 + config.clip_eps) * A_hat
        L = np.minimum(unclipped, clipped).mean()                          # (PPO.1)
        # d ratio / d logp = ratio; where the clipped term is the smaller one it is constant in
        # theta and the gradient is exactly zero (at ties, inside the range, both agree).  (PPO.2)
        dL_dlogp = np.where(unclipped <= clipped, unclipped, 0.0) / N
        ddist = scale_rows(score, -dL_dlogp)
    else:
        kl = dist_old.kl(dist)                                             # (N,) KL(old || theta)
        excess = max(0.0, kl.mean() - 2.0 * config.kl_target)
        L = (ratio * A_hat).mean() - beta * kl.mean() - config.hinge_coef * excess ** 2   # (PPO.3)
        dL_dkl = (beta + 2.0 * config.hinge_coef * excess) / N             # per sample
        ddist = add(scale_rows(score, -ratio * A_hat / N), scale_rows(dist_old.dkl(dist), dL_dkl))
    if config.ent_coef:                                                    # the entropy bonus
        L = L + config.ent_coef * dist.entropy().mean()
        ddist = add(ddist, scale_rows(dist.dentropy(), -config.ent_coef / N))
    return float(-L), ddist, {"ratio": ratio}


def minibatch_loss_and_grad(theta, split, mb, config, beta):
    """The loss (PPO.6) on one minibatch and its gradient in theta = (theta_pi, phi), flat, by
    manual backprop through both networks. split(theta) -> (policy, value) gives theta its shapes
    (rlref.nn.splitter). aux: loss_pi, loss_v, and, when early stopping is on, k3 (the KL estimate
    at theta, before the step)."""
    policy, value = split(theta)                                           # views into theta
    A_hat = standardize(mb["A_hat"]) if config.normalize_adv == "minibatch" else mb["A_hat"]
    dist, cache_pi = policy_forward(policy, mb["obs"], check=False)
    loss_pi, ddist, aux = policy_loss_and_grad(dist, mb["dist_old"], mb["actions"], mb["logp_old"],
                                               A_hat, config, beta)
    out, cache_v = mlp_forward(value, mb["obs"], check=False)              # (N, 1)
    loss_v, dv, _ = value_loss_and_grad(out[:, 0], mb["R_hat"], mb["V_old"],
                                        config.clip_eps if config.clip_value else None)   # (V.1) / (PPO.5)
    grads_pi = policy_backward(ddist, cache_pi)
    grads_v, _ = mlp_backward(config.vf_coef * dv[:, None], cache_v, need_dx=False)
    grad = np.concatenate([np.ravel(g) for g in (*grads_pi.values(), *grads_v.values())])   # (P + P_v,)
    out = {"loss_pi": loss_pi, "loss_v": loss_v}
    if config.early_stop_kl is not None:                                   # only early stopping reads it
        ratio = aux["ratio"]
        out["k3"] = float(np.mean((ratio - 1.0) - np.log(ratio)))
    return loss_pi + config.vf_coef * loss_v, grad, out


def minibatches(N, config, rng):
    """The sample indices of every minibatch step: `epochs` passes, each over a new shuffle of N."""
    n_mb = max(1, N // config.minibatch_size)
    for _ in range(config.epochs):
        yield from np.array_split(rng.permutation(N), n_mb)


def run_epochs(agent, samples, dist_old, config, rng, lr, beta, reduce=None):
    """Step 3: `epochs` passes over shuffled minibatches; per minibatch the gradient of (PPO.6),
    global-norm clipping (OPT.3) and one Adam step (OPT.2) on theta = (theta_pi, phi).

    reduce: None, or a function that averages an array over workers (the distributed PPO's
    Allreduce). It is applied to every gradient and every k3 before they are used, so that every
    worker takes the same step and makes the same early-stop decision.
    Returns ({"policy", "value", "opt"} after the last step, losses [(loss_pi, loss_v) per step],
    stopped); the new parameters are views into the last theta (no step modifies it in place)."""
    split = splitter(agent["policy"], agent["value"])                            # shapes once per update
    keys = ("obs", "actions", "logp_old", "A_hat", "R_hat", "V_old")
    theta, opt = np.concatenate([flatten(agent["policy"]), flatten(agent["value"])]), agent["opt"]
    losses, stopped = [], False
    for idx in minibatches(len(samples["A_hat"]), config, rng):
        mb = {k: samples[k][idx] for k in keys}
        mb["dist_old"] = dist_old.take(idx) if config.objective == "penalty" else None
        _, grad, aux = minibatch_loss_and_grad(theta, split, mb, config, beta)
        if reduce is not None:
            grad = reduce(grad)
        grad, _ = clip_grad_norm(grad, config.max_grad_norm, check=False)              # (OPT.3)
        theta, opt = adam_step(theta, grad, opt, lr, eps=config.adam_eps, check=False)  # (OPT.2)
        losses.append((aux["loss_pi"], aux["loss_v"]))
        if config.early_stop_kl is not None:
            k3 = aux["k3"] if reduce is None else float(reduce(np.array([aux["k3"]]))[0])
            if k3 > 1.5 * config.early_stop_kl:
                stopped = True
                break
    policy, value = split(theta)
    return {"policy": policy, "value": value, "opt": opt}, losses, stopped


def optimize(agent, samples, config, rng, budget_used, reduce=None):
    """Steps 3-5 on samples whose advantages are ready, for PPO and the distributed PPO alike: the
    epochs at the learning rate of (OPT.4), the exact mean KL(pi_old || pi_new) over the samples,
    and the log of the update with the beta its steps used. Returns (new agent without "state", log)."""
    dist_old, _ = policy_forward(agent["policy"], samples["obs"], check=False)
    lr = linear_decay(config.lr, budget_used, config.anneal_lr)               # (OPT.4)
    beta = float(agent["state"]["beta"])
    new, losses, stopped = run_epochs(agent, samples, dist_old, config, rng, lr, beta, reduce)   # Step 3
    dist_new, _ = policy_forward(new["policy"], samples["obs"], check=False)
    kl = float(dist_old.kl(dist_new).mean())                               # Step 4: exact KL(old || new)
    return new, diagnostics(samples, dist_new, kl, beta, losses, stopped, config)


def update(agent, batch, config, rng, budget_used=0.0):
    samples = batch_samples(batch, agent["value"], config.gamma, config.lam)      # Step 2 (GAE.2)
    if config.normalize_adv == "batch":
        samples["A_hat"] = standardize(samples["A_hat"])
    new, diag = optimize(agent, samples, config, rng, budget_used)                # Steps 3-5
    if config.objective == "penalty":
        diag["beta"] = adapt_beta(diag["beta"], diag["kl"], config)               # Step 4 (PPO.4)
    new["state"] = {"beta": np.array(diag["beta"])}
    return new, diag


def diagnostics(samples, dist_new, kl, beta, losses, stopped, config):
    """Step 5: the log of one update, over the whole batch."""
    log_ratio = dist_new.logp(samples["actions"], check=False) - samples["logp_old"]
    ratio = np.exp(log_ratio)
    return {"loss_pi": float(np.mean([l[0] for l in losses])), "loss_v": float(np.mean([l[1] for l in losses])),
            "entropy": float(dist_new.entropy().mean()), "kl": kl,
            "kl_k1": float(np.mean(-log_ratio)), "kl_k3": float(np.mean((ratio - 1.0) - log_ratio)),
            "clip_frac": float(np.mean(np.abs(ratio - 1.0) > config.clip_eps)),
            "explained_var": explained_variance(samples["R_hat"], samples["V_old"]),
            "beta": beta, "minibatch_steps": len(losses), "early_stop": int(stopped)}
