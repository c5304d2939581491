"""The workers of a training run: one process, or the ranks of an MPI job (mpi4py).

The training loop is written once, for W workers; every collective it uses is a method here, and
with one process each of them is the identity. rlref/algos/dppo.py adds what is DPPO's own (the
merge of normalization statistics, DPPO.3) in a subclass; everything else is the plumbing of MPI.
"""
import hashlib
import sys

import numpy as np

from rlref.errors import SyncError
from rlref.nn import flatten, unflatten
from rlref.seeding import generators


def mpi_world():
    """(mpi4py.MPI, COMM_WORLD), or (None, None) when mpi4py is not installed."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None, None
    return MPI, MPI.COMM_WORLD


HOW_TO_SCALE = ("dppo: running as one worker{why}. To train with W workers: "
                "mpiexec -n W python -m rlref train dppo ...{install}")


class Workers:
    """The ranks of an MPI communicator (or one process, comm=None), and the collectives the
    training loop (rlref/train.py, rlref/run.py) and a distributed update need. One process
    (``Workers()``) is what every algorithm but DPPO runs with: each collective is then the
    identity, and the two hooks after_collect / after_resume do nothing (DPPO fills them in).

    shared: the statistics as of the last merge, from which each rank's local changes are
    measured (rlref/algos/dppo.py, DPPO.3)."""

    def __init__(self, comm=None, MPI=None):
        self.comm, self.MPI = (comm, MPI) if comm is not None and comm.Get_size() > 1 else (None, None)
        self.rank = comm.Get_rank() if self.comm else 0
        self.size = comm.Get_size() if self.comm else 1
        self.shared = {}

    def generators(self, seed):
        """Rank 0: the run's named generators, as in a one-process run; rank r >= 1: its own five
        (rlref/seeding.py)."""
        return generators(seed, worker=self.rank)

    def mean(self, x):
        """The average over ranks of an array (Allreduce), identical on every rank.  (DPPO.1)"""
        if self.comm is None:
            return x
        return self._allreduce(np.asarray(x, dtype=np.float64), self.MPI.SUM) / self.size

    def total(self, x):
        """A number, or a tuple of numbers, summed over ranks (as floats): one Allreduce."""
        if self.comm is None:
            return x
        out = self._allreduce(np.atleast_1d(np.asarray(x, dtype=np.float64)), self.MPI.SUM)
        return tuple(float(v) for v in out) if isinstance(x, tuple) else float(out[0])

    def _allreduce(self, x, op):
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)
        self.comm.Allreduce(x, out, op=op)
        return out

    def smallest(self, n):
        return n if self.comm is None else self.comm.allreduce(n, op=self.MPI.MIN)

    def gather(self, items):
        """A list concatenated over ranks in rank order, on every rank."""
        if self.comm is None:
            return list(items)
        return [x for part in self.comm.allgather(list(items)) for x in part]

    def collected(self, steps, returns, lengths):
        """This iteration's env steps summed over ranks, and every rank's finished episodes (returns
        and lengths, in rank order): one collective."""
        if self.comm is None:
            return steps, list(returns), list(lengths)
        parts = self.comm.allgather((steps, list(returns), list(lengths)))
        return (sum(p[0] for p in parts), [x for p in parts for x in p[1]], [x for p in parts for x in p[2]])

    def broadcast(self, agent):
        """Rank 0's policy and value parameters, on every rank."""
        if self.comm is None:
            return agent
        for part in ("policy", "value"):
            theta = np.ascontiguousarray(flatten(agent[part]))
            self.comm.Bcast(theta, root=0)
            agent[part] = unflatten(theta, agent[part])
        return agent

    def after_collect(self, collector):
        """After each collection: one process has nothing to share (DPPO merges its statistics)."""

    def after_resume(self, collector):
        """After a resume: one process has nothing to share."""

    def agree(self, flags):
        """Each of a few integer flags' maximum over ranks, on every rank: one Allreduce. The
        training loop's decisions to stop (a signal caught on any rank) and to save."""
        if self.comm is None:
            return list(flags)
        return [int(v) for v in self._allreduce(np.array(flags, dtype=np.int64), self.MPI.MAX)]

    def gather_on_root(self, item):
        """[every rank's item, in rank order] on rank 0, None on the others (a checkpoint's parts)."""
        return [item] if self.comm is None else self.comm.gather(item, root=0)

    def barrier(self):
        if self.comm is not None:
            self.comm.Barrier()

    def abort(self, err):
        """An error on one rank would leave the others waiting in a collective for ever: say which
        rank failed and why, then end the whole MPI job (MPI_Abort)."""
        if self.comm is None:
            return
        print(f"error on rank {self.rank} of {self.size}: {type(err).__name__}: {err}; aborting the MPI job",
              file=sys.stderr, flush=True)
        self.comm.Abort(2)

    def check_sync(self, agent, updates):
        """SyncError unless every rank holds bitwise the same parameters, optimizer state and beta."""
        if self.comm is None:
            return
        digest = hashlib.sha256()
        for x in (flatten(agent["policy"]), flatten(agent["value"]), agent["opt"]["m"], agent["opt"]["v"],
                  np.asarray(agent["state"]["beta"], dtype=np.float64)):
            digest.update(np.ascontiguousarray(x).tobytes())
        sums = self.comm.allgather(digest.hexdigest()[:16])
        if len(set(sums)) > 1:
            raise SyncError(f"the workers' parameters differ after update {updates}: checksums by rank "
                            f"{sums}; every rank must apply the same averaged gradient to the same "
                            f"parameters (same data sizes, same number of minibatch steps)")
