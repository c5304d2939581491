"""The course as an offline website: ``python -m rlref site --out DIR``.

DIR becomes a folder of static HTML that any web server (or a browser opening index.html) shows,
with no network: a start page; every notebook of notebooks/ rendered from its STORED outputs (never
re-executed); the notation page and every other markdown page of docs/; README.md; one API page
per module of rlref/ from its docstrings; the page of equation tags (rlref/tagindex.py: where each
tag is derived, computed, assigned as homework and tested) and the tests it cites.

How: Sphinx with myst-nb (notebooks and markdown) and sphinx-mathjax-offline (MathJax copied into
the site instead of loaded from a CDN), from the optional requirements-site.txt. The sources are
staged in a temporary folder (copies of the repository's files plus generated pages) and built
there, so the repository is never written; the finished HTML then replaces DIR.

Docstrings are plain text with equations in ASCII, so each one is shown as preformatted text.
A displayed equation with ``\\tag{...}`` is handed to MathJax as it is written, not wrapped in the
``split`` environment Sphinx uses for multi-line math (where MathJax refuses a tag).
"""
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time

from rlref.errors import MissingDependencyError, SiteError
from rlref.homework.make import project_files, project_root
from rlref.tagindex import gather, pages_of_tests, tags_page, with_anchors

EXTRA = {"sphinx": "sphinx", "myst_nb": "myst-nb",             # importable name: package of requirements-site.txt
         "sphinx-mathjax-offline": "sphinx-mathjax-offline"}
PAGES = ["index.md", "README.md", "notebooks/*.ipynb", "notebooks/README.md", "docs/**.md",
         "api/*.rst", "tags.rst", "tests/*.rst"]               # what Sphinx reads of the staged tree
TITLE = "rlref: policy gradients in NumPy, derived and checked"


def add_parser(sub, common):
    """The `site` subcommand, for rlref.cli."""
    p = sub.add_parser("site", help="build the course as an offline HTML site (requirements-site.txt)",
                       parents=[common], description=__doc__.split("\n\n")[1])
    p.add_argument("--out", required=True, help="folder of the site: new, empty, or a site built before")
    p.set_defaults(func=cmd_site)


def cmd_site(args):
    summary = build(args.out)
    print(f"wrote {args.out}: {summary['pages']} pages ({summary['notebooks']} notebooks, {summary['api']} API "
          f"pages), {summary['bytes'] / 1e6:.1f} MB, in {summary['seconds']:.1f} s; "
          f"{len(summary['warnings'])} warning(s). Open {os.path.join(args.out, 'index.html')}")
    return 0


def require_extra(modules=EXTRA):
    """Raise MissingDependencyError naming what requirements-site.txt would install."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):                # a parent package missing, or None in sys.modules
            found = False
        if not found:
            missing.append(modules[name])
    if missing:
        raise MissingDependencyError(f"the course site needs {', '.join(missing)}, which "
                                     f"{'is' if len(missing) == 1 else 'are'} not installed: "
                                     f"pip install -r requirements-site.txt")


def check_out(out):
    """DIR may be new, empty, or a site built before (Sphinx's .buildinfo in it): never anything else."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise SiteError(f"--out {out} is a file; give a folder for the site")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, ".buildinfo")):
        raise SiteError(f"--out {out} is a folder that holds something other than a site built by "
                        f"rlref; give a new or empty folder (nothing in it is replaced)")


def build(out, root=None):
    """Stage the sources of `root` (default: this checkout), build the HTML, put it in `out`.
    Returns {"seconds", "pages", "notebooks", "api", "bytes", "warnings": [lines]}."""
    require_extra()
    check_out(out)
    from io import StringIO
    from sphinx.application import Sphinx
    from sphinx.util.console import nocolor
    nocolor()                                            # warnings as plain text
    root = os.path.abspath(root or project_root())
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rlref-site-") as tmp:
        src, html = os.path.join(tmp, "src"), os.path.join(tmp, "html")
        staged = stage(root, src)
        warnings = StringIO()
        app = Sphinx(src, src, html, os.path.join(tmp, "doctrees"), "html", status=None,
                     warning=warnings, freshenv=True)
        app.build()
        if app.statuscode:
            raise SiteError(f"Sphinx failed to build the site (status {app.statuscode}): {warnings.getvalue()}")
        if os.path.isdir(out):
            shutil.rmtree(out)
        shutil.copytree(html, out)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(out) for f in names)
    lines = [line for line in warnings.getvalue().splitlines() if "WARNING" in line or "ERROR" in line]
    for line in lines:
        print(line, file=sys.stderr)
    return {"seconds": time.perf_counter() - start, "bytes": size, "warnings": lines, **staged}


def stage(root, src):
    """Write the site's sources into the new folder `src`: the repository's files as they are (so
    that links and images between them resolve), the notebooks with an anchor at each tagged
    equation, and the generated pages. Returns page counts."""
    for rel in project_files(root)[0]:                   # what a student version ships (no hidden tests)
        if not rel.startswith((".", "build/")):
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            shutil.copy2(os.path.join(root, rel), os.path.join(src, rel))
    notebooks = sorted(n for n in os.listdir(os.path.join(src, "notebooks")) if n.endswith(".ipynb"))
    for name in notebooks:
        path = os.path.join(src, "notebooks", name)
        with open(path, encoding="utf-8") as f:
            notebook = with_anchors(json.load(f))
        with open(path, "w", encoding="utf-8") as f:
            json.dump(notebook, f)
    docs = sorted((os.path.relpath(os.path.join(d, n), src).replace(os.sep, "/")
                  for d, _, names in os.walk(os.path.join(src, "docs")) for n in names if n.endswith(".md")),
                  key=lambda rel: (rel != "docs/notation.md", rel))                # notation first
    modules, rows = package_modules(root), gather(root)
    pages = {"conf.py": CONF, "_static/custom.css": CSS, "index.md": start_page(src, notebooks, docs),
             "tags.rst": tags_page(rows),
             "api/index.rst": api_index(modules), **{f"api/{m}.rst": api_page(m) for m in modules},
             **pages_of_tests(root, rows)}
    for rel, text in pages.items():
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        with open(os.path.join(src, rel), "w", encoding="utf-8") as f:
            f.write(text)
    readmes = sum(os.path.isfile(os.path.join(src, rel)) for rel in ("README.md", "notebooks/README.md"))
    generated = sum(rel.endswith((".md", ".rst")) for rel in pages)
    return {"pages": len(notebooks) + len(docs) + generated + readmes, "notebooks": len(notebooks), "api": len(modules)}


def package_modules(root):
    """Dotted names of every module of rlref/ (packages by their own name), sorted."""
    names = []
    for folder, dirs, files in os.walk(os.path.join(root, "rlref")):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name in files:
            if name.endswith(".py") and name != "__main__.py":
                rel = os.path.relpath(os.path.join(folder, name), root)[:-3].replace(os.sep, ".")
                names.append(rel.removesuffix(".__init__"))
    return sorted(names)


def api_page(module):
    return f"{module}\n{'=' * len(module)}\n\n.. automodule:: {module}\n"


def api_index(modules):
    entries = "\n".join(f"   {m}" for m in modules)
    return (f"The code, module by module\n==========================\n\nEvery module of ``rlref/`` with "
            f"its docstrings; ``[source]`` beside a name shows its code.\n\n.. toctree::\n   :maxdepth: 1\n\n"
            f"{entries}\n")


def notebook_title(path):
    """The first markdown heading of a notebook ("04 · PPO: the clipped surrogate, ...")."""
    with open(path, encoding="utf-8") as f:
        for cell in json.load(f)["cells"]:
            found = re.search(r"^#\s+(.+)$", "".join(cell["source"]), re.M) if cell["cell_type"] == "markdown" else None
            if found:
                return found.group(1).strip()
    return os.path.basename(path)


def notebook_summaries(readme_text):
    """{"05_ppo.ipynb": "what it teaches"} from the table of notebooks/README.md."""
    return dict(re.findall(r"^\|\s*`(\d\d_\w+\.ipynb)`\s*\|\s*(.+?)\s*\|\s*$", readme_text, re.M))


def start_page(src, notebooks, docs):
    """The site's index.md: what the course is, the reading order, how to run the notebooks."""
    readme = os.path.join(src, "notebooks", "README.md")
    summaries = notebook_summaries(open(readme, encoding="utf-8").read()) if os.path.isfile(readme) else {}
    order = "\n".join(f"{i + 1}. [{notebook_title(os.path.join(src, 'notebooks', n))}](notebooks/{n})"
                      + (f": {summaries[n]}" if n in summaries else "") for i, n in enumerate(notebooks))
    pages = ["notebooks/README.md"] * os.path.isfile(readme) + docs + ["tags.rst"]
    toc = "\n".join(["```{toctree}", ":hidden:", ":caption: Notebooks", ""] + [f"notebooks/{n}" for n in notebooks]
                    + ["```", "", "```{toctree}", ":hidden:", ":caption: Reference", ""] + pages
                    + ["api/index.rst", "tests/index.rst", "The repository's README <README.md>", "```"])
    return START.format(title=TITLE, order=order, toc=toc)


START = """# {title}

rlref is a course on policy-gradient reinforcement learning in which every derivative is written by
hand in NumPy and checked against finite differences. Each notebook derives an algorithm from the
course notes, checks every step with numbers (gradient checks, exact answers on small tabular MDPs,
statistical tests with fixed seeds), and trains it on a gymnasium environment with the same code the
notebook imports from the package [`rlref/`](rlref/) (one file per algorithm, such as
[`rlref/algos/ppo.py`](rlref/algos/ppo.py)). The equations carry tags such as (PPO.2): the notebook
typesets the tag, and the line of code that computes the equation cites it
([every tag, with its code, exercise and tests](tags.rst); the symbols are on the
[notation page](docs/notation.md)).

## Reading order

{order}

These pages show each notebook as it was last executed, with its stored outputs and figures; nothing
is re-run to build them.

## Running the notebooks

From a clone of the repository (Python 3.10 or later):

```
python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1   # reproducible bits
jupyter lab notebooks/                                # start with 00
python -m pytest --nbval-lax --nbval-current-env notebooks/   # every cell and check
```

Each notebook runs top to bottom in about a minute on one CPU core and asserts its checks; the
exercises at the end of each have cells that check the answer (`python -m rlref homework list`).

{toc}
"""

CSS = """table.tags td { overflow-wrap: anywhere; font-size: 0.92em; }
div.body { min-width: 0; }
"""

CONF = '''# Generated by rlref/site.py for one build; the repository holds no Sphinx configuration.
project = "rlref"
html_title = "rlref"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.viewcode", "sphinx.ext.githubpages",  # .nojekyll
              "sphinx-mathjax-offline"]
include_patterns = {pages!r}
nb_execution_mode = "off"                  # the notebooks' stored outputs, never re-executed
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4                   # links such as notebooks/README.md#sources resolve
html_copy_source = False                   # no _sources/ copies of the notebooks
html_show_sourcelink = False
html_show_copyright = False
html_theme = "alabaster"                   # ships with Sphinx; loads no web font
html_static_path = ["_static"]             # custom.css: long names in the tags table wrap
html_theme_options = {{"description": "policy gradients in NumPy", "show_relbars": True,
                       "page_width": "min(1400px, 100%)", "body_max_width": "none"}}
nitpicky = True                            # a cross-reference that resolves nowhere is a warning,
nitpick_ignore_regex = [("py:class", r"(numpy|gymnasium)\\..*")]   # but types of other packages have no page
autodoc_default_options = {{"members": True, "undoc-members": True, "member-order": "bysource"}}
autodoc_inherit_docstrings = False         # a method without a docstring shows none, not its base's


def preformatted(app, what, name, obj, options, lines):
    """Docstrings here are plain text with ASCII equations: show them as they are written."""
    if lines:
        lines[:] = [".. code-block:: text", ""] + ["    " + line for line in lines] + [""]


def tags_whole(app, doctree):
    """Hand a tagged display equation to MathJax as written (Sphinx would wrap a multi-line one in
    split, where MathJax refuses a tag)."""
    from docutils import nodes
    for node in doctree.findall(nodes.math_block):
        text = node.astext()
        if not node.get("nowrap") and "\\\\tag" in text:
            node[:] = [nodes.Text("\\\\[" + text + "\\\\]")]
            node["nowrap"] = True


def repository_links(app, doctree):
    """A link to a module of rlref/ goes to its API page, a link to a folder of the repository keeps
    its text and loses its link (the site has no page for a folder); other files stay downloads."""
    import os
    from sphinx.addnodes import download_reference, pending_xref
    here = os.path.dirname(app.env.doc2path(app.env.docname))
    for node in list(doctree.findall(pending_xref)) + list(doctree.findall(download_reference)):
        if node.get("refdomain") not in (None, "") or not node.get("reftarget"):
            continue
        path = os.path.normpath(os.path.join(here, node["reftarget"].split("#")[0]))
        rel = os.path.relpath(path, app.srcdir).replace(os.sep, "/")
        if os.path.isdir(path) and not rel.startswith(".."):
            node.replace_self(node.children)
        elif rel.startswith("rlref/") and rel.endswith(".py") and os.path.isfile(path):
            module = rel[:-3].replace("/", ".").removesuffix(".__init__")
            node.replace_self(pending_xref("", *node.children, refdomain="py", reftype="mod",
                                           reftarget=module, refexplicit=True))


def setup(app):
    app.connect("autodoc-process-docstring", preformatted)
    app.connect("doctree-read", tags_whole)
    app.connect("doctree-read", repository_links)
'''.format(pages=PAGES)
