"""Start one sandboxed process: enclose, limit, drop privileges, exec.  (rlref's homework grader)

rlref/homework/sandbox.py runs this file as ``python -I -S launch.py SPEC`` (SPEC: JSON) for every
sandboxed process, a fresh single-threaded process, so nothing here races with the grader. In order:

1. (root, where mount namespaces work) a private mount namespace whose root directory is an empty
   tmpfs holding read-only bind mounts of the system's shared libraries, of the sandbox's runtime
   (its interpreter and NumPy) and of /dev/null and the random devices, and a writable one of the
   run's own folder; then chroot into it. Nothing else of the machine exists for the process: no
   checkout, no hidden test, no /proc, no /tmp, no home;
2. oom_score_adj 1000: when memory runs out, the kernel ends sandboxed processes first;
3. the resource limits (CPU seconds, address space, processes, file size, open files, no core);
4. (root) no supplementary groups, then the sandbox's gid and uid, checked;
5. chdir to the sandbox's home, and execve its interpreter with the scrubbed environment.

``{"probe": true}`` only tests step 1 (exit 0 when it works). A failure before exec is written to
the spec's ``report`` file descriptor, which is closed by the exec itself: the grader tells a
sandbox that could not start from student code that exits early, whatever its exit code. The
launcher imports only the standard library, nothing from rlref.
"""
import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS, MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = \
    0x20000, 1, 2, 4, 32, 4096, 0x4000, 1 << 18
SYSTEM = ("/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32",
          "/etc/ld.so.cache", "/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
SETUP_FAILED = 121
libc = ctypes.CDLL(None, use_errno=True)


REPORT = [2]


def fail(message):
    os.write(REPORT[0], f"rlref sandbox launcher: {message}\n".encode())
    os._exit(SETUP_FAILED)


def call(name, *args):
    if getattr(libc, name)(*args) != 0:
        raise OSError(ctypes.get_errno(), f"{name}{args[:2]}: {os.strerror(ctypes.get_errno())}")


def bind(path, root, writable=False):
    """Make `path` appear at the same place under `root` (a link stays a link)."""
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.islink(path):
        os.symlink(os.readlink(path), target)
        return
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        open(target, "a").close()
    call("mount", path.encode(), target.encode(), None, MS_BIND | MS_REC, None)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (0 if writable else MS_RDONLY) | (0 if path.startswith("/dev/") else MS_NODEV)
    call("mount", None, target.encode(), None, flags, None)


def enclose(root, read_only, writable):
    call("unshare", CLONE_NEWNS)
    call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    call("mount", b"tmpfs", root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,mode=755")
    for path in SYSTEM + tuple(read_only):
        if os.path.lexists(path):
            bind(path, root)
    for path in writable:
        bind(path, root, writable=True)
    call("mount", None, root.encode(), None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=1m,mode=755")
    os.chroot(root)


def main(spec):
    if "report" in spec:
        REPORT[0] = spec["report"]
        os.set_inheritable(REPORT[0], False)        # closed by the exec: the run's code cannot write it
    if spec.get("probe"):
        enclose(spec["root"], [], [])
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    if spec.get("enclose"):
        enclose(**spec["enclose"])
    uid = spec.get("uid")
    for name, (soft, hard) in spec["limits"].items():
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError, AttributeError):
            if uid is not None:                     # grading others' work: every limit or nothing
                raise
            # a student's own run on a system without this limit (macOS and RLIMIT_AS)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid or os.getgid() != uid or os.getgroups():
            fail("could not drop privileges")
    os.chdir(spec["cwd"])
    os.execve(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    try:
        main(json.loads(sys.argv[1]))
    except Exception as err:                    # before exec: nothing of the student's has run yet
        fail(f"{type(err).__name__}: {err}")
