"""Render the figures shown in the README and on docs/methods/ as PNGs, from the workflow's own
outputs, with the commit and config they came from.

    python tools/render_doc_figures.py --directory /path/to/run [--commit C] [--cores 2]

First brings the ``figures`` target of that working folder (its ``config.yaml``; default: this
checkout, whose config is the embedded default) up to date with the code of commit ``C``
(default: HEAD; another commit is checked out into a temporary git worktree and its Snakefile
runs) — the rules' code hashes make Snakemake rerun whatever that commit computes differently,
and nothing when the folder is already current — then draws page 1 of each figure PDF into
``docs/img/``:
``overlap_heatmap.png`` and, for the first model under ``models:`` and the first under
``chat_models:``, every PDF in ``results/plots/{model}/`` under its own name. ``docs/img/SOURCE.md``
records the commit, the config's SHA-256 and which PDF each PNG is. For HEAD, uncommitted
changes under ``workflow/``, ``Snakefile`` or the config stop it: the recorded commit must be
what ran.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"


def figure_sources(directory: Path, config: dict) -> dict[str, Path]:
    """PNG name -> the figure PDF of ``directory`` it renders: the heatmap across models, then
    every figure of the first model and of the first chat model."""
    sources = {"overlap_heatmap.png": directory / "results" / "overlap_heatmap.pdf"}
    for section in ("models", "chat_models"):
        names = list(config.get(section) or {})
        if not names:
            continue
        plots = directory / "results" / "plots" / names[0]
        for pdf in sorted(plots.glob("*.pdf")):
            sources.setdefault(f"{pdf.stem}.png", pdf)
    missing = [str(pdf) for pdf in sources.values() if not pdf.exists()]
    if missing:
        raise SystemExit(f"figures missing after the run: {', '.join(missing)}")
    return sources


def render_png(pdf: Path, png: Path, dpi: int) -> tuple[int, int]:
    """Draw page 1 of ``pdf`` into ``png`` at ``dpi`` on white; return its size in pixels."""
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        image = document[0].render(scale=dpi / 72, fill_color=(255, 255, 255, 255)).to_pil()
    finally:
        document.close()
    png.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(png, format="PNG", optimize=True)
    return image.size


def source_note(
    commit: str, config: Path, directory: Path, rendered: dict[str, tuple[Path, tuple[int, int]]]
) -> str:
    """docs/img/SOURCE.md: where every PNG came from."""
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    lines = [
        "# Where these figures come from",
        "",
        "Rendered by `python tools/render_doc_figures.py` from the workflow's own figure PDFs "
        "(page 1 of each), after `snakemake figures` had brought the run up to date with this "
        "commit's code. Do not edit by hand; rerun the tool.",
        "",
        f"- commit: `{commit}`",
        f"- config: `{config.name}` of the run, SHA-256 `{digest}`",
        f"- rendered: {datetime.date.today().isoformat()}",
        "",
        "| image | figure PDF (relative to the run's folder) | pixels |",
        "| --- | --- | --- |",
    ]
    for name, (pdf, (width, height)) in sorted(rendered.items()):
        lines.append(f"| `{name}` | `{pdf.relative_to(directory)}` | {width} × {height} |")
    return "\n".join(lines) + "\n"


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", type=Path, default=REPO, help="the run's working folder")
    parser.add_argument("--commit", default="HEAD", help="the code that brings the run up to date")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--dpi", type=int, default=110)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    directory = args.directory.resolve()
    config = directory / "config.yaml"
    if not config.exists():
        raise SystemExit(f"{config}: no config.yaml in the run's folder")
    commit = git("rev-parse", args.commit)
    with tempfile.TemporaryDirectory() as scratch:
        checkout = REPO
        if commit != git("rev-parse", "HEAD"):
            checkout = Path(scratch) / "checkout"
            git("worktree", "add", "--detach", str(checkout), commit)
        else:
            dirty = git("status", "--porcelain", "--", "workflow", "Snakefile", "config.yaml")
            if dirty:
                raise SystemExit(f"uncommitted changes; commit them first:\n{dirty}")
        try:
            run = [sys.executable, "-m", "snakemake", "--snakefile", str(checkout / "Snakefile")]
            run += ["--directory", str(directory), "--cores", str(args.cores), "figures"]
            subprocess.run(run, check=True)
        finally:
            if checkout != REPO:
                git("worktree", "remove", "--force", str(checkout))
    sources = figure_sources(directory, yaml.safe_load(config.read_text()))
    rendered = {}
    for name, pdf in sources.items():
        rendered[name] = (pdf, render_png(pdf, args.out / name, args.dpi))
        print(f"{args.out / name}: {rendered[name][1][0]} × {rendered[name][1][1]} from {pdf}")
    (args.out / "SOURCE.md").write_text(source_note(commit, config, directory, rendered))


if __name__ == "__main__":
    main()
