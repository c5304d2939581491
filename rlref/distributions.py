"""Policy distributions with hand-derived derivatives in their own parameters.

Derived in ``notebooks/00_backprop_and_gradcheck.ipynb``. A distribution holds the arrays of a
batch of N distributions; every method returns one value per sample (shape (N,)) or a derivative
with respect to the distribution's own parameters, which the caller pushes back through the
network with ``mlp_backward``.

Categorical with logits z (N, A), p = softmax(z), log p = z - logsumexp(z):

    d log p(a) / dz       = onehot(a) - p                                  (DIST.1)
    H(p)                  = -sum_j p_j log p_j,   dH/dz_j = -p_j (log p_j + H)          (DIST.2)
    KL(p || q)            = sum_j p_j (log p_j - log q_j),   dKL/dz^q = q - p            (DIST.3)
    Fisher in z           = E_a[(onehot(a) - p)(onehot(a) - p)^T] = diag(p) - p p^T       (DIST.4)

Diagonal Gaussian with mean mu (N, D) and log standard deviation s (sigma = exp(s)), summed over
the D independent coordinates:

    log p(a)              = sum_d -(a - mu)^2 / (2 sigma^2) - s - log(2 pi) / 2
    d log p / d mu        = (a - mu) / sigma^2,   d log p / d s = (a - mu)^2 / sigma^2 - 1  (DIST.5)
    H                     = sum_d s + log(2 pi e) / 2,   dH/dmu = 0,   dH/ds = 1           (DIST.6)
    KL(p || q)            = sum_d s_q - s_p + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2
    dKL/dmu_q = (mu_q - mu_p) / sigma_q^2,  dKL/ds_q = 1 - (sigma_p^2 + (mu_p - mu_q)^2) / sigma_q^2  (DIST.7)
    Fisher in (mu, s)     = diag(1 / sigma^2, 2)                                         (DIST.8)

Derivatives of the KL are taken with respect to the *second* argument, `other`: rlref always
measures KL(pi_old || pi_theta) and differentiates in theta.

Checks at the boundary: the constructors and the methods that take actions validate their inputs
(finite float64 parameters, actions of the right shape and range), because a student calls them
with arrays of their own. rlref's own hot loops pass ``check=False`` for arrays that its own code
just produced from validated inputs (a network's output, actions it sampled itself).
"""
import numpy as np

from rlref.errors import require_array

LOG_2PI = np.log(2.0 * np.pi)


class Categorical:
    """N categorical distributions over A actions, from logits (N, A)."""

    def __init__(self, logits, check=True):
        if check:
            logits = require_array("logits", logits, ndim=2)
            if logits.shape[1] < 1:
                raise ValueError(f"logits must have at least one action column, got shape {logits.shape}")
        self.logits = logits                                            # (N, A)
        shifted = logits - logits.max(axis=1, keepdims=True)            # max subtracted: no overflow
        self.logp_all = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, A)
        self.probs = np.exp(self.logp_all)                              # (N, A)
        self._entropy = None

    def _check_actions(self, a):
        a = np.asarray(a)
        N, A = self.logits.shape
        if a.shape != (N,) or a.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers of shape ({N},), got {a.dtype} of shape {a.shape}")
        if N and (a.min() < 0 or a.max() >= A):
            raise ValueError(f"actions must be in [0, {A - 1}], got values in [{a.min()}, {a.max()}]")
        return a

    def take(self, idx):
        """The distributions of the samples idx (an index array or a slice)."""
        return Categorical(self.logits[idx], check=False)

    def logp(self, a, check=True):
        if check:
            a = self._check_actions(a)
        return self.logp_all[np.arange(len(a)), a]                      # (N,)

    def dlogp(self, a, check=True):
        """Score in the logits: onehot(a) - p.  (DIST.1)"""
        if check:
            a = self._check_actions(a)
        dlogits = -self.probs                                            # (N, A)
        dlogits[np.arange(len(a)), a] += 1.0
        return dlogits

    def entropy(self):
        if self._entropy is None:                                        # computed once, then kept
            self._entropy = -(self.probs * self.logp_all).sum(axis=1)    # (N,)   (DIST.2)
        return self._entropy

    def dentropy(self):
        """dH/dlogits = -p (log p + H).  (DIST.2)"""
        return -self.probs * (self.logp_all + self.entropy()[:, None])   # (N, A)

    def _check_other(self, other):
        if not isinstance(other, Categorical) or other.logits.shape != self.logits.shape:
            raise ValueError(f"other must be a Categorical with logits of shape {self.logits.shape}, "
                             f"got {type(other).__name__}")

    def kl(self, other):
        """KL(self || other) per sample.  (DIST.3)"""
        self._check_other(other)
        return (self.probs * (self.logp_all - other.logp_all)).sum(axis=1)   # (N,)

    def dkl(self, other):
        """d KL(self || other) / d other.logits = q - p.  (DIST.3)"""
        self._check_other(other)
        return other.probs - self.probs                                   # (N, A)

    def fisher(self):
        """Fisher information in the logits, diag(p) - p p^T, shape (N, A, A).  (DIST.4)"""
        p = self.probs
        return p[:, :, None] * np.eye(p.shape[1]) - p[:, :, None] * p[:, None, :]

    def fisher_product(self, v):
        """(diag(p) - p p^T) v per sample, without forming the matrix: v (N, A) -> (N, A)."""
        p = self.probs
        return p * (v - (p * v).sum(axis=1, keepdims=True))

    def sample(self, rng):
        """One action per row by inverting the CDF with a uniform draw from `rng`."""
        cdf = np.cumsum(self.probs, axis=1)                               # (N, A)
        u = rng.random((cdf.shape[0], 1)) * cdf[:, -1:]                   # rescale: cdf[-1] may be 1 - 1e-16
        return (u < cdf).argmax(axis=1)                                   # (N,) int

    def mode(self):
        return self.logits.argmax(axis=1)                                 # (N,)


class DiagGaussian:
    """N diagonal Gaussians over D dims: mean (N, D), log_std (D,) shared or (N, D) per sample."""

    def __init__(self, mean, log_std, check=True):
        if check:
            mean = require_array("mean", mean, ndim=2)
            log_std = require_array("log_std", log_std)
            if log_std.shape not in ((mean.shape[1],), mean.shape):
                raise ValueError(f"log_std must have shape ({mean.shape[1]},) or {mean.shape} to match "
                                 f"mean of shape {mean.shape}, got {log_std.shape}")
        self.mean = mean                                                  # (N, D)
        self.log_std = np.broadcast_to(log_std, mean.shape)               # (N, D), read-only view
        self.std = np.exp(self.log_std)                                   # (N, D)
        self.var = self.std * self.std                                    # (N, D)

    def _check_actions(self, a):
        a = np.asarray(a, dtype=np.float64)
        if a.shape != self.mean.shape:
            raise ValueError(f"actions must have shape {self.mean.shape}, got {a.shape}")
        return a

    def take(self, idx):
        """The distributions of the samples idx (an index array or a slice)."""
        return DiagGaussian(self.mean[idx], self.log_std[idx], check=False)

    def logp(self, a, check=True):
        if check:
            a = self._check_actions(a)
        z = (a - self.mean) / self.std                                    # (N, D)
        return (-0.5 * z * z - self.log_std - 0.5 * LOG_2PI).sum(axis=1)  # (N,)

    def dlogp(self, a, check=True):
        """Score (dmean, dlog_std), each (N, D).  (DIST.5)"""
        if check:
            a = self._check_actions(a)
        diff = a - self.mean                                              # (N, D)
        return diff / self.var, diff * diff / self.var - 1.0

    def entropy(self):
        return (self.log_std + 0.5 * (LOG_2PI + 1.0)).sum(axis=1)        # (N,)   (DIST.6)

    def dentropy(self):
        """(dH/dmean, dH/dlog_std) = (0, 1), each (N, D).  (DIST.6)"""
        return np.zeros_like(self.mean), np.ones_like(self.mean)

    def _check_other(self, other):
        if not isinstance(other, DiagGaussian) or other.mean.shape != self.mean.shape:
            raise ValueError(f"other must be a DiagGaussian with mean of shape {self.mean.shape}, "
                             f"got {type(other).__name__}")

    def kl(self, other):
        """KL(self || other) per sample.  (DIST.7)"""
        self._check_other(other)
        diff = self.mean - other.mean                                     # (N, D)
        return (other.log_std - self.log_std
                + (self.var + diff * diff) / (2.0 * other.var) - 0.5).sum(axis=1)

    def dkl(self, other):
        """d KL(self || other) / d (other.mean, other.log_std), each (N, D).  (DIST.7)"""
        self._check_other(other)
        diff = other.mean - self.mean                                     # (N, D)
        return diff / other.var, 1.0 - (self.var + diff * diff) / other.var

    def fisher(self):
        """Fisher information in (mean, log_std), shape (N, 2D, 2D): diag(1/sigma^2, 2).  (DIST.8)"""
        diag = np.concatenate([1.0 / self.var, np.full_like(self.var, 2.0)], axis=1)   # (N, 2D)
        return diag[:, :, None] * np.eye(diag.shape[1])

    def fisher_product(self, v):
        """The Fisher times v = (vmean, vlog_std), each (N, D), without forming the matrix."""
        vmean, vlog_std = v
        return vmean / self.var, 2.0 * vlog_std

    def sample(self, rng):
        return self.mean + self.std * rng.standard_normal(self.mean.shape)   # (N, D)

    def mode(self):
        return self.mean.copy()
