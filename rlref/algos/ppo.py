"""Proximal policy optimization (Schulman et al. 2017), clipped or with an adaptive KL penalty.

Derived in ``notebooks/04_ppo.ipynb`` from ../notes/001 ("PPO"), ../notes/003 (DPPO) and
../notes/004. ratio_i = pi_theta(a_i|s_i) / pi_old(a_i|s_i) = exp(logp_i - logp_old_i);
A_hat from GAE; KL_i = KL(pi_old(.|s_i) || pi_theta(.|s_i)), always in that direction.

    L_clip(theta) = mean_i min(ratio_i A_i, clip(ratio_i, 1 - eps, 1 + eps) A_i)          (PPO.1)
    d L_clip / d logp_i = ratio_i A_i where the unclipped term is the minimum, else 0     (PPO.2)
    L_pen(theta) = mean_i ratio_i A_i - beta mean_i KL_i
                   - eta max(0, mean_i KL_i - 2 kl_target)^2       (hinge of the DPPO notes)  (PPO.3)
    after each iteration, with d = mean KL(pi_old || pi_new):
        d < kl_target / 1.5 -> beta / 2;   d > 1.5 kl_target -> beta * 2                   (PPO.4)
    L_v(phi) = mean_i (V_i - R_i)^2, or with clipping against V_old stored at collection:
        mean_i max((V_i - R_i)^2, (V_old_i + clip(V_i - V_old_i, -eps_v, eps_v) - R_i)^2)  (PPO.5)
    loss = -L_policy - c_ent mean_i H_i + c_v L_v                                          (PPO.6)

One iteration:
  Step 1. Collect T steps of E envs (the collector normalizes observations and scales rewards
          when asked), storing logp_old.
  Step 2. V_old = V_phi(obs) once, before any update (it is what clipping compares with); GAE.
  Step 3. For each epoch, for each shuffled minibatch: the gradients of (PPO.6) by manual
          backprop, global-norm clipping (OPT.3), one Adam step (OPT.2) on (theta, phi).
          Optionally stop the epochs once the k3 estimate of the KL exceeds 1.5 target_kl.
  Step 4. Log the exact mean KL(pi_old || pi_new) over the batch, its k1 and k3 estimates, the
          clip fraction, entropy and explained variance; adapt beta (PPO.4) for the penalty.

Each implementation detail is a named, switchable Config field; notebooks/04_ppo.ipynb measures
what each buys.
"""
from dataclasses import dataclass

import numpy as np

from rlref.advantages import gae, standardize
from rlref.config import TrainConfig
from rlref.errors import ConfigError, require_float, require_int
from rlref.nn import flatten, init_mlp, mlp_backward, mlp_forward, unflatten
from rlref.optim import adam_init, adam_step, clip_grad_norm
from rlref.policy import add, init_policy, policy_backward, policy_forward, scale_rows
from rlref.value import explained_variance, value_forward

ROLLOUT = "steps"
ADV_NORMS = ("batch", "minibatch", "none")

# Settings per env, applied by the command line under any --set (the Config defaults are
# CartPole's). Pendulum needs the continuous-control details: normalized observations, scaled
# rewards, longer rollouts, more epochs at a lower rate, and a shorter horizon (gamma 0.95).
PRESETS = {
    "Pendulum-v1": dict(total_steps=200_000, hidden=(64, 64), num_envs=8, n_steps=256, epochs=10,
                        minibatch_size=256, gamma=0.95, lam=0.95, lr=1e-3, vf_coef=0.5, ent_coef=0.0,
                        normalize_obs=True, scale_reward=True),
    "Acrobot-v1": dict(total_steps=200_000, hidden=(64, 64), num_envs=8, n_steps=128, epochs=4,
                       minibatch_size=256, gamma=0.99, lam=0.95, lr=1e-3, vf_coef=0.5, ent_coef=0.0,
                       normalize_obs=True),
}


@dataclass
class Config(TrainConfig):
    total_steps: int = 100_000       # budget (lr decays linearly to 0 over it)
    hidden: tuple = (32, 32)         # CartPole needs no more; a quarter of the flops of (64, 64)
    num_envs: int = 8                # E
    n_steps: int = 32                # T: steps per env per iteration
    epochs: int = 5                  # K: passes over the batch
    minibatch_size: int = 256        # samples per gradient step
    gamma: float = 0.98              # discount
    lam: float = 0.8                 # GAE lambda
    objective: str = "clip"          # "clip" (PPO.1) or "penalty" (PPO.3)
    clip_eps: float = 0.2            # epsilon of (PPO.1)
    beta: float = 1.0                # initial KL coefficient of (PPO.3)
    kl_target: float = 0.01          # d_targ of (PPO.4)
    hinge_coef: float = 50.0         # eta of the hinge in (PPO.3); 0 disables it
    ent_coef: float = 0.005          # c_ent: a little keeps the policy from settling early on a mediocre gait
    vf_coef: float = 1.0             # c_v (with separate networks it acts through the shared clip)
    clip_value: bool = False         # value clipping (PPO.5) against V_old, with eps_v = clip_eps
    normalize_adv: str = "batch"     # advantage standardization: "batch", "minibatch" or "none"
    lr: float = 5e-3                 # Adam step size
    adam_eps: float = 1e-5           # Adam epsilon
    anneal_lr: bool = True           # decay lr linearly to 0 over the budget
    max_grad_norm: float = 0.5       # global-norm clip of the joint gradient
    target_kl: float = None          # stop the epochs when k3 > 1.5 target_kl (None: never)
    pi_out_gain: float = 0.01        # orthogonal init gain of the policy's last layer
    v_out_gain: float = 1.0          # ... and of the value function's
    hidden_gain: float = 1.4142135623730951   # ... and of hidden layers (sqrt 2)

    def __post_init__(self):
        super().__post_init__()
        for name in ("n_steps", "epochs", "minibatch_size"):
            require_int(name, getattr(self, name), 1)
        if self.minibatch_size > self.num_envs * self.n_steps:
            raise ConfigError(f"minibatch_size must be at most the batch, num_envs * n_steps = "
                              f"{self.num_envs * self.n_steps}, got {self.minibatch_size}")
        if self.objective not in ("clip", "penalty"):
            raise ConfigError(f"objective must be 'clip' or 'penalty', got {self.objective!r}")
        if self.normalize_adv not in ADV_NORMS:
            raise ConfigError(f"normalize_adv must be one of {ADV_NORMS}, got {self.normalize_adv!r}")
        require_float("gamma", self.gamma, 0.0, 1.0)
        require_float("lam", self.lam, 0.0, 1.0)
        require_float("clip_eps", self.clip_eps, 0.0, low_open=True)
        require_float("beta", self.beta, 0.0)
        require_float("kl_target", self.kl_target, 0.0, low_open=True)
        for name in ("hinge_coef", "ent_coef", "vf_coef"):
            require_float(name, getattr(self, name), 0.0)
        for name in ("lr", "adam_eps", "max_grad_norm", "pi_out_gain", "v_out_gain", "hidden_gain"):
            require_float(name, getattr(self, name), 0.0, low_open=True)
        if self.target_kl is not None:
            require_float("target_kl", self.target_kl, 0.0, low_open=True)


def init_agent(config, obs_dim, act_dim, gaussian, rng):
    sizes = [obs_dim, *config.hidden]
    policy = init_policy(sizes + [act_dim], rng, gaussian, config.activation, out_gain=config.pi_out_gain,
                         log_std=config.log_std_init, hidden_gain=config.hidden_gain)
    value = init_mlp(sizes + [1], rng, activation=config.activation, out_gain=config.v_out_gain,
                     hidden_gain=config.hidden_gain)
    theta = np.concatenate([flatten(policy), flatten(value)])
    return {"policy": policy, "value": value, "opt": adam_init(theta), "state": {"beta": np.array(config.beta)}}


def adapt_beta(beta, kl, kl_target):
    """The PPO paper's rule (PPO.4): halve beta when the KL was well below target, double it when
    well above; the boundaries d = kl_target / 1.5 and d = 1.5 kl_target themselves leave it."""
    if kl < kl_target / 1.5:
        return beta / 2.0
    if kl > 1.5 * kl_target:
        return beta * 2.0
    return beta


def policy_loss_and_grad(dist, dist_old, actions, logp_old, A_hat, config, beta):
    """-L_policy (PPO.1 or PPO.3) minus the entropy bonus, and its derivative w.r.t. the
    distribution's parameters (same format as dist.dlogp). Also returns ratio."""
    N = len(A_hat)
    ratio = np.exp(dist.logp(actions) - logp_old)                          # (N,)
    if config.objective == "clip":
        unclipped = ratio * A_hat
        clipped = np.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps) * A_hat
        L = np.minimum(unclipped, clipped).mean()                          # (PPO.1)
        # d ratio / d logp = ratio; where the clipped term is the smaller one it is constant in
        # theta and the gradient is exactly zero (at ties, inside the range, both agree).  (PPO.2)
        dL_dlogp = np.where(unclipped <= clipped, unclipped, 0.0) / N
        ddist = scale_rows(dist.dlogp(actions), -dL_dlogp)
    else:
        kl = dist_old.kl(dist)                                             # (N,) KL(old || theta)
        excess = max(0.0, kl.mean() - 2.0 * config.kl_target)
        L = (ratio * A_hat).mean() - beta * kl.mean() - config.hinge_coef * excess ** 2   # (PPO.3)
        dL_dkl = (beta + 2.0 * config.hinge_coef * excess) / N             # per sample
        ddist = add(scale_rows(dist.dlogp(actions), -ratio * A_hat / N),
                    scale_rows(dist_old.dkl(dist), np.full(N, dL_dkl)))
    if config.ent_coef:                                                    # the entropy bonus
        L = L + config.ent_coef * dist.entropy().mean()
        ddist = add(ddist, scale_rows(dist.dentropy(), np.full(N, -config.ent_coef / N)))
    return float(-L), ddist, ratio


def value_loss_and_grad(v, V_old, R_hat, config):
    """L_v (V.1) or its clipped form (PPO.5), and dL_v / dv, for values v (N,)."""
    N = len(v)
    err = v - R_hat
    if not config.clip_value:
        return float(np.mean(err * err)), 2.0 * err / N
    eps = config.clip_eps
    v_clip = V_old + np.clip(v - V_old, -eps, eps)                         # stays within eps of V_old
    err_clip = v_clip - R_hat
    use_clipped = err_clip * err_clip > err * err                          # the max picks it
    inside = np.abs(v - V_old) < eps                                       # d v_clip / d v = 1 there
    dv = np.where(use_clipped, np.where(inside, 2.0 * err_clip, 0.0), 2.0 * err) / N
    return float(np.mean(np.maximum(err * err, err_clip * err_clip))), dv


def minibatch_step(theta, opt, like, mb, config, beta, lr):
    """Step 3 on one minibatch, on the flat theta = (theta_pi, phi): gradients of (PPO.6),
    global-norm clipping, one Adam step. Returns the new theta and opt, the losses, and k3."""
    P = sum(v.size for v in like["policy"].values())
    policy = unflatten(theta[:P], like["policy"], copy=False)              # views, no copies
    value = unflatten(theta[P:], like["value"], copy=False)
    A_hat = mb["A_hat"]
    if config.normalize_adv == "minibatch":
        A_hat = standardize(A_hat)
    dist, cache_pi = policy_forward(policy, mb["obs"])
    loss_pi, ddist, ratio = policy_loss_and_grad(dist, mb["dist_old"], mb["actions"], mb["logp_old"],
                                                 A_hat, config, beta)
    out, cache_v = mlp_forward(value, mb["obs"])
    loss_v, dv = value_loss_and_grad(out[:, 0], mb["V_old"], mb["R_hat"], config)
    grads_pi = policy_backward(ddist, cache_pi)
    grads_v, _ = mlp_backward(config.vf_coef * dv[:, None], cache_v, need_dx=False)
    grad, _ = clip_grad_norm(np.concatenate([flatten(grads_pi), flatten(grads_v)]), config.max_grad_norm)
    theta, opt = adam_step(theta, grad, opt, lr, eps=config.adam_eps)
    k3 = float(np.mean((ratio - 1.0) - np.log(ratio)))                     # KL estimate before the step
    return theta, opt, loss_pi, loss_v, k3


def _slice(dist, idx):
    """The distributions of a subset of samples."""
    if hasattr(dist, "logits"):
        return type(dist)(dist.logits[idx])
    return type(dist)(dist.mean[idx], dist.log_std[idx])


def update(agent, batch, config, rng, progress=0.0):
    obs, actions = batch.flat(batch.obs[:-1]), batch.flat(batch.actions)
    values = value_forward(agent["value"], batch.obs)                      # (T + 1, E)   Step 2
    A_hat, R_hat = gae(batch.rewards, values[:-1], values[1:], batch.terminated, batch.dones,
                       config.gamma, config.lam)
    A_hat, R_hat, V_old = batch.flat(A_hat), batch.flat(R_hat), batch.flat(values[:-1])
    if config.normalize_adv == "batch":
        A_hat = standardize(A_hat)
    dist_old, _ = policy_forward(agent["policy"], obs)
    logp_old = batch.flat(batch.logp)
    beta = float(agent["state"]["beta"])
    lr = config.lr * (1.0 - progress) if config.anneal_lr else config.lr
    N = len(A_hat)
    n_mb = max(1, N // config.minibatch_size)
    theta, opt = np.concatenate([flatten(agent["policy"]), flatten(agent["value"])]), agent["opt"]
    losses, stopped = [], False
    for _ in range(config.epochs):                                          # Step 3
        for idx in np.array_split(rng.permutation(N), n_mb):
            mb = {"obs": obs[idx], "actions": actions[idx], "logp_old": logp_old[idx], "A_hat": A_hat[idx],
                  "R_hat": R_hat[idx], "V_old": V_old[idx],
                  "dist_old": _slice(dist_old, idx) if config.objective == "penalty" else None}
            theta, opt, loss_pi, loss_v, k3 = minibatch_step(theta, opt, agent, mb, config, beta, lr)
            losses.append((loss_pi, loss_v))
            if config.target_kl is not None and k3 > 1.5 * config.target_kl:
                stopped = True
                break
        if stopped:
            break
    P = flatten(agent["policy"]).size
    new = {**agent, "policy": unflatten(theta[:P], agent["policy"]), "value": unflatten(theta[P:], agent["value"]),
           "opt": opt}
    return diagnostics(agent, new, dist_old, obs, actions, logp_old, R_hat, V_old, losses, stopped, config)


def diagnostics(agent, new, dist_old, obs, actions, logp_old, R_hat, V_old, losses, stopped, config):
    """Step 4: exact KL and its estimators over the whole batch; adapt beta (PPO.4)."""
    dist_new, _ = policy_forward(new["policy"], obs)
    log_ratio = dist_new.logp(actions) - logp_old
    ratio = np.exp(log_ratio)
    kl = float(dist_old.kl(dist_new).mean())                                # exact, KL(old || new)
    beta = float(agent["state"]["beta"])
    if config.objective == "penalty":
        beta = adapt_beta(beta, kl, config.kl_target)
    new = {**new, "state": {"beta": np.array(beta)}}
    return new, {
        "loss_pi": float(np.mean([l[0] for l in losses])), "loss_v": float(np.mean([l[1] for l in losses])),
        "entropy": float(dist_new.entropy().mean()), "kl": kl,
        "kl_k1": float(np.mean(-log_ratio)), "kl_k3": float(np.mean((ratio - 1.0) - log_ratio)),
        "clip_frac": float(np.mean(np.abs(ratio - 1.0) > config.clip_eps)),
        "explained_var": explained_variance(R_hat, V_old),
        "beta": beta, "minibatch_steps": len(losses), "early_stop": int(stopped)}
