"""Where student code runs: a child process that can read its own tree and nothing the grader keeps.

One ``Sandbox`` serves one grade. Every ``run`` starts a fresh process through launch.py with

- an interpreter started ``-I -S -B`` (isolated: no environment variables of Python's, no site,
  no .pth, no user site, no bytecode written), whose ``sys.path`` is set explicitly to the run's
  own tree and a private copy of NumPy (hard links where possible): nothing else is importable;
- no pytest, no plugin, no conftest, no ini file: the probes are plain functions;
- a fresh temporary home and working directory, and an environment holding only PATH, HOME,
  TMPDIR, the locale and one BLAS thread (``rlref.one_blas_thread``): no path of the reference, of
  the hidden tests or of any report;
- rlimits on CPU time, address space, processes, file size and open files, oom_score_adj 1000, and
  a wall-clock timeout; a watchdog kills the run when its processes hold more than MEMORY bytes;
- its own session; when the run ends, whatever it started is killed: as root every process of the
  sandbox uid (``kill(-1)`` from that uid, repeated until none is left), otherwise its process group
  and every process that came back to the grader, which is a child subreaper;
- as root, an unprivileged uid of its own: a free uid from SANDBOX_UIDS, held with a lock while the
  grade runs (not ``nobody``, whose processes are not all ours to kill, and which two grades at once
  would share), which can signal no process of the grader's and read none of its
  private files (mode 0700), and, where mount namespaces work, a root directory of its own holding
  only the system's shared libraries, the runtime and the run's folder (launch.py): no checkout,
  no hidden test, no other student's work, no /proc, no /tmp. Where they do not (a container
  without CAP_SYS_ADMIN, as on Gradescope) permissions must do: run_autograder makes /autograder
  0700, and a grade refuses to run student code when the checkout or the hidden tests are readable
  by others.

Without root the sandbox runs as the grading user: a student checking their own work needs no
more, but nothing then stops the code from reading what that user can read (README, "Instructors").
"""
import ctypes
import fcntl
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import rlref
from rlref.errors import HomeworkError
from rlref.homework.runtime import Runtime, others_reach

SANDBOX_UIDS = (42000, 44000)           # RLREF_SANDBOX_UIDS="lo-hi" changes the range
LIMITS = {"RLIMIT_CPU": (20, 21), "RLIMIT_AS": (512 << 20,) * 2, "RLIMIT_FSIZE": (16 << 20,) * 2,
          "RLIMIT_NOFILE": (64,) * 2, "RLIMIT_CORE": (0, 0)}
PROCESSES = 16                          # RLIMIT_NPROC for the sandbox uid
MEMORY = 400 << 20                      # resident bytes of all the run's processes together
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch.py")


def _processes():
    """[(pid, uid, ppid, pgid, resident bytes, state)] of every process, from /proc (none without
    it, as on macOS: there a student's own run has no memory watchdog and no orphan hunt)."""
    page, found = os.sysconf("SC_PAGE_SIZE"), []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found.append((int(name), uid, int(fields[1]), int(fields[2]), int(fields[21]) * page, fields[0].decode()))
    return found


def allocate_uid():
    """(uid, lock file): a uid with no user and no process, held by an flock until the lock file is
    closed (a grade that dies releases it)."""
    lo, hi = SANDBOX_UIDS
    if os.environ.get("RLREF_SANDBOX_UIDS"):
        lo, hi = (int(x) for x in os.environ["RLREF_SANDBOX_UIDS"].split("-"))
    locks = os.path.join(tempfile.gettempdir(), "rlref-sandbox-uids")
    os.makedirs(locks, mode=0o700, exist_ok=True)
    st = os.lstat(locks)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        raise HomeworkError(f"{locks} must be a folder of root's with mode 0700 (remove it and grade again)")
    busy = {p[1] for p in _processes()}
    start = secrets.randbelow(hi - lo)
    for k in range(hi - lo):
        uid = lo + (start + k) % (hi - lo)
        try:
            pwd.getpwuid(uid)
            continue                                        # a real user
        except KeyError:
            pass
        if uid in busy:
            continue
        fd = os.open(os.path.join(locks, str(uid)), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, fd
        except BlockingIOError:
            os.close(fd)
    raise HomeworkError(f"no free sandbox uid in {lo}-{hi} (RLREF_SANDBOX_UIDS=lo-hi chooses others)")


_namespaces = {}


def namespaces_work(folder):
    """Whether this machine lets root enclose a process in a mount namespace (launch.py's probe);
    RLREF_SANDBOX_NAMESPACES=0 says no (to try the path Gradescope's containers take)."""
    if os.environ.get("RLREF_SANDBOX_NAMESPACES") == "0":
        return False
    if "ok" not in _namespaces:
        root = tempfile.mkdtemp(dir=folder)
        done = subprocess.run([sys.executable, "-I", "-S", LAUNCHER, json.dumps({"probe": True, "root": root})],
                              capture_output=True, env={}, cwd="/")
        _namespaces["ok"] = done.returncode == 0
        os.rmdir(root)
    return _namespaces["ok"]


def _set_subreaper():
    """Orphans of the sandbox come back to this process (and are killed) instead of going to init."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


BOOT = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/tests', sys.argv[2]]; "
        "from rlref.homework.runner import main; main(sys.argv[3], sys.argv[4])")
KILL_ALL = "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"


def as_root():
    """Whether the grader may switch uid (tests of the other path replace this)."""
    return os.geteuid() == 0


class Sandbox:
    """One grade's sandbox (see the module docstring); use as a context manager."""

    def __init__(self, private_paths, limits=None, memory=MEMORY, processes=PROCESSES):
        self.as_root = as_root()
        self.limits, self.memory = dict(limits or LIMITS), memory
        self.dir = tempfile.mkdtemp(prefix="rlref-sandbox-")
        os.chmod(self.dir, 0o711)                              # enter a known name, list nothing
        self.enclosed = self.as_root and namespaces_work(self.dir)
        private = [os.path.realpath(p) for p in private_paths if os.path.isdir(p)]
        readable = [p for p in private if self.as_root and not self.enclosed and others_reach(p, stat.S_IROTH | stat.S_IXOTH)]
        if readable:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise HomeworkError(f"refusing to run student code as root: the sandbox user could read {', '.join(readable)}, "
                                f"and this machine has no mount namespaces to hide them; make them unreadable to "
                                f"others (chmod o-rwx) and grade again")
        self.uid, self._lock = allocate_uid() if self.as_root else (None, None)
        mine = 0 if self.as_root else sum(p[1] == os.getuid() for p in _processes())
        self.limits["RLIMIT_NPROC"] = (mine + processes, mine + processes)
        self.runtime = Runtime(private, self.as_root, copy=self.enclosed)
        self.runs = 0
        _set_subreaper()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def new_box(self):
        """A fresh folder for one run's tree (root-owned 0755; write the tree, then call run)."""
        self.runs += 1
        run_dir = os.path.join(self.dir, f"run{self.runs}-{secrets.token_hex(8)}")
        os.mkdir(run_dir, 0o755)
        box = os.path.join(run_dir, "box")
        os.mkdir(box, 0o755)
        return box

    def _own(self, path):
        os.mkdir(path, 0o700)
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def run(self, box, job, timeout):
        """Run the probes of `job` on the tree in `box`; returns a dict: status ("ok", "timeout",
        "memory", "exit"), code, signal, output (the result file's bytes or None), log (its tail)."""
        run_dir = os.path.dirname(box)
        home = self._own(os.path.join(run_dir, "home"))
        self._own(os.path.join(home, "tmp"))
        out = self._own(os.path.join(run_dir, "out"))
        job_path = os.path.join(box, "job.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        env = rlref.one_blas_thread({"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": os.path.join(home, "tmp"),
                                     "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0",
                                     "MPLBACKEND": "Agg", **self.runtime.env})
        argv = [self.runtime.python, "-I", "-S", "-B", "-c", BOOT, box, self.runtime.site, job_path,
                os.path.join(out, "result.json")]
        spec = {"limits": self.limits, "uid": self.uid, "cwd": home, "argv": argv, "env": env}
        if self.enclosed:
            root = os.path.join(self.dir, f"mnt{self.runs}-{secrets.token_hex(8)}")
            os.mkdir(root, 0o755)
            spec["enclose"] = {"root": root, "read_only": [self.runtime.dir], "writable": [run_dir]}
        log_path = os.path.join(run_dir, "log")
        report, spec["report"] = os.pipe()
        with open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen([sys.executable, "-I", "-S", LAUNCHER, json.dumps(spec)], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={}, cwd="/",
                                        pass_fds=(spec["report"],))
            finally:
                os.close(spec["report"])
        with os.fdopen(report, "rb") as f:              # EOF at the exec (the fd closes), a line if setup failed
            setup_error = f.read(2000).decode(errors="replace").strip()
        start = time.monotonic()
        status = self._watch(proc, start + timeout) if not setup_error else "ok"
        self.kill(proc)
        code = proc.returncode
        if setup_error:
            raise HomeworkError(f"the sandbox could not start: {setup_error}")
        return {"status": status if status != "ok" or code == 0 else "exit", "code": code,
                "signal": signal.Signals(-code).name if code is not None and code < 0 else None,
                "output": _read_output(os.path.join(out, "result.json")), "log": _tail(log_path, 2000),
                "seconds": time.monotonic() - start}

    def _mine(self, proc):
        """The live processes of this run: the sandbox uid's (root), else the run's process group."""
        return [p for p in _processes() if p[5] != "Z" and
                (p[1] == self.uid if self.uid is not None else proc is not None and p[3] == proc.pid)]

    def _watch(self, proc, deadline):
        pause = 0.01
        while proc.poll() is None:
            if time.monotonic() > deadline:
                return "timeout"
            if sum(p[4] for p in self._mine(proc)) > self.memory:
                return "memory"
            time.sleep(pause)
            pause = min(0.1, pause * 1.5)
        return "ok"

    def kill(self, proc=None):
        """Kill everything the run started, and reap what came back to this process."""
        for _ in range(200):
            if self.uid is not None:
                subprocess.run([self.runtime.python, "-I", "-S", "-c", KILL_ALL], user=self.uid, group=self.uid,
                               extra_groups=[], env=self.runtime.env, cwd="/", stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            elif proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            orphans = [p for p in _processes() if p[2] == os.getpid() and (proc is None or p[0] != proc.pid) and
                       (self.uid is None or p[1] == self.uid)]
            for p in orphans:
                try:
                    os.kill(p[0], signal.SIGKILL)
                    os.waitpid(p[0], 0)
                except (ProcessLookupError, ChildProcessError, PermissionError):
                    pass
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            if not orphans and not (self.uid is not None and self._mine(proc)):
                return
            time.sleep(0.01)
        raise HomeworkError("the sandbox's processes could not all be killed")

    def close(self):
        if self.uid is not None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _read_output(path, limit=8 << 20):
    """The bytes of a result file the sandbox wrote: a regular file, never through a link, at most limit + 1."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)


def _tail(path, n):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
