"""`python -m rlref gradcheck`: every check passes, each catches a planted bug, exit status."""

import numpy as np
import pytest

import rlref.nn
from rlref import checks
from rlref.cli import main
from rlref.distributions import Categorical, DiagGaussian
from rlref.gradcheck import run_table
from helpers import cli


def failing(rows):
    return [q for q, _, _, passed in rows if not passed]


def test_every_check_passes_on_several_seeds():
    for seed in (0, 1, 2):
        rows = checks.run_checks(seed)
        assert len(rows) >= 25 and not failing(rows), failing(rows)


def _scaled(method, factor):
    def wrong(self, *args, **kwargs):
        out = method(self, *args, **kwargs)
        return tuple(o * factor for o in out) if isinstance(out, tuple) else out * factor
    return wrong


PLANTED = {
    "scale the categorical score by 1 + 1e-3": (Categorical, "dlogp", lambda m: _scaled(m, 1.001),
                                                "Categorical d logp"),
    "halve the Gaussian entropy's log-sigma term": (
        DiagGaussian, "dentropy", lambda m: (lambda self: (m(self)[0], 0.5 * m(self)[1])), "Gaussian d entropy"),
    "swap the KL arguments (gradient of KL(q||p))": (
        Categorical, "dkl", lambda m: (lambda self, other: m(other, self)), "Categorical d KL"),
    "tanh' = 1 - h instead of 1 - h^2": (
        rlref.nn, "act_grad", lambda m: (lambda h, act: 1.0 - h if act == "tanh" else m(h, act)),
        "MLP tanh d/dparams"),
    "drop the shared log_std gradient's sum over samples": (
        checks, "policy_backward", lambda m: (lambda d, c: {**m(d, c), **({"log_std": d[1][0]} if isinstance(d, tuple) else {})}),
        "Gaussian policy: d mean logp"),
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_each_planted_bug_is_caught(bug, monkeypatch):
    owner, name, make_wrong, caught_by = PLANTED[bug]
    monkeypatch.setattr(owner, name, make_wrong(getattr(owner, name)))
    failed = failing(checks.run_checks(0))
    assert any(q.startswith(caught_by) for q in failed), (bug, failed)


def test_cli_gradcheck_exit_status(monkeypatch, capsys):
    done = cli("gradcheck")
    assert done.returncode == 0, done.stderr
    assert "max rel error" in done.stdout and "FAIL" not in done.stdout
    monkeypatch.setattr(checks, "ALL_CHECKS", [lambda rng: [("a wrong gradient", "(1,)", lambda: 1e-3)]])   # measured
    assert main(["gradcheck"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_an_identically_zero_gradient_is_not_a_pass():
    """Dead relu units make both gradients exactly 0; such a row must not report a pass."""
    x = np.ones(3)
    rows = run_table([lambda rng: [("zero", "(3,)", lambda x_: (0.0, np.zeros(3)), x),
                                   ("sum", "(3,)", lambda x_: (np.sum(x_), np.ones(3)), x)]])
    assert rows[0][2] == np.inf and not rows[0][3]
    assert rows[1][2] < 1e-9 and rows[1][3]
