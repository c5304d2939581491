"""Small tabular MDPs with exact answers, to check policy-gradient estimators against the truth.

Used by the tests and by ``notebooks/01_policy_gradient.ipynb``, ``02_actor_critic.ipynb`` and
``03_natural_gradient.ipynb``.
An episodic MDP has S non-terminal states, A actions and one implicit absorbing terminal state:
P[s, a, s'] is sub-stochastic and 1 - sum_s' P[s, a, s'] is the probability that the episode ends
after action a in state s. Rewards R[s, a] are deterministic; s_0 ~ mu0. The policy is the tabular
softmax pi(a|s) = softmax(theta[s])_a with theta of shape (S, A).
Shapes: S states, A actions, N steps (all episodes back to back), K episodes (n_ep in docs/notation.md).

Exact answers for a fixed policy (one linear solve each, never an explicit inverse):

    J(theta) = E[sum_t gamma^t r_t] = mu0 . V                                           (MDP.1)
    P_pi[s, s'] = sum_a pi(a|s) P[s, a, s'],     r_pi[s] = sum_a pi(a|s) R[s, a]        (MDP.2)
    V = r_pi + gamma P_pi V     =>   V = (I - gamma P_pi)^-1 r_pi                       (MDP.3)
    Q[s, a] = R[s, a] + gamma sum_s' P[s, a, s'] V[s']                                  (MDP.4)
    d[s] = sum_t gamma^t Pr(s_t = s)   =>   d = (I - gamma P_pi^T)^-1 mu0               (MDP.5)
    dJ/dtheta[s, a] = d[s] pi(a|s) (Q[s, a] - V[s])      (policy gradient theorem)      (MDP.6)

Monte Carlo estimates of grad J from one episode (s_0, a_0, r_0, ..., s_{T-1}, a_{T-1}, r_{T-1}).
The score of the tabular softmax is (DIST.1) in row s_t and zero in every other row:

    score_t[s, :] = 1[s = s_t] (onehot(a_t) - pi(.|s_t))                                (MDP.7)
    G_t = sum_{t' >= t} gamma^(t' - t) r_t' = r_t + gamma G_{t+1},  G_T = 0             (MDP.8)
    total return:  g = sum_t score_t G_0                                                (MDP.9)
    reward to go:  g = sum_t gamma^t score_t G_t                                        (MDP.10)
    baseline:      G_0 -> G_0 - b_t in (MDP.9),  G_t -> G_t - b_t in (MDP.10)           (MDP.11)
    practical:     g = sum_t score_t (G_t - b_t)          ((MDP.10) without gamma^t)    (MDP.12)

d is not normalized: sum_s d[s] = E[sum_t gamma^t], and J = d . r_pi.
(MDP.9) is the log-derivative trick on the probability of the whole episode. (MDP.10) follows by
causality: E[score_t r_t'] = 0 for t' < t, and the rest of G_0 is sum_{t' >= t} gamma^t' r_t' =
gamma^t G_t, which is where the gamma^t in front of the score comes from. Any b_t that does not
depend on a_t, a_{t+1}, ... keeps the mean, because E[score_t | s_t] = 0. (MDP.12) is what
practical implementations compute (rlref drops gamma^t too): in general it is biased for J when gamma < 1.
"""
import numpy as np

from rlref.distributions import Categorical
from rlref.errors import ConfigError, require_array, require_float, require_int

VARIANTS = ("total", "reward_to_go")
BASELINES = ("none", "mean", "value")   # spelled as rlref.algos.reinforce spells them


class TabularMDP:
    """P (S, A, S) sub-stochastic, R (S, A), mu0 (S,), gamma in [0, 1]; validated, stored read-only.

    Every policy must end its episodes with probability 1 (checked for every deterministic policy,
    hence it holds for all), even for gamma < 1, so that sampled episodes need no truncation; it
    also makes I - gamma P_pi invertible at gamma = 1."""

    def __init__(self, P, R, mu0, gamma):
        P = require_array("P", P, ndim=3, error=ConfigError)
        S, A = P.shape[:2]
        if S < 1 or A < 1 or P.shape[2] != S:
            raise ConfigError(f"P must have shape (S, A, S) with S, A >= 1, got {P.shape}")
        R = require_array("R", R, shape=(S, A), error=ConfigError)
        mu0 = require_array("mu0", mu0, shape=(S,), error=ConfigError)
        self.gamma = require_float("gamma", gamma, low=0.0, high=1.0)
        _check_in_unit_interval("P", P)
        rows = P.sum(axis=2)                                              # (S, A) 1 - Pr(terminate)
        if rows.max() > 1.0 + 1e-12:
            s, a = np.unravel_index(rows.argmax(), rows.shape)
            raise ConfigError(f"P[s, a, :] must sum to at most 1 (the rest is the probability of "
                              f"terminating), got sum(P[{s}, {a}, :]) = {float(rows[s, a])!r}")
        _check_in_unit_interval("mu0", mu0)
        if abs(mu0.sum() - 1.0) > 1e-9:
            raise ConfigError(f"mu0 must be a probability distribution over the {S} states "
                              f"(summing to 1), got sum {float(mu0.sum())!r}")
        _check_termination(P)
        self.P, self.R, self.mu0 = P.copy(), R.copy(), mu0.copy()
        for x in (self.P, self.R, self.mu0):
            x.setflags(write=False)                                       # validated once: frozen
        self.n_states, self.n_actions = S, A

    def __repr__(self):
        return f"TabularMDP(n_states={self.n_states}, n_actions={self.n_actions}, gamma={self.gamma})"


def _check_in_unit_interval(name, x):
    bad = (x < 0.0) | (x > 1.0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(f"{name} must hold probabilities in [0, 1], "
                          f"got {name}{list(idx)} = {float(x[idx])!r}")


def _check_termination(P, tol=1e-12):
    """Raise if some deterministic policy can stay among non-terminal states forever. Start from all
    states; repeatedly drop the states where every action leaks probability to termination or to a
    dropped state. What is left is a set of states that some policy never leaves."""
    inside = np.ones(P.shape[0], dtype=bool)                              # (S,)
    while True:
        stays = P[:, :, inside].sum(axis=2) >= 1.0 - tol                  # (S, A) no mass leaves
        keep = inside & stays.any(axis=1)                                 # (S,)
        if keep.sum() == inside.sum():
            break
        inside = keep
    if inside.any():
        states = np.flatnonzero(inside)
        actions = stays[states].argmax(axis=1)
        raise ConfigError(f"P: episodes need not terminate: in states {states.tolist()} the actions "
                          f"{actions.tolist()} never leave those states, so that policy never ends; "
                          f"give one of these state-actions a row sum of P below 1")


def random_mdp(n_states, n_actions, rng, gamma=0.9, p_terminate=0.1):
    """A random MDP: every state-action terminates with probability exactly p_terminate (so the
    episode length is geometric with mean 1 / p_terminate under any policy), otherwise moves to
    s' ~ Dirichlet(1, ..., 1); rewards uniform in [0, 1]; mu0 ~ Dirichlet(1, ..., 1)."""
    S = require_int("n_states", n_states, low=1)
    A = require_int("n_actions", n_actions, low=1)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    p_terminate = require_float("p_terminate", p_terminate, low=0.0, high=1.0, low_open=True)
    P = (1.0 - p_terminate) * rng.dirichlet(np.ones(S), size=(S, A))      # (S, A, S)
    R = rng.random((S, A))                                                # (S, A)
    mu0 = rng.dirichlet(np.ones(S))                                       # (S,)
    return TabularMDP(P, R, mu0, gamma)


def two_state_mdp(gamma=0.5):
    """A hand-made MDP whose J is easy to derive by hand. Always start in state 0.

    state 0: action 0 "safe" pays 1 and ends the episode; action 1 "go" pays 0 and moves to state 1.
    state 1: action 0 "cash" pays 3 and ends; action 1 "wait" pays 0, stays w.p. 1/2, else ends.
    """
    P = np.zeros((2, 2, 2))                                               # (S, A, S)
    P[0, 1, 1] = 1.0                                                      # go
    P[1, 1, 1] = 0.5                                                      # wait
    R = np.array([[1.0, 0.0], [3.0, 0.0]])                                # (S, A)
    return TabularMDP(P, R, np.array([1.0, 0.0]), gamma)


# ------------------------------------------------------------------------------ exact answers

def _check_theta(mdp, theta):
    return require_array("theta", theta, shape=(mdp.n_states, mdp.n_actions), error=ConfigError)


def softmax_policy(theta):
    """pi(a|s) = softmax(theta[s])_a: theta (S, A) -> probs (S, A), stable for any finite theta."""
    theta = require_array("theta", theta, ndim=2, error=ConfigError)
    return Categorical(theta).probs                                       # (S, A) max-shifted


def policy_transitions(mdp, probs):
    """P_pi (S, S) and r_pi (S,) of the policy probs (S, A).  (MDP.2)"""
    probs = require_array("probs", probs, shape=(mdp.n_states, mdp.n_actions), error=ConfigError)
    _check_in_unit_interval("probs", probs)
    if np.abs(probs.sum(axis=1) - 1.0).max() > 1e-9:
        raise ConfigError(f"probs[s, :] must sum to 1, got row sums {probs.sum(axis=1)}")
    P_pi = np.einsum("sa,sat->st", probs, mdp.P)                          # (S, S)
    r_pi = (probs * mdp.R).sum(axis=1)                                    # (S,)
    return P_pi, r_pi


def exact_values(mdp, probs):
    """V (S,) and Q (S, A) of the policy probs (S, A).  (MDP.3), (MDP.4)"""
    P_pi, r_pi = policy_transitions(mdp, probs)                           # (S, S), (S,)
    V = np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi, r_pi)    # (S,)    (MDP.3)
    Q = mdp.R + mdp.gamma * mdp.P @ V                                     # (S, A)  (MDP.4)
    return V, Q


def discounted_visitation(mdp, probs):
    """d (S,) with d[s] = sum_t gamma^t Pr(s_t = s), not normalized.  (MDP.5)"""
    P_pi, _ = policy_transitions(mdp, probs)                              # (S, S)
    return np.linalg.solve((np.eye(mdp.n_states) - mdp.gamma * P_pi).T, mdp.mu0)   # (S,)


def exact_J(mdp, theta):
    """J(theta) = mu0 . V.  (MDP.1)"""
    V, _ = exact_values(mdp, softmax_policy(_check_theta(mdp, theta)))
    return float(mdp.mu0 @ V)


def exact_grad_J(mdp, theta):
    """dJ/dtheta (S, A) by the policy gradient theorem.  (MDP.6)"""
    probs = softmax_policy(_check_theta(mdp, theta))                      # (S, A)
    V, Q = exact_values(mdp, probs)                                       # (S,), (S, A)
    d = discounted_visitation(mdp, probs)                                 # (S,)
    return d[:, None] * probs * (Q - V[:, None])                          # (S, A)  (MDP.6)


# ------------------------------------------------------------------------------ sampling

class Episodes:
    """K episodes stored back to back: episode k is the steps starts[k] : starts[k] + lengths[k].

    episodes[k] -> (states, actions, rewards) of episode k, each of shape (T_k,); len(episodes) = K.
    """

    def __init__(self, states, actions, rewards, episode, t, lengths):
        self.states, self.actions = states, actions                       # (N,) int: s_t, a_t
        self.rewards = rewards                                            # (N,) float: r_t
        self.episode, self.t = episode, t                                 # (N,) int: k, t of each step
        self.lengths = lengths                                            # (K,) int: T_k
        self.starts = np.cumsum(lengths) - lengths                        # (K,) int

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, k):
        steps = slice(self.starts[k], self.starts[k] + self.lengths[k])
        return self.states[steps], self.actions[steps], self.rewards[steps]


def _inverse_cdf(cdf, u):
    """Per row, how many entries of the cumulative sums cdf (K, n) or (n,) u (K,) has passed: the
    sampled index, in [0, n]. Sampling by inverting the CDF with u ~ Uniform[0, 1)."""
    return (u[:, None] >= cdf).sum(axis=1)                                # (K,)


def sample_episodes(mdp, theta, rng, n_episodes, max_steps=10_000):
    """Sample n_episodes episodes of the softmax policy theta (S, A), all live episodes stepped at
    once. Raises ConfigError if an episode is still running after max_steps steps."""
    probs = softmax_policy(_check_theta(mdp, theta))                      # (S, A)
    K = require_int("n_episodes", n_episodes, low=1)
    max_steps = require_int("max_steps", max_steps, low=1)
    action_cdf = np.cumsum(probs, axis=1)[:, :-1]                         # (S, A-1): index in [0, A-1]
    next_cdf = np.cumsum(mdp.P, axis=2)                                   # (S, A, S): index S = ended
    live = np.arange(K)                                                   # ids of running episodes
    s = _inverse_cdf(np.cumsum(mdp.mu0)[:-1], rng.random(K))             # (K,) s_0 ~ mu0
    steps = []                                                            # per t: (ids, s_t, a_t)
    for _ in range(max_steps):
        a = _inverse_cdf(action_cdf[s], rng.random(len(live)))           # a_t ~ pi(.|s_t)
        steps.append((live, s, a))
        s_next = _inverse_cdf(next_cdf[s, a], rng.random(len(live)))     # s_{t+1} ~ P[s_t, a_t]
        running = s_next < mdp.n_states
        live, s = live[running], s_next[running]
        if len(live) == 0:
            return _episode_major(steps, mdp.R, K)
    raise ConfigError(f"max_steps: {len(live)} of {K} episodes were still running after "
                      f"max_steps={max_steps} steps; raise max_steps or make P terminate sooner")


def _episode_major(steps, R, K):
    """Reorder the steps, sampled time by time, into Episodes (episode by episode)."""
    episode = np.concatenate([ids for ids, _, _ in steps])                # (N,) time-major
    t = np.concatenate([np.full(len(ids), time) for time, (ids, _, _) in enumerate(steps)])
    lengths = np.bincount(episode, minlength=K)                           # (K,)
    order = np.empty(len(episode), dtype=np.int64)                        # (N,)
    order[(np.cumsum(lengths) - lengths)[episode] + t] = np.arange(len(episode))
    states = np.concatenate([s for _, s, _ in steps])[order]              # (N,)
    actions = np.concatenate([a for _, _, a in steps])[order]             # (N,)
    return Episodes(states, actions, R[states, actions], episode[order], t[order], lengths)


def discounted_returns(episodes, gamma):
    """G_0 = sum_t gamma^t r_t of every episode, shape (K,).  (MDP.1), (MDP.8)"""
    gamma = require_float("gamma", gamma, low=0.0, high=1.0)
    return np.bincount(episodes.episode, weights=gamma ** episodes.t * episodes.rewards,
                       minlength=len(episodes))


def rewards_to_go(episodes, gamma):
    """G_t of every step, shape (N,), by G_t = r_t + gamma G_{t+1} backwards in time.  (MDP.8)"""
    gamma = require_float("gamma", gamma, low=0.0, high=1.0)
    G = episodes.rewards.copy()                                           # (N,) G_{T-1} = r_{T-1}
    for t in reversed(range(episodes.lengths.max() - 1)):
        k = episodes.starts[episodes.lengths > t + 1] + t                 # steps t that have a t + 1
        G[k] += gamma * G[k + 1]                                          # (MDP.8)
    return G


# ------------------------------------------------------------------------------ REINFORCE

def reinforce_estimates(mdp, theta, episodes, variant, discount_weights=True, baseline="none"):
    """One REINFORCE estimate of grad J per episode, shape (K, S, A); their mean estimates (MDP.6).

    variant "total" is (MDP.9); "reward_to_go" is (MDP.10), or (MDP.12) with discount_weights=False
    (the practical estimator, biased for J when gamma < 1; "total" has no gamma^t to drop).
    baseline (MDP.11): "none"; "value", b_t = V(s_t) exactly from (MDP.3); or "mean", a constant per
    episode: the average of the returns it is subtracted from (G_0 or G_t) over all steps of the
    *other* episodes. Leave-one-out keeps the estimator exactly unbiased: a mean that included
    episode k's own return would correlate with its score and bias the mean by O(1/K).
    """
    probs = softmax_policy(_check_theta(mdp, theta))                      # (S, A)
    if variant not in VARIANTS or baseline not in BASELINES:
        raise ConfigError(f"variant must be one of {VARIANTS} and baseline one of {BASELINES}, "
                          f"got variant={variant!r}, baseline={baseline!r}")
    if not isinstance(discount_weights, bool) or (variant == "total" and not discount_weights):
        raise ConfigError(f"discount_weights must be True or False, and True for variant 'total' "
                          f"(MDP.9 has no gamma^t to drop), got {discount_weights!r}")
    _check_episodes(mdp, episodes)
    # Step 1: the return each score is multiplied by, and the weight in front of the score.
    if variant == "total":
        G = discounted_returns(episodes, mdp.gamma)[episodes.episode]    # (N,) G_0   (MDP.9)
        weight = np.ones(len(G))                                          # (N,)
    else:
        G = rewards_to_go(episodes, mdp.gamma)                            # (N,) G_t   (MDP.10)
        weight = mdp.gamma ** episodes.t if discount_weights else np.ones(len(G))  # or (MDP.12)
    # Step 2: subtract the baseline.  (MDP.11)
    c = weight * (G - _baseline(mdp, probs, episodes, G, baseline))       # (N,) coefficient of score_t
    # Step 3: sum_t c_t score_t per episode. By (MDP.7), row s of the sum is the sum of c_t over the
    # steps with (s_t, a_t) = (s, a), minus pi(a|s) times the sum of c_t over the steps with s_t = s.
    K, S, A = len(episodes), mdp.n_states, mdp.n_actions
    ks, a = episodes.episode * S + episodes.states, episodes.actions      # (N,) flat (k, s_t), a_t
    c_sa = np.bincount(ks * A + a, weights=c, minlength=K * S * A).reshape(K, S, A)
    c_s = np.bincount(ks, weights=c, minlength=K * S).reshape(K, S)
    return c_sa - c_s[:, :, None] * probs                                 # (K, S, A)


def _baseline(mdp, probs, episodes, G, baseline):
    """b_t of every step, shape (N,) (or 0.0 for no baseline).  (MDP.11)"""
    if baseline == "none":
        return 0.0
    if baseline == "value":
        V, _ = exact_values(mdp, probs)                                   # (S,)
        return V[episodes.states]                                         # (N,) V(s_t)
    K = len(episodes)
    if K < 2:
        raise ConfigError(f"baseline='mean' is a leave-one-out mean and needs at least 2 episodes, got {K}")
    G_sum = np.bincount(episodes.episode, weights=G, minlength=K)         # (K,) sum of G per episode
    others = (G_sum.sum() - G_sum) / (len(G) - episodes.lengths)          # (K,) mean over other episodes
    return others[episodes.episode]                                       # (N,)


def _check_episodes(mdp, episodes):
    if not isinstance(episodes, Episodes) or (episodes.states.max() >= mdp.n_states or
                                              episodes.actions.max() >= mdp.n_actions):
        raise ConfigError(f"episodes must be an Episodes sampled from an MDP with {mdp.n_states} "
                          f"states and {mdp.n_actions} actions, got {type(episodes).__name__}")
