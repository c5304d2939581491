"""The exercises of rlref's homework, declared once.

Each entry of EXERCISES says what the student writes and how it is graded:

- ``tag``: stable, the tag of the equation the code implements (``GAE.2``); a notebook exercise
  keeps the tag of its cells' ``{"rlref": {"exercise": TAG}}`` metadata (``00.1``: notebook 00,
  exercise 1).
- ``target``: a function or method of the package, ``"rlref/advantages.py:gae"`` or
  ``"rlref/distributions.py:Categorical.dlogp"``, whose body the generator replaces by a stub; or a
  notebook, ``"notebooks/05_ppo.ipynb"``, whose solution cells tagged with this exercise it clears.
- ``todo``: one line of what to compute; the stub's message is ``"Exercise TAG: " + todo``.
- ``points``: what passing all of the exercise's tests is worth (all or nothing).
- ``deps``: the exercises whose code this exercise's tests run. When one of them fails too, the
  grader grades this exercise again with the reference dependency (from the instructor's
  checkout), so that one bug is charged once; a student grading their own folder, who has no
  reference, sees "waiting for TAG".
- ``setup`` (notebook exercises): what of the instructor's notebook runs before the student's
  solution cells, ``"imports"`` (its import statements) or ``"cells"`` (every code cell before the
  exercise; rlref/homework/notebooks.py).
- ``also_cut``: ``"path:qualname"`` of functions elsewhere that restate this exercise's answer; the
  student version and the grader's trees cut them together with the exercise: a stub, or the
  function's stand-in when the package needs it (rlref/homework/standins.py; an exercise whose
  tests reach a stand-in lists the cutting exercise in its ``deps``).
- ``answers`` (notebook exercises): the function exercises whose answer this exercise's solution
  computes too (``02.1``, GAE by hand, answers ``PG.3``, ``GAE.1`` and ``GAE.2``). When one of them
  is assigned and this exercise is not, its solution regions are cleared all the same, ungraded;
  when this one is assigned without them, ``make`` notes that the package keeps their functions.
  UNGRADED_ANSWERS says the same of notebook exercises the table does not grade (yet).

The tests that grade an exercise are the functions decorated ``@exercise("TAG", probe)``
(rlref/homework/testing.py): public ones in ``tests/test_exercises_core.py``, ``..._algos.py`` and
``..._notebooks.py``, shipped with every student version, and hidden ones in ``tests/hidden/``, kept
by the instructor. Adding an exercise, a notebook one too, is one entry here plus its tests.
"""
from dataclasses import dataclass

from rlref.errors import HomeworkError


@dataclass(frozen=True)
class Exercise:
    tag: str
    target: str
    todo: str
    points: int
    deps: tuple = ()
    setup: str = "imports"
    also_cut: tuple = ()
    answers: tuple = ()

    @property
    def is_notebook(self):
        return self.target.endswith(".ipynb")

    @property
    def path(self):
        """The file the student edits, relative to the project root."""
        return self.target.partition(":")[0]

    @property
    def qualname(self):
        """"Categorical.dlogp" for a method, "gae" for a function, "" for a notebook."""
        return self.target.partition(":")[2]


E = Exercise
EXERCISES = (
    # notebook 00: backprop, forward mode, distributions
    E("MLP.2", "rlref/nn.py:mlp_backward", "backprop dout through every layer: grads (MLP.2) and dx (MLP.3)", 3,
      also_cut=("rlref/algos/npg.py:per_sample_grads",)),
    E("MLP.4", "rlref/nn.py:mlp_jvp", "forward mode: push the tangent dparams (and dx) through every layer", 2),
    E("DIST.1", "rlref/distributions.py:Categorical.dlogp", "the score in the logits, onehot(a) - p", 1),
    E("DIST.2", "rlref/distributions.py:Categorical.dentropy", "dH/dlogits = -p (log p + H)", 1),
    E("DIST.3", "rlref/distributions.py:Categorical.dkl", "d KL(self || other) / d other.logits", 1),
    E("DIST.5", "rlref/distributions.py:DiagGaussian.dlogp", "the score (dmean, dlog_std) of a diagonal Gaussian", 1),
    E("DIST.7", "rlref/distributions.py:DiagGaussian.dkl",
      "d KL(self || other) / d (other.mean, other.log_std)", 1),
    E("00.1", "notebooks/00_backprop_and_gradcheck.ipynb", "softplus MLP: forward and backward pass", 1,
      answers=("MLP.2",)),
    E("00.2", "notebooks/00_backprop_and_gradcheck.ipynb", "a dead relu unit: b1 chosen, the gradient through it", 1,
      ("MLP.2",)),                                 # its runs call nn.mlp_backward
    E("00.3", "notebooks/00_backprop_and_gradcheck.ipynb", "the reverse KL and its gradient in the logits", 1),
    E("00.4", "notebooks/00_backprop_and_gradcheck.ipynb", "the complex-step derivative", 1),
    E("00.5", "notebooks/00_backprop_and_gradcheck.ipynb",
      "the empirical Fisher's error against m: runs whose statistics are checked (about 2 s)", 1),
    # notebook 01: returns, advantages, REINFORCE, A2C
    E("PG.3", "rlref/advantages.py:discount_cumsum",
      "y_t = x_t + gamma (1 - dones_t) y_{t+1}, backwards from y_T = bootstrap", 2),
    E("GAE.1", "rlref/advantages.py:td_residuals", "delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)", 1),
    E("GAE.2", "rlref/advantages.py:gae", "A_hat from the TD residuals (GAE.2), and R_hat = A_hat + values", 2,
      ("PG.3", "GAE.1")),
    E("PG.4", "rlref/algos/reinforce.py:loss_and_grad",
      "L = -(1/N) sum_i log pi(a_i|s_i) w_i and its gradient by backprop", 2, ("DIST.1", "DIST.5", "MLP.2")),
    E("AC.3", "rlref/algos/a2c.py:loss_and_grad",
      "the A2C loss (policy, entropy, value terms) and its gradients in theta and phi", 3,
      ("DIST.1", "DIST.2", "MLP.2")),
    E("01.1", "notebooks/01_policy_gradient.ipynb", "J of the two-state MDP in closed form", 1),
    E("01.2", "notebooks/01_policy_gradient.ipynb", "the variance-optimal constant baseline for reward-to-go", 1),
    E("01.3", "notebooks/01_policy_gradient.ipynb", "REINFORCE on the tabular MDP: runs that learn (about 5 s)", 1),
    # notebook 02: critics, GAE, actor-critic
    E("02.1", "notebooks/02_actor_critic.ipynb", "GAE by the backward recursion", 1,
      answers=("PG.3", "GAE.1", "GAE.2")),
    E("02.2", "notebooks/02_actor_critic.ipynb", "E[A_hat | s, a] of the n-step advantage on the tabular MDP", 1),
    E("02.3", "notebooks/02_actor_critic.ipynb", "tabular online actor-critic: the step and runs that learn (about 3 s)",
      1, answers=("DIST.1", "GAE.1")),
    # notebook 03: natural gradient
    E("NPG.3", "rlref/algos/npg.py:fisher_factor", "Z (R, P) with Z^T Z the exact (NPG.3) or empirical (NPG.4) Fisher",
      3, ("DIST.1", "MLP.2")),
    E("03.1", "notebooks/03_natural_gradient.ipynb", "the natural gradient of a 1-D Gaussian by hand", 1),
    E("03.2", "notebooks/03_natural_gradient.ipynb",
      "the empirical Fisher's error against k samples per state: runs whose statistics are checked (about 5 s)", 1,
      ("NPG.3",)),
    E("03.3", "notebooks/03_natural_gradient.ipynb", "the Woodbury solve of (Z^T Z + xi I) x = g", 1),
    # notebook 04: TRPO
    E("TRPO.5", "rlref/algos/trpo.py:max_step", "the natural step size: s_max = sqrt(2 max_kl / x^T F x) x", 1),
    E("TRPO.6", "rlref/policy.py:fisher_vector_product",
      "v -> F v + damping v by one forward-mode and one backward pass", 3, ("MLP.2", "MLP.4")),
    E("TRPO.8", "rlref/algos/trpo.py:conjugate_gradient", "conjugate gradient for A x = b from products A p", 3),
    E("TRPO.9", "rlref/algos/trpo.py:line_search", "backtrack along full_step until the rule accepts", 2),
    E("04.1", "notebooks/04_trpo.ipynb", "per-decision importance-sampled returns, one per episode", 1),
    E("04.2", "notebooks/04_trpo.ipynb", "the coupling bound on |J - L_old| in closed form", 1),
    E("04.3", "notebooks/04_trpo.ipynb", "the maximal step on the KL budget", 1, answers=("TRPO.5",)),
    E("04.4", "notebooks/04_trpo.ipynb", "conjugate gradient with a fixed number of products", 1, answers=("TRPO.8",)),
    E("04.5", "notebooks/04_trpo.ipynb", "exact TRPO on the tabular MDP at two radii (an experiment)", 1,
      ("TRPO.5", "TRPO.9")),                       # its runs call trpo.max_step and trpo.line_search
    # notebook 05: PPO and normalization
    E("PPO.2", "rlref/algos/ppo.py:policy_loss_and_grad",
      "the clipped (PPO.1-2) or penalty (PPO.3) loss with entropy, and its derivative in the "
      "distribution's parameters", 3, ("DIST.1", "DIST.2", "DIST.3")),
    E("PPO.4", "rlref/algos/ppo.py:adapt_beta", "halve or double beta outside [kl_target / 1.5, 1.5 kl_target]", 1),
    E("PPO.5", "rlref/value.py:value_loss_and_grad", "the value loss (V.1) or its clipped form (PPO.5), and dL/dv", 2),
    E("NORM.1", "rlref/normalize.py:rms_merge", "the exact merge of two sets of running statistics", 2,
      also_cut=("rlref/algos/dppo.py:rms_unmerge",)),
    E("05.1", "notebooks/05_ppo.ipynb", "one sample's clipped term and its derivative in log r", 1,
      answers=("PPO.2",)),
    E("05.2", "notebooks/05_ppo.ipynb", "the banded beta rule", 1, answers=("PPO.4",)),
    E("05.3", "notebooks/05_ppo.ipynb", "the exact relative bias of k2 for one categorical pair", 1),
    E("05.4", "notebooks/05_ppo.ipynb", "reward scaling by hand, one merge per step", 1, answers=("NORM.1",)),
    E("05.5", "notebooks/05_ppo.ipynb", "the Hessian of a Gaussian KL away from the old policy", 1),
    E("05.6", "notebooks/05_ppo.ipynb", "false early stops of k1 and k3 at a minibatch of 128 (an experiment)", 1),
    # notebook 06: distributed PPO
    E("06.1", "notebooks/06_dppo.ipynb", "the per-worker factor that moves the shared beta by exactly kappa", 1),
    E("06.2", "notebooks/06_dppo.ipynb", "Allreduce weights for unequal shares", 1),
    E("06.3", "notebooks/06_dppo.ipynb", "the statistics of the added data: (NORM.1) solved for b", 1, answers=("NORM.1",)),
    E("06.4", "notebooks/06_dppo.ipynb", "stale exact gradients on the tabular MDP (an experiment)", 1),
)
del E

# Notebook exercises the table does not grade yet, whose solutions answer exercises it does:
# {tag: (notebook, the function exercises answered)}. Registering one moves its answers to its entry.
UNGRADED_ANSWERS = {
}

BY_TAG = {e.tag: e for e in EXERCISES}
if len(BY_TAG) != len(EXERCISES) or set(BY_TAG) & set(UNGRADED_ANSWERS):
    raise RuntimeError("two exercises share a tag")
for _e in EXERCISES:
    if _e.setup not in ("imports", "cells") or not all(".py:" in t for t in _e.also_cut):
        raise RuntimeError(f"exercise {_e.tag}: setup must be 'imports' or 'cells', also_cut entries 'path.py:qualname'")
    if _e.answers and not _e.is_notebook:
        raise RuntimeError(f"exercise {_e.tag}: only a notebook exercise answers others")
for _tag, _answered in [(e.tag, e.answers) for e in EXERCISES] + [(t, a) for t, (_, a) in UNGRADED_ANSWERS.items()]:
    if not all(t in BY_TAG and not BY_TAG[t].is_notebook for t in _answered):
        raise RuntimeError(f"exercise {_tag}: answers must name function exercises, got {_answered}")
del _e, _tag, _answered


def lookup(tags):
    """The exercises of the given tags, in the table's order; HomeworkError names unknown tags."""
    unknown = [t for t in tags if t not in BY_TAG]
    if unknown:
        raise HomeworkError(f"unknown exercise tag(s) {unknown}; the tags are {list(BY_TAG)} "
                            f"(python -m rlref homework list)")
    wanted = set(tags)
    return [e for e in EXERCISES if e.tag in wanted]


def answering(tags):
    """[(notebook, tag)] of the notebook exercises not among `tags` whose solutions answer one of
    them (``answers``, UNGRADED_ANSWERS): a student version clears them too."""
    wanted = set(tags)
    found = [(e.path, e.tag) for e in EXERCISES if e.tag not in wanted and wanted & set(e.answers)]
    return found + [(path, t) for t, (path, answered) in UNGRADED_ANSWERS.items() if wanted & set(answered)]


def closure(tag):
    """Every exercise that `tag`'s tests run, directly or through other dependencies."""
    seen, todo = [], list(BY_TAG[tag].deps)
    while todo:
        t = todo.pop(0)
        if t not in seen:
            seen.append(t)
            todo += list(BY_TAG[t].deps)
    return seen
