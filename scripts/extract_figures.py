"""Copy the figures of the stored notebooks into figures/, for README and the docs.

A code cell that draws a figure names the file on a comment line of its own,

    # figure: 02_variance.png

and its first image/png output is written to figures/02_variance.png (a cell naming several
files takes its image outputs in order). Nothing is executed: the images are the ones stored in
the notebooks, so run this after re-executing them (see notebooks/README.md):

    python scripts/extract_figures.py            # write every tagged figure
    python scripts/extract_figures.py --check    # exit 1 if a tagged figure is missing or differs

The notebooks never write into figures/ themselves; the test suite never runs this script.
"""
import argparse
import base64
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TAG = re.compile(r"^#\s*figure:\s*(\S+\.png)\s*$", re.MULTILINE)


def tagged_images(notebook):
    """(file name, png bytes) for every tagged figure of one notebook; raises if one has no image."""
    cells = json.loads(notebook.read_text())["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        names = TAG.findall("".join(cell["source"]))
        pngs = [out["data"]["image/png"] for out in cell.get("outputs", [])
                if "image/png" in out.get("data", {})]
        if len(pngs) < len(names):
            raise SystemExit(f"{notebook.name} cell {index}: tags {names} but only {len(pngs)} stored "
                             f"image(s); execute the notebook first")
        for name, png in zip(names, pngs):
            yield name, base64.b64decode(png if isinstance(png, str) else "".join(png))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; write nothing")
    parser.add_argument("--out", default=str(ROOT / "figures"), help="target folder (default figures/)")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    stale, seen = [], set()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for name, png in tagged_images(notebook):
            if name in seen:
                raise SystemExit(f"figure name {name} is used twice")
            seen.add(name)
            target = out / name
            if target.is_file() and target.read_bytes() == png:
                continue
            stale.append(name)
            if not args.check:
                out.mkdir(parents=True, exist_ok=True)
                target.write_bytes(png)
    verb = "differ from the notebooks" if args.check else "written"
    print(f"{len(seen)} tagged figures; {len(stale)} {verb}: {', '.join(stale) or '-'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
