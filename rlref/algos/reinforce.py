"""REINFORCE (Williams 1992), with the variance-reduction ladder of the course notes.

Derived in ``notebooks/01_policy_gradient.ipynb`` from the *PG review notes*
(REINFORCE, reward to go, baselines; notebooks/README.md lists the notes). Notation: N sampled (s_t,
a_t) pairs from E whole episodes, score_t = grad_theta log pi_theta(a_t | s_t), G_t the discounted
reward-to-go.

    grad J ~ (1/N) sum_t score_t * G_0                  total return         (PG.2)
    grad J ~ (1/N) sum_t score_t * G_t                  reward-to-go          (PG.3)
    grad J ~ (1/N) sum_t score_t * (G_t - b)            constant baseline b   (PG.5)
    grad J ~ (1/N) sum_t score_t * (G_t - V_phi(s_t))   learned state baseline (PG.6)

The exact gradient of J = E[sum_t gamma^t r_t] carries a factor gamma^t in front of score_t;
like every practical implementation we drop it (the notebook measures the bias this introduces).
We ascend J by descending the surrogate loss L(theta) = -(1/N) sum_t log pi_theta(a_t|s_t) w_t,
whose gradient is exactly minus the estimator above (w_t held fixed).                 (PG.4)

One iteration:
  Step 1. Reset the E envs and run the policy until each has finished one episode.
  Step 2. Weights w_t by the chosen variant. With the learned baseline, G_t is bootstrapped with
          V_phi(final observation) where an episode was truncated by a time limit; without a value
          function a truncation is treated as the end of the episode.
  Step 3. One Adam step on theta along the gradient of L (PG.4), by manual backprop.
  Step 4. With the learned baseline, fit V_phi to G_t: `v_iters` Adam steps on mean (V - G)^2.

``loss_and_grad`` follows rlref's contract for a loss and its gradient: (loss, grad, aux), grad a
dict like the policy's parameters, aux {"dist": the policy's distribution on obs}.
"""
from dataclasses import dataclass

import numpy as np

from rlref.advantages import batch_samples, total_return
from rlref.config import TrainConfig
from rlref.errors import require_choice, require_float, require_int
from rlref.nn import flatten, unflatten
from rlref.optim import adam_init, adam_step
from rlref.policy import init_policy_from, policy_backward, policy_forward, scale_rows
from rlref.value import fit_value, init_value

ROLLOUT = "episodes"          # each iteration samples num_envs whole episodes
VARIANTS = ("total", "reward_to_go")
BASELINES = ("none", "mean", "value")

# Settings per env, applied by the command line under any --set (the Config defaults are
# CartPole's). Pendulum-v1 needs normalized observations, scaled rewards (NORM.3), a shorter
# horizon, a smaller policy step and 1.5M steps (the training mean stays near -1000 for the first
# 0.3M-0.6M). Calibrated on seeds 901-910 (docs/results.md for the numbers).
PRESETS = {
    "Pendulum-v1": dict(total_steps=1_500_000, num_envs=16, gamma=0.95, lr_pi=5e-3, log_std_init=0.0,
                        normalize_obs=True, scale_reward=True),
}


@dataclass
class Config(TrainConfig):
    variant: str = "reward_to_go"    # "total" (PG.2) or "reward_to_go" (PG.3)
    baseline: str = "value"          # "none", "mean" (PG.5) or "value" (PG.6)
    total_steps: int = 200_000       # budget of env transitions
    num_envs: int = 16               # E: episodes per iteration
    lr_pi: float = 0.01              # Adam step size for theta
    lr_v: float = 0.01               # Adam step size for phi
    v_iters: int = 5                 # full-batch Adam steps on the value loss per iteration

    def __post_init__(self):
        super().__post_init__()
        require_choice("variant", self.variant, VARIANTS)
        require_choice("baseline", self.baseline, BASELINES)
        require_float("lr_pi", self.lr_pi, 0.0, low_open=True)
        require_float("lr_v", self.lr_v, 0.0, low_open=True)
        require_int("v_iters", self.v_iters, 1)


def init_agent(config, obs_dim, act_dim, gaussian, rng):
    policy = init_policy_from(config, obs_dim, act_dim, gaussian, rng)
    agent = {"policy": policy, "opt_pi": adam_init(flatten(policy))}
    if config.baseline == "value":
        agent.update(init_value(config, obs_dim, rng))
    return agent


def weights(agent, batch, config):
    """Steps 1-2: the valid samples (rlref.advantages.batch_samples) with "w", the weight of every
    score (N,), and "R_hat", V's regression targets G_t (used only with the learned baseline)."""
    # lam = 1 turns GAE into G_t - V(s_t), bootstrapped with V(final obs) after a truncation;
    # without a critic (V = 0) it is the reward-to-go G_t itself.                    (PG.3), (PG.6)
    samples = batch_samples(batch, agent.get("value"), config.gamma, lam=1.0)
    w = samples["A_hat"]
    if config.variant == "total":                                               # (PG.2)
        w = batch.flat(total_return(batch.rewards, batch.dones, config.gamma)) - samples["V_old"]
    if config.baseline == "mean":                                               # (PG.5)
        w = w - w.mean()
    return {**samples, "w": w}


def loss_and_grad(policy, obs, actions, w):
    """L(theta) = -(1/N) sum_i log pi(a_i|s_i) w_i, its gradient (a dict like policy), and
    {"dist": the distribution on obs}.  (PG.4)"""
    dist, cache = policy_forward(policy, obs, check=False)
    N = len(w)
    ddist = scale_rows(dist.dlogp(actions, check=False), -w / N)        # dL / d(dist params)
    loss = float(-np.mean(dist.logp(actions, check=False) * w))
    return loss, policy_backward(ddist, cache), {"dist": dist}          # (POL.1)


def policy_step(agent, obs, actions, w, lr):
    """Step 3: one Adam step on L(theta)."""
    policy = agent["policy"]
    loss, grads, aux = loss_and_grad(policy, obs, actions, w)
    theta, opt = adam_step(flatten(policy), flatten(grads), agent["opt_pi"], lr, check=False)
    new_policy = unflatten(theta, policy)
    dist = aux["dist"]
    diag = {"loss_pi": loss, "entropy": float(dist.entropy().mean()),
            "kl": float(dist.kl(policy_forward(new_policy, obs, check=False)[0]).mean())}
    return {**agent, "policy": new_policy, "opt_pi": opt}, diag


def update(agent, batch, config, rng, budget_used=0.0):
    samples = weights(agent, batch, config)
    agent, diag = policy_step(agent, samples["obs"], samples["actions"], samples["w"], config.lr_pi)
    if config.baseline == "value":                                                  # Step 4
        agent, diag["loss_v"] = fit_value(agent, samples["obs"], samples["R_hat"], config.lr_v, config.v_iters)
    return agent, diag
