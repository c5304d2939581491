"""The course site (python -m rlref site, rlref/site.py): built once per session, offline, then read.

The site must load nothing from outside itself (no CDN script, style, font or image), show every
figure of every notebook, and have no broken internal link; each checker below is also run on a
copy of the site with a planted fault, to show that it notices. Without requirements-site.txt the
build tests skip; the one-line error for that case is tested either way.
"""
import base64
import hashlib
import json
import os
import resource
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest

from rlref.errors import MissingDependencyError
from rlref.homework.make import project_root
from rlref.site import check_out, package_modules, require_extra
from rlref.tagindex import gather

ROOT = project_root()
NOTEBOOKS = sorted(n[:-6] for n in os.listdir(os.path.join(ROOT, "notebooks")) if n.endswith(".ipynb"))
LOADS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "video": "src", "audio": "src",
         "embed": "src", "object": "data", "link": "href", "track": "src", "input": "src"}
EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)     # http://, https://, //host, ftp://
CSS_URL = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")]+)""", re.I)


def offline(cmd):
    """cmd in a network namespace of its own (no route anywhere) when unshare can make one, else
    with every proxy pointed at a closed local port."""
    try:
        if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
            return ["unshare", "-n"] + cmd, dict(os.environ)
    except FileNotFoundError:
        pass
    dead = "http://127.0.0.1:9"
    return cmd, {**os.environ, "http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead,
                 "HTTPS_PROXY": dead, "ALL_PROXY": dead, "no_proxy": "", "NO_PROXY": ""}


def git_status():
    done = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(folder, CPU seconds, stdout, git status before, after) of one `python -m rlref site` build.
    The build's cost is its CPU time (user + system, the build and its children): on a machine that
    is busy with other work its wall time says more about the machine than about the build."""
    try:
        require_extra()
    except MissingDependencyError as err:
        pytest.skip(str(err))
    out = str(tmp_path_factory.mktemp("site") / "html")
    cmd, env = offline([sys.executable, "-m", "rlref", "site", "--out", out])
    before = git_status()
    start = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tmp_path_factory.getbasetemp()))
    end = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, seconds, done.stdout + done.stderr, before, git_status()


class Page(HTMLParser):
    """The ids, the links (tag, attribute, value) and the inline styles of one HTML page."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.styles, self._in_style = set(), [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update(v for k, v in attrs.items() if k in ("id", "name") and v)
        self.links += [(tag, k, v) for k, v in attrs.items() if k in ("href", "src", "data") and v is not None]
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag):
        self._in_style = False


def pages(folder, only=None):
    """Every HTML and CSS file of the site, or only those named (paths relative to the site)."""
    if only is not None:
        yield from (os.path.join(folder, page) for page in only)
        return
    for d, _, names in os.walk(folder):
        for name in sorted(names):
            if name.endswith((".html", ".css")):
                yield os.path.join(d, name)


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def external_loads(folder, only=None):
    """["page: what"] for every script, stylesheet, image, font, frame or CSS url/@import of the
    site (or of the pages `only` names) that points outside it."""
    found = []
    for path in pages(folder, only):
        rel, text = os.path.relpath(path, folder), read(path)
        if path.endswith(".css"):
            styles, links = [text], []
        else:
            page = Page(text)
            styles, links = page.styles, [(t, a, v) for t, a, v in page.links if LOADS.get(t) == a]
        found += [f"{rel}: <{t} {a}={v}>" for t, a, v in links if EXTERNAL.match(v)]
        found += [f"{rel}: url {u}" for style in styles for m in CSS_URL.finditer(style)
                  for u in m.groups() if u and EXTERNAL.match(u)]
    return found


def broken_links(folder, only=None):
    """["page: link"] for every internal href/src (of the site, or of the pages `only` names) whose
    file, or #anchor in it, does not exist."""
    ids, broken = {}, []
    for path in pages(folder, only):
        if not path.endswith(".html"):
            continue
        page = ids[path] = ids.get(path) or Page(read(path))
        for _, _, value in page.links:
            parts = urlsplit(value)
            if parts.scheme or parts.netloc or value.startswith(("mailto:", "data:", "javascript:")):
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(path), unquote(parts.path))) if parts.path else path
            if not os.path.exists(target):
                broken.append(f"{os.path.relpath(path, folder)}: {value}")
            elif parts.fragment and target.endswith(".html"):
                if target not in ids:
                    ids[target] = Page(read(target))
                if unquote(parts.fragment) not in ids[target].ids:
                    broken.append(f"{os.path.relpath(path, folder)}: {value} (no such anchor)")
    return broken


def notebook_images(path):
    """sha256 of every image output of a stored notebook, the kind a page shows of each output."""
    with open(path, encoding="utf-8") as f:
        notebook = json.load(f)
    found = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            kind = next((k for k in ("image/svg+xml", "image/png", "image/jpeg", "image/gif") if k in data), None)
            if kind:
                payload = data[kind] if isinstance(data[kind], str) else "".join(data[kind])
                raw = payload.encode() if kind == "image/svg+xml" else base64.b64decode(payload)
                found.append(hashlib.sha256(raw).hexdigest())
    return found


def missing_figures(folder, names=NOTEBOOKS):
    """["notebook: n figures not in its page"]: each image output's bytes must be an <img> of its page."""
    missing = []
    for name in names:
        page_path = os.path.join(folder, "notebooks", name + ".html")
        shown = []
        for tag, attr, value in Page(read(page_path)).links if os.path.exists(page_path) else []:
            target = os.path.join(os.path.dirname(page_path), unquote(value))
            if tag == "img" and attr == "src" and os.path.isfile(target):
                with open(target, "rb") as f:
                    shown.append(hashlib.sha256(f.read()).hexdigest())
        lost = list(notebook_images(os.path.join(ROOT, "notebooks", name + ".ipynb")))
        for digest in shown:
            if digest in lost:
                lost.remove(digest)
        if lost:
            missing.append(f"{name}: {len(lost)} figure(s) not in its page")
    return missing


def test_builds_offline_in_under_a_minute_without_warnings(site):
    out, seconds, log, _, _ = site
    assert seconds < 60, f"the site took {seconds:.0f} CPU-seconds to build"
    assert "0 warning(s)" in log and "WARNING" not in log, log[-3000:]
    assert os.path.isfile(os.path.join(out, "index.html"))


def test_the_build_leaves_the_repository_as_it_was(site):
    _, _, _, before, after = site
    assert before == after


def test_no_page_loads_anything_from_outside_the_site(site):
    assert external_loads(site[0]) == []


def test_every_figure_of_every_notebook_is_in_its_page(site):
    assert missing_figures(site[0]) == []
    assert sum(len(notebook_images(os.path.join(ROOT, "notebooks", n + ".ipynb"))) for n in NOTEBOOKS) > 0


def test_every_internal_link_resolves(site):
    assert broken_links(site[0]) == []


def test_the_pages_the_course_promises_are_there(site):
    out = site[0]
    expected = ["index.html", "tags.html", "docs/notation.html", "README.html", "notebooks/README.html",
                ".nojekyll"]                              # GitHub Pages serves _static/ only with it
    expected += [f"notebooks/{n}.html" for n in NOTEBOOKS] + [f"api/{m}.html" for m in package_modules(ROOT)]
    expected += [f"docs/{n[:-3]}.html" for n in os.listdir(os.path.join(ROOT, "docs")) if n.endswith(".md")]
    assert [p for p in expected if not os.path.isfile(os.path.join(out, p))] == []
    start = read(os.path.join(out, "index.html"))
    assert all(f'href="notebooks/{n}.html"' in start for n in NOTEBOOKS)
    # a link to a module goes to its API page; one to a folder keeps its text (the site has no folders)
    assert 'href="api/rlref.algos.ppo.html#module-rlref.algos.ppo"' in start
    assert ">rlref/</span></code></span> (one file" in start and not re.search(r'href="[^"]*rlref/"', start)


def test_every_tag_links_to_its_equation_and_tagged_math_is_not_split(site):
    out = site[0]
    tags = read(os.path.join(out, "tags.html"))
    for row in gather(ROOT):
        assert f"<strong>{row['tag']}</strong>" in tags
        for name, _ in row["notebooks"]:
            assert re.search(rf'href="notebooks/{name[:-6]}.html#eq-{re.escape(row["tag"].lower().replace(".", "-"))}"', tags), row["tag"]
    split = re.compile(r"\\begin\{split\}(?:(?!\\end\{split\}).)*\\tag\{(.*?)\}", re.S)
    for name in NOTEBOOKS:           # MathJax refuses \tag inside split, where Sphinx puts multi-line math
        found = split.findall(read(os.path.join(out, "notebooks", name + ".html")))
        assert found == [], f"{name}: tagged equations wrapped in split: {found}"


def planted(site, tmp_path, page, old, new):
    """A copy of the site (hard links, quick) whose `page` has `old` replaced by `new` (once). The
    tests below scan only the planted page: the clean site's tests above scan every page with the
    same functions, and scanning all of them again for each planted fault cost a minute of CI."""
    copy = str(tmp_path / "copy")
    shutil.copytree(site[0], copy, copy_function=os.link)
    path = os.path.join(copy, page)
    text = read(path)
    assert old in text, f"{old!r} is not in {page}"
    os.remove(path)                                  # a new file: the built site keeps its own
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))
    return copy


@pytest.mark.parametrize("page, old, new", [
    ("notebooks/05_ppo.html", "</head>", '<script src="https://cdn.example.org/mathjax.js"></script></head>'),
    ("index.html", "</head>", '<link rel="stylesheet" href="//fonts.example.org/css?family=Lato"></head>'),
    ("_static/basic.css", "/*", '@import url("https://fonts.example.org/css");\n/*'),
    ("_static/basic.css", "/*", 'body { background: url(https://img.example.org/a.png) }\n/*'),
])
def test_a_planted_external_load_is_found(site, tmp_path, page, old, new):
    assert external_loads(planted(site, tmp_path, page, old, new), only=[page]) != []


def test_a_planted_missing_figure_is_found(site, tmp_path):
    text = read(os.path.join(site[0], "notebooks/05_ppo.html"))
    img = re.search(r'<img[^>]*src="\.\./_images/[^"]+"[^>]*>', text).group(0)
    assert missing_figures(planted(site, tmp_path, "notebooks/05_ppo.html", img, ""), names=["05_ppo"]) == \
        ["05_ppo: 1 figure(s) not in its page"]


@pytest.mark.parametrize("new", ['href="no_such_page.html"', 'href="notebooks/04_trpo.html#no-such-anchor"'])
def test_a_planted_broken_link_is_found(site, tmp_path, new):
    assert broken_links(planted(site, tmp_path, "index.html", 'href="tags.html"', new), only=["index.html"]) != []


def test_math_renders_in_a_browser_without_network(site):
    """Only where Chromium is installed (apt-get install chromium): MathJax typesets a notebook
    page offline, with no error."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no chromium to open the site with")
    page = os.path.join(site[0], "notebooks", "04_trpo.html")
    cmd, env = offline([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        "--virtual-time-budget=20000", "--dump-dom", "file://" + page])
    dom = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120).stdout
    assert dom.count("<mjx-container") > 50
    assert "<mjx-merror" not in dom and "data-mjx-error" not in dom


def test_a_missing_extra_is_one_line_naming_the_requirements_file(tmp_path):
    code = ("import sys; sys.modules['myst_nb'] = None; from rlref.cli import main; "
            f"sys.exit(main(['site', '--out', {str(tmp_path / 'out')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: MissingDependencyError: the course site needs myst-nb, which is "
                                   "not installed: pip install -r requirements-site.txt")
    assert not (tmp_path / "out").exists()


def test_out_must_be_new_empty_or_a_site(tmp_path):
    from rlref.errors import SiteError
    (tmp_path / "file").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    for bad in ("file", "notes"):
        with pytest.raises(SiteError, match="--out"):
            check_out(str(tmp_path / bad))
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / ".buildinfo").write_text("")
    (tmp_path / "empty").mkdir()
    for good in ("old", "empty", "new"):
        check_out(str(tmp_path / good))


def test_the_hidden_tests_are_not_published(site):
    """The site is public: like a student version, it holds no instructor-only file (tests/hidden/ computes
    exercise answers by their formulas), not even by name on the tag page."""
    folder = site[0]
    leaked = [os.path.relpath(p, folder) for p in pages(folder) if re.search(r"test_hidden_[a-z]", read(p))]
    leaked += [os.path.relpath(os.path.join(d, n), folder) for d, _, names in os.walk(folder) for n in names
               if "hidden" in os.path.relpath(os.path.join(d, n), folder).split(os.sep)]
    assert not leaked, leaked
