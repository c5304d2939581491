"""A submission as students upload it: the whole folder, a zip of it, or only the files they changed.

The grader reads a submission as data and never runs or imports anything in it. It needs only the
files of the assigned exercises (and the student's homework.json, to note a disagreement), found by
path: an exact relative path first (``rlref/advantages.py``), else the longest match of the path's
end (``hw1/rlref/advantages.py``, ``advantages.py`` uploaded alone), else, for a notebook, any
notebook that holds the exercise's solution cells. Two candidates with an equally good match
are refused by name rather than guessed.

Untrusted input is read defensively: symbolic links are never followed (a link to the
instructor's reference is not the student's file), only regular files are read, each file is read
up to a limit, a zip is read member by member with limits (no extraction, nothing outside it), and
folders named like caches or virtualenvs are skipped.
"""
import json
import os
import stat
import zipfile

from rlref.errors import HomeworkError

MAX_FILE = 2 << 20            # bytes of one source file taken from a submission
MAX_NOTEBOOK = 32 << 20       # bytes of one notebook (outputs and images included)
MAX_FILES = 20000             # entries looked at in a folder or a zip
MAX_DEPTH = 20                # folders below the submission's root
SKIP = {".git", ".venv", "venv", "__pycache__", "__MACOSX", ".ipynb_checkpoints", "site-packages", "node_modules"}


class SubmissionError(HomeworkError):
    """What the grader could not read of a submission (said in the exercise's result)."""


def _limit(name):
    return MAX_NOTEBOOK if name.endswith(".ipynb") else MAX_FILE


def _read_file(path):
    """A regular file's bytes, never through a symbolic link, within its size limit."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SubmissionError(f"{path} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(_limit(path) + 1)
    finally:
        os.close(fd)
    if len(data) > _limit(path):
        raise SubmissionError(f"{os.path.basename(path)} is larger than {_limit(path) >> 20} MB")
    return data


class Submission:
    """The readable files of a submission: relative path -> a function returning its bytes."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        try:
            st = os.lstat(self.path)
        except OSError as err:
            raise HomeworkError(f"cannot read the submission {path}: {err.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise HomeworkError(f"the submission {path} is a symbolic link; give the folder or zip itself")
        self.files = self._zip(self.path) if stat.S_ISREG(st.st_mode) else self._folder(self.path)
        zips = [p for p in self.files if p.lower().endswith(".zip")]
        if stat.S_ISDIR(st.st_mode) and len(zips) == 1 and not any(p.endswith((".py", ".ipynb")) for p in self.files):
            self.files = self._zip(os.path.join(self.path, zips[0]))        # a folder holding only the uploaded zip

    def _folder(self, root):
        """Regular files under root, at most MAX_DEPTH folders down; links and SKIP folders ignored."""
        files, todo, seen = {}, [(root, 0)], 0
        while todo:
            folder, depth = todo.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > MAX_FILES:
                    raise SubmissionError(f"the submission has more than {MAX_FILES} files and folders")
                if entry.is_dir(follow_symlinks=False):
                    if depth < MAX_DEPTH and entry.name not in SKIP and not entry.name.endswith(".egg-info"):
                        todo.append((entry.path, depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    files[os.path.relpath(entry.path, root).replace(os.sep, "/")] = lambda p=entry.path: _read_file(p)
        return files

    def _zip(self, path):
        try:
            archive = zipfile.ZipFile(path)
            infos = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise HomeworkError(f"cannot read the submission {path} as a zip: {err}") from None
        if len(infos) > MAX_FILES:
            raise SubmissionError(f"the zip has more than {MAX_FILES} entries")
        files = {}
        for info in infos:
            name = info.filename.replace("\\", "/")
            is_link = stat.S_ISLNK(info.external_attr >> 16)
            parts = name.split("/")
            if info.is_dir() or is_link or name.startswith("/") or ".." in parts or any(p in SKIP for p in parts):
                continue
            files[name] = lambda info=info: self._member(archive, info)
        return files

    @staticmethod
    def _member(archive, info):
        limit = _limit(info.filename)
        if info.file_size > limit:
            raise SubmissionError(f"{info.filename} is larger than {limit >> 20} MB")
        try:
            with archive.open(info) as f:
                data = f.read(limit + 1)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError) as err:
            raise SubmissionError(f"cannot read {info.filename} from the zip: {err}") from None
        if len(data) > limit:
            raise SubmissionError(f"{info.filename} is larger than {limit >> 20} MB")
        return data

    def find(self, rel):
        """The submission's path for the project file `rel`, or None (see the module docstring)."""
        if rel in self.files:
            return rel
        want = rel.split("/")
        best, score = [], 0
        for path in self.files:
            parts = path.split("/")
            k = 0
            while k < min(len(parts), len(want)) and parts[-1 - k] == want[-1 - k]:
                k += 1
            if k > score:
                best, score = [path], k
            elif k == score and k > 0:
                best.append(path)
        if len(best) > 1:
            raise SubmissionError(f"the submission has {len(best)} files that could be {rel}: "
                                  f"{', '.join(sorted(best)[:4])}; keep one")
        return best[0] if best else None

    def text(self, path):
        try:
            return self.files[path]().decode("utf-8")
        except UnicodeDecodeError:
            raise SubmissionError(f"{path} is not UTF-8 text") from None
        except OSError as err:
            raise SubmissionError(f"cannot read {path}: {err.strerror or err}") from None

    def notebook(self, rel, holds=None):
        """(path, notebook dict) of the submission's copy of notebook `rel`; when it is not found by
        name, the only notebook for which holds(nb) is true."""
        path = self.find(rel)
        if path is None and holds is not None:
            fits = [p for p in self.files if p.endswith(".ipynb") and _holds(self, p, holds)]
            path = fits[0] if len(fits) == 1 else None
        if path is None:
            return None, None
        try:
            return path, json.loads(self.text(path))
        except (ValueError, RecursionError) as err:
            raise SubmissionError(f"{path} is not a notebook (invalid JSON: {str(err)[:120]})") from None

    def manifest(self):
        """The exercises the submission's homework.json lists: a list, None when there is none, or
        the reason it cannot be read (a string)."""
        path = self.find("homework.json")
        if path is None:
            return None
        try:
            tags = json.loads(self.text(path))["exercises"]
            return [str(t) for t in tags] if isinstance(tags, list) else "its 'exercises' is not a list"
        except (HomeworkError, ValueError, KeyError, TypeError, RecursionError) as err:
            return f"it cannot be read ({type(err).__name__})"


def _holds(sub, path, holds):
    try:
        return holds(json.loads(sub.text(path)))
    except (HomeworkError, ValueError, RecursionError):
        return False
