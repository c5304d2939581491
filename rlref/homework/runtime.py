"""An interpreter and a NumPy that the sandbox uid can use, outside every path the grader hides.

The sandbox (rlref/homework/sandbox.py) runs ``python -I -S`` with an explicit ``sys.path``: its own
tree and ``site/``, which holds NumPy and nothing else (hard links of the grader's NumPy files, or
copies where linking fails). The interpreter is the grader's own when a user who is neither owner
nor group can run it and read its standard library, and it lies outside the hidden paths;
otherwise (a pyenv Python under /root, say) the interpreter, its shared library and its standard
library (without site-packages, tests and GUI modules) are linked into the runtime folder too.
"""
import hashlib
import os
import shutil
import stat
import sys
import sysconfig
import tempfile


def others_reach(path, mode=stat.S_IROTH):
    """Whether a user who is neither owner nor in the group can reach `path` (every ancestor o+x)
    and has `mode` on it."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(1, len(parts)):
        st = os.stat(os.sep.join(parts[:i]) or os.sep)
        if not st.st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & mode)


def _link_file(src, dst):
    """Hard-link src at dst when others may read it, else copy it readable (0644, or 0755 if executable)."""
    try:
        if not os.stat(src).st_mode & stat.S_IROTH:
            raise OSError("not world-readable")
        os.link(os.path.realpath(src), dst)
    except OSError:
        shutil.copy2(src, dst)
        os.chmod(dst, 0o755 if os.access(src, os.X_OK) else 0o644)


def _link_tree(src, dst, skip=()):
    """_link_file for every file of a folder (dangling links skipped), folders 0755."""
    for folder, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d not in skip]
        target = os.path.join(dst, os.path.relpath(folder, src))
        os.makedirs(target, mode=0o755, exist_ok=True)
        os.chmod(target, 0o755)
        for n in names:
            if os.path.exists(os.path.join(folder, n)):
                _link_file(os.path.join(folder, n), os.path.join(target, n))


LAYOUT = 1     # bump when what a runtime folder holds changes


def _numpy_dirs():
    import numpy
    parent = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    return numpy.__version__, [os.path.join(parent, n) for n in sorted(os.listdir(parent))
                               if n == "numpy" or (n.startswith("numpy") and n.endswith(".libs"))]


class Runtime:
    """An interpreter and a NumPy the sandbox uid can use, outside every private path (`copy`: always
    a copy of the interpreter, for a sandbox that sees nothing but its runtime and the system's
    libraries). Built once
    per interpreter, NumPy and user into tempdir/rlref-runtime-KEY (made in a private folder and
    renamed into place, used only when this user owns it and nobody else can write it)."""

    def __init__(self, private_paths, as_other, copy=False):
        exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
        stdlib = sysconfig.get_paths()["stdlib"]
        libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
        self.shared = os.path.join(libdir, soname) if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and soname else None
        needed = [(exe, stat.S_IXOTH), (stdlib, stat.S_IROTH)] + ([(self.shared, stat.S_IROTH)] if self.shared else [])
        inside = lambda p: any(os.path.realpath(p).startswith(os.path.realpath(h) + os.sep) for h in private_paths)
        self.copy_python = copy or as_other and not all(others_reach(p, m) and not inside(p) for p, m in needed)
        version, self.numpy = _numpy_dirs()
        key = hashlib.sha256(repr((LAYOUT, exe, sys.version, self.numpy, version, self.copy_python, os.geteuid()))
                             .encode()).hexdigest()[:16]
        self.dir = os.path.join(tempfile.gettempdir(), f"rlref-runtime-{key}")
        if not self._usable(self.dir):
            tmp = tempfile.mkdtemp(prefix="rlref-runtime-new-")
            self._build(tmp, exe, stdlib)
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, self.dir)
            except OSError:                                   # made meanwhile by another grade, or not ours
                if not self._usable(self.dir):
                    self.dir = tmp
                else:
                    shutil.rmtree(tmp, ignore_errors=True)
        self.site = os.path.join(self.dir, "site")
        self.python = os.path.join(self.dir, "python", "bin", os.path.basename(exe)) if self.copy_python else exe
        self.env = {"LD_LIBRARY_PATH": os.path.join(self.dir, "python", "lib")} if self.copy_python and self.shared else {}

    @staticmethod
    def _usable(path):
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022 and \
            os.path.isdir(os.path.join(path, "site", "numpy"))

    def _build(self, dest, exe, stdlib):
        for src in self.numpy:
            _link_tree(src, os.path.join(dest, "site", os.path.basename(src)))
        if not self.copy_python:
            return
        home = os.path.join(dest, "python")                         # a copy the sandbox uid can run
        _link_tree(stdlib, os.path.join(home, "lib", os.path.basename(stdlib)),
                   skip={"site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip",
                         "lib2to3", "pydoc_data"})
        os.makedirs(os.path.join(home, "bin"), mode=0o755)
        _link_file(exe, os.path.join(home, "bin", os.path.basename(exe)))
        if self.shared:
            _link_file(self.shared, os.path.join(home, "lib", os.path.basename(self.shared)))
