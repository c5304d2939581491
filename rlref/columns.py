"""Every column of progress.csv, in one table: what it means, the equation it logs, its healthy range.

`python -m rlref explain COLUMN` prints a column's row, `python -m rlref explain` the whole table;
docs/run_columns.md is this table written as markdown (``markdown()``; a test keeps the two equal).
The health checks of a run (rlref/health.py) name the columns they watch by these names.

Equation tags are the course's, as in the code that computes them (rlref/algos/*.py, rlref/value.py,
rlref/optim.py, rlref/distributions.py); "-" where a column is a count, not an equation.
"""
from collections import namedtuple

Column = namedtuple("Column", "name algos meaning tags healthy")

ALL = "all"
PPO = "ppo, dppo"

COLUMNS = [
    Column("iteration", ALL, "updates done so far (one row per update)", "-", "1, 2, 3, ..."),
    Column("env_steps", ALL, "env transitions collected so far, summed over workers: the budget's clock",
           "-", "grows to total_steps"),
    Column("wall_s", ALL, "seconds of training so far (a resumed run continues its count)", "-",
           "grows; compare runs by env_steps, not by it"),
    Column("episodes", ALL, "training episodes finished so far", "-", "grows"),
    Column("return_mean", ALL, "mean return of the last 20 finished training episodes (empty until one "
           "finishes); summary.json's solved_at is when it first reaches the env's threshold", "-",
           "rises toward the env's threshold (CartPole-v1: 475)"),
    Column("return_std", ALL, "standard deviation of the same 20 returns", "-",
           "shrinks as the policy settles; 0 when every episode is alike"),
    Column("length_mean", ALL, "mean length in steps of the same 20 episodes", "-",
           "CartPole: grows with the return; Pendulum: always 200 (time limit)"),
    Column("loss_pi", "ppo, dppo, a2c, reinforce", "the policy loss the update minimizes (the negated "
           "surrogate: clipped or penalized for PPO; -mean logp A_hat for A2C and REINFORCE), mean over "
           "the update's steps", "PPO.1, PPO.3, PG.4",
           "near 0 and noisy (the advantages are standardized): its level says little"),
    Column("loss_v", "all (reinforce: with a value baseline)", "the value loss mean (V - R_hat)^2 (clipped with "
           "clip_value), at the first or mean step of the value fit", "V.1, PPO.5",
           "falls within a phase; rises with the returns' scale; astronomic values: steps too large"),
    Column("entropy", "all", "mean entropy of the policy over the batch's states, in nats",
           "DIST.2, DIST.6", "falls slowly as the policy learns; near 0 (Discrete) while return_mean is "
           "low: the policy collapsed before learning"),
    Column("kl", "all", "exact mean KL(pi_old || pi_new) over the batch after the update", "DIST.3, DIST.7",
           "near the target: kl_target (0.01) for PPO, at most max_kl for NPG and TRPO, about 1e-3 "
           "for A2C; 10 times the target for many iterations: steps too large"),
    Column("kl_k1", PPO, "sample estimate of kl: mean(-log ratio)", "-", "close to kl; can be negative"),
    Column("kl_k3", PPO, "sample estimate of kl: mean((ratio - 1) - log ratio), never negative; "
           "early_stop_kl compares it", "-", "close to kl"),
    Column("clip_frac", PPO, "fraction of samples with |ratio - 1| > clip_eps after the update",
           "PPO.1", "0.05 to 0.3; near 1 for many iterations: almost no sample gives a gradient any more"),
    Column("explained_var", "ppo, dppo, trpo", "1 - Var(R_hat - V_old) / Var(R_hat): how much of the "
           "returns' variance the value function explains (empty when R_hat is constant)", "V.1",
           "rises toward 1; below 0 for many iterations: the critic is worse than a constant and the "
           "advantages are noise"),
    Column("beta", PPO, "the KL penalty's coefficient after the update's adaptation", "PPO.4, DPPO.4",
           "clip objective: stays at its initial value; penalty: settles where kl is near kl_target"),
    Column("minibatch_steps", PPO, "Adam steps taken in the update (epochs x minibatches)", "-",
           "constant; fewer when early_stop_kl stopped the epochs"),
    Column("early_stop", PPO, "1 when early_stop_kl stopped the epochs, else 0", "-",
           "0 mostly; 1 every time: lr or epochs too large for early_stop_kl"),
    Column("grad_norm", "a2c, npg", "norm of the gradient before clipping (A2C: policy and value "
           "together; NPG: the policy gradient g)", "OPT.3, NPG.1",
           "of the same order throughout; a jump by orders of magnitude: a blow-up"),
    Column("max_kl", "npg, trpo", "the KL radius of this update (decays to 0 with anneal_kl)",
           "NPG.5, TRPO.3, OPT.4", "the configured max_kl, decaying linearly when annealed"),
    Column("kl_model", "npg, trpo", "the KL the quadratic model predicts for the full step, 1/2 s^T F s",
           "NPG.5, TRPO.5", "equal to max_kl; kl far from it: the quadratic model is poor"),
    Column("gTx", "npg", "g^T x, the gradient along the natural direction x = F^-1 g", "NPG.5",
           "positive (F is positive definite)"),
    Column("step_size", "npg", "sqrt(2 max_kl / x^T F x), the multiple of x taken", "NPG.5",
           "grows as the gradient shrinks"),
    Column("step_norm", "npg", "Euclidean norm of the step in parameter space", "NPG.5",
           "of the same order throughout"),
    Column("fisher_rows", "npg", "rows R of the factor Z (F = Z^T Z / N)", "NPG.3, NPG.4",
           "constant for a given batch size"),
    Column("woodbury", "npg", "1 when x was solved through Woodbury (R < P), 0 through Cholesky",
           "NPG.6, NPG.7", "constant for a given batch size"),
    Column("surrogate_gain", "trpo", "L(theta_new) - L(theta_old) of the accepted step", "TRPO.1",
           "positive; 0 when the line search failed"),
    Column("expected_gain", "trpo", "g^T of the accepted step: the gain the linear model predicts",
           "TRPO.2", "positive, close to surrogate_gain"),
    Column("step_frac", "trpo", "the fraction c^j of the full step accepted by the line search (0: none)",
           "TRPO.9", "1 mostly"),
    Column("line_search_failed", "trpo", "1 when no fraction was accepted (theta stays theta_old)",
           "TRPO.9", "0 almost always; often 1: max_kl too large or advantages noise"),
    Column("backtracks", "trpo", "fractions rejected by the line search", "TRPO.9", "0 or 1 mostly"),
    Column("cg_residual", "trpo", "||g - F x|| / ||g|| after conjugate gradient", "TRPO.8",
           "small (1e-3 or less); near 1: cg_iters too few or damping too small"),
    Column("cg_iters", "trpo", "conjugate-gradient iterations done", "TRPO.8", "at most cg_iters"),
    Column("kl_full", "trpo", "exact mean KL of the full step s_max", "TRPO.3, TRPO.5",
           "near max_kl; far above it: the quadratic model is poor and the line search backtracks"),
    Column("surrogate_gain_full", "trpo", "exact L(theta_old + s_max) - L(theta_old)", "TRPO.1",
           "positive mostly"),
]
BY_NAME = {c.name: c for c in COLUMNS}
FIELDS = ("column", "logged by", "meaning", "equation", "healthy")


def describe(name):
    """The column's row as a few lines of text; KeyError if progress.csv has no such column."""
    c = BY_NAME[name]
    tags = f"; equation {c.tags}" if c.tags != "-" else ""
    return (f"{c.name} (logged by {c.algos}{tags})\n  meaning: {c.meaning}\n"
            f"  healthy: {c.healthy}")


def text_table():
    """Every column as text: name, who logs it and the equation on one line, meaning and range under it."""
    head = ("The columns of progress.csv, one row per iteration (docs/run_columns.md; equation tags as in the "
            "notebooks and the code). python -m rlref explain RUN_DIR checks a run against the healthy ranges.\n")
    return head + "\n".join(describe(c.name) for c in COLUMNS)


def markdown():
    """docs/run_columns.md: the table as a markdown page."""
    lines = ["# The columns of progress.csv", "",
             "One row per iteration. Written from `rlref/columns.py` (`python -m rlref explain` prints the "
             "same table; `python -m rlref explain RUN_DIR` checks a run against the healthy ranges; "
             "the test `test_docs_page_is_the_code_table` keeps this page and the code equal).", "",
             "| " + " | ".join(FIELDS) + " |", "|" + "---|" * len(FIELDS)]
    for c in COLUMNS:
        lines.append("| " + " | ".join(_cell(v) for v in (f"`{c.name}`", c.algos, c.meaning, c.tags, c.healthy)) + " |")
    lines += ["", "## Health checks", "",
              "While a run trains, and in `python -m rlref explain RUN_DIR`, these rules read the rows above "
              "(`rlref/health.py`); each is said once, with the iteration and env step where it began and the "
              "likely cause; `summary.json` keeps what they found under `health`.", "", "```", health_rules(), "```"]
    return "\n".join(lines) + "\n"


def health_rules():
    """The rules' block of rlref/health.py's docstring (one source for the code and the page)."""
    from rlref import health
    doc = health.__doc__
    return doc[doc.index("    entropy_collapse"):doc.index("\nThe thresholds")].rstrip()


def _cell(text):
    return text.replace("|", "\\|")
