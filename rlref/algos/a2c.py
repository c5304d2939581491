"""Synchronous advantage actor-critic (A2C), as in the Deep RL Bootcamp's lab 4.

Derived in ``notebooks/02_actor_critic.ipynb`` from the course notes: the *PG review notes*
(actor-critic) and the *Lab 4 write-up* (A2C) (notebooks/README.md lists them). E envs step together
for T steps; the critic V_phi supplies the baseline and the bootstrap; one gradient step on the
combined loss follows each rollout.

    A_hat_t = GAE(gamma, lam) from delta_t = r_t + gamma V(s_{t+1}) - V(s_t)   (GAE.1), (GAE.2)
              (lam = 1: the lab's returns, bootstrapped with V at the rollout's end), or the
              fixed n-step advantage R^(n)_t - V(s_t)                           (AC.2)
    L(theta, phi) = -(1/N) sum_i log pi_theta(a_i|s_i) A_hat_i                  policy   (PG.4)
                    - c_ent (1/N) sum_i H(pi_theta(.|s_i))                      entropy bonus
                    + c_v (1/N) sum_i (V_phi(s_i) - R_hat_i)^2                  value    (V.1)
                                                                                        (AC.3)
One iteration:
  Step 1. Collect T steps from each of the E envs with pi_theta.
  Step 2. V_phi on every observation; advantages A_hat and targets R_hat = A_hat + V.
  Step 3. Gradients of (AC.3) by manual backprop through both networks.
  Step 4. Clip the global gradient norm of (theta, phi) together (OPT.3); one Adam step (OPT.2)
          with a learning rate decayed linearly over the budget.

``loss_and_grad`` follows rlref's contract for a loss and its gradient: (loss, grad, aux), here
grad = (grads_pi, grads_v), a pair of dicts like (policy, value), and aux the loss's parts.
"""
from dataclasses import dataclass

import numpy as np

from rlref.advantages import batch_samples, standardize
from rlref.config import TrainConfig
from rlref.errors import require_choice, require_float, require_int
from rlref.nn import flatten, mlp_backward, mlp_forward, splitter, unflatten
from rlref.optim import adam_init, adam_step, clip_grad_norm, linear_decay
from rlref.policy import add, init_policy_from, policy_backward, policy_forward, scale_rows
from rlref.value import init_value

ROLLOUT = "steps"
ADVANTAGES = ("gae", "nstep")

# Settings per env, applied by the command line under any --set (the Config defaults are
# CartPole's). On Pendulum-v1 plain A2C sits near -1000 for a long time: it needs normalized
# observations, scaled rewards (NORM.3), a shorter horizon, log sigma starting at 0 for
# exploration, a constant step size (the decayed one is already tiny when runs leave the plateau,
# after 0.3M-0.7M steps) and 1.5M steps. Calibrated on seeds 901-910 (docs/results.md for the numbers).
PRESETS = {
    "Pendulum-v1": dict(total_steps=1_500_000, num_envs=16, n_steps=16, gamma=0.95, lam=0.95, lr=1.5e-3,
                        anneal_lr=False, log_std_init=0.0, normalize_adv=True, normalize_obs=True,
                        scale_reward=True),
}


@dataclass
class Config(TrainConfig):
    total_steps: int = 200_000       # budget (the learning rate decays to 0 over it)
    num_envs: int = 16               # E
    n_steps: int = 8                 # T: steps per env per iteration
    advantage: str = "gae"           # "gae" (GAE.2) or "nstep" (AC.2)
    lam: float = 0.95                # GAE lambda (1.0 = the lab's bootstrapped returns)
    n: int = 5                       # n of the n-step advantage
    ent_coef: float = 0.0            # c_ent: weight of the entropy bonus
    vf_coef: float = 0.5             # c_v: weight of the value loss
    lr: float = 3e-3                 # Adam step size
    anneal_lr: bool = True           # decay lr linearly to 0 over the step budget
    adam_eps: float = 1e-4           # Adam epsilon (see the note in update)
    max_grad_norm: float = 0.5       # global-norm clip of the joint gradient
    normalize_adv: bool = False      # A_hat <- (A_hat - mean) / (std + 1e-8) over the batch

    def __post_init__(self):
        super().__post_init__()
        require_int("n_steps", self.n_steps, 1)
        require_int("n", self.n, 1)
        require_choice("advantage", self.advantage, ADVANTAGES)
        require_float("lam", self.lam, 0.0, 1.0)
        require_float("ent_coef", self.ent_coef, 0.0)
        require_float("vf_coef", self.vf_coef, 0.0)
        require_float("lr", self.lr, 0.0, low_open=True)
        require_float("adam_eps", self.adam_eps, 0.0, low_open=True)
        require_float("max_grad_norm", self.max_grad_norm, 0.0, low_open=True)


def init_agent(config, obs_dim, act_dim, gaussian, rng):
    policy = init_policy_from(config, obs_dim, act_dim, gaussian, rng)
    value = init_value(config, obs_dim, rng)["value"]
    return {"policy": policy, "value": value, "opt": adam_init(np.concatenate([flatten(policy), flatten(value)]))}


def loss_and_grad(policy, value, obs, actions, A_hat, R_hat, config):
    """L of (AC.3), its gradients (grads_pi, grads_v) w.r.t. theta and phi, and aux: its parts
    (floats) and "dist", the policy's distribution on obs.  Step 3."""
    N = len(A_hat)
    dist, cache_pi = policy_forward(policy, obs, check=False)
    V, cache_v = mlp_forward(value, obs, check=False)                      # (N, 1)
    err = V[:, 0] - R_hat                                                  # (N,)
    parts = {"loss_pi": -np.mean(dist.logp(actions, check=False) * A_hat), "entropy": np.mean(dist.entropy()),
             "loss_v": np.mean(err * err)}
    loss = parts["loss_pi"] - config.ent_coef * parts["entropy"] + config.vf_coef * parts["loss_v"]
    ddist = add(scale_rows(dist.dlogp(actions, check=False), -A_hat / N),   # policy term
                scale_rows(dist.dentropy(), -config.ent_coef / N))   # entropy term
    grads_pi = policy_backward(ddist, cache_pi)
    grads_v, _ = mlp_backward((2.0 * config.vf_coef / N) * err[:, None], cache_v, need_dx=False)
    return float(loss), (grads_pi, grads_v), {**{k: float(v) for k, v in parts.items()}, "dist": dist}


def update(agent, batch, config, rng, budget_used=0.0):
    samples = batch_samples(batch, agent["value"], config.gamma, config.lam,
                            n=config.n if config.advantage == "nstep" else None)   # Step 2 (GAE.2) / (AC.2)
    obs, A_hat = samples["obs"], samples["A_hat"]
    if config.normalize_adv:
        A_hat = standardize(A_hat)            # NOTE (implementation detail): per batch
    policy, value = agent["policy"], agent["value"]
    _, (grads_pi, grads_v), diag = loss_and_grad(policy, value, obs, samples["actions"], A_hat,
                                                samples["R_hat"], config)
    old_dist = diag.pop("dist")
    grad, diag["grad_norm"] = clip_grad_norm(np.concatenate([flatten(grads_pi), flatten(grads_v)]),
                                             config.max_grad_norm, check=False)   # Step 4 (OPT.3)
    # NOTE (implementation detail): linear learning-rate decay (Mnih et al. 2016, A3C) keeps
    # the late updates small, so the policy that is evaluated at the end is a settled one.
    # Once CartPole is balanced, V ~ 1/(1 - gamma) everywhere and A_hat is mostly noise; Adam
    # would still move every weight by ~lr per step (it divides by the gradient's own scale) and
    # the policy drifts until it falls. eps = 1e-4 (not 1e-8) scales down steps whose gradients
    # are that small (docs/results.md, "table of choices", has the runs that chose it).
    lr = linear_decay(config.lr, budget_used, config.anneal_lr)             # (OPT.4)
    theta, opt = adam_step(np.concatenate([flatten(policy), flatten(value)]), grad, agent["opt"],
                           lr, eps=config.adam_eps, check=False)          # (OPT.2)
    new_policy, new_value = splitter(policy, value)(theta)                 # views into the new theta
    diag["kl"] = float(old_dist.kl(policy_forward(new_policy, obs, check=False)[0]).mean())
    return {"policy": new_policy, "value": new_value, "opt": opt}, diag


# ------------------------------------------------------------------------------ online actor-critic
# Not used by `update` or the command line: the notes' online variant, for notebook 02, which
# compares its noise with the batch update above.

def online_step(policy, value, obs, action, reward, next_obs, terminated, gamma, lr_pi, lr_v):
    """One transition, one critic step, one actor step (the notes' online actor-critic).

        delta = r + gamma (1 - terminated) V_phi(s') - V_phi(s)                         (AC.4)
        phi   <- phi - lr_v grad_phi 1/2 (V_phi(s) - y)^2,   y = r + gamma (1 - term) V_phi(s')
                 held fixed (semi-gradient TD(0): the target is not differentiated)       (AC.5)
        theta <- theta + lr_pi delta grad_theta log pi_theta(a|s)                         (AC.6)

    Both steps use the delta of the parameters before the step. obs and next_obs are (D,); action
    is an int (Categorical) or an array (A,) (Gaussian). Returns (new_policy, new_value, delta).
    (AC.6) is the batch actor step of (AC.3) with N = 1, A_hat = delta, c_ent = 0.
    """
    x = np.asarray(obs, dtype=np.float64).reshape(1, -1)                   # (1, D)
    x_next = np.asarray(next_obs, dtype=np.float64).reshape(1, -1)         # (1, D)
    V, cache_v = mlp_forward(value, x)                                     # (1, 1)
    V_next = 0.0 if terminated else float(mlp_forward(value, x_next)[0][0, 0])
    delta = float(reward + gamma * V_next - V[0, 0])                       # (AC.4)
    grads_v, _ = mlp_backward(np.array([[-delta]]), cache_v, need_dx=False)   # d 1/2 (V - y)^2 / dV = V - y = -delta
    new_value = unflatten(flatten(value) - lr_v * flatten(grads_v), value)    # (AC.5)
    dist, cache_pi = policy_forward(policy, x)
    a = np.asarray(action).reshape((1,) + np.shape(action))                # (1,) or (1, A)
    score = flatten(policy_backward(dist.dlogp(a), cache_pi))              # (P,) grad log pi(a|s)
    new_policy = unflatten(flatten(policy) + lr_pi * delta * score, policy)   # (AC.6)
    return new_policy, new_value, delta
