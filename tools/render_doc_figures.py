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
``chat_models:``, every PDF in ``results/plots/{model}/`` under its own name (``--only``: some of
them; ``--target``: what Snakemake builds first, default ``figures``). ``docs/img/sources.json``
and ``docs/img/SOURCE.md`` record, per image, the commit, which config ran (the repository's
default, a ``.test`` config, or a custom one) with its SHA-256, and which PDF it is; images
rendered from different runs keep their own records. For HEAD, uncommitted
changes under ``workflow/``, ``Snakefile`` or the config stop it: the recorded commit must be
what ran.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
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
    return sources


def check_exist(sources: dict[str, Path]) -> None:
    """Stop, naming them, when figure PDFs to render are missing."""
    missing = [str(pdf) for pdf in sources.values() if not pdf.exists()]
    if missing:
        raise SystemExit(f"figures missing after the run: {', '.join(missing)}")


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


def config_label(config: Path) -> str:
    """Which of this repository's configs the run's config is (by content), or "a custom
    config"."""
    data = config.read_bytes()
    for known in [REPO / "config.yaml", *sorted(REPO.glob(".test/*/config.yaml"))]:
        if known.read_bytes() == data:
            return f"`{known.relative_to(REPO)}`"
    return "a custom config"


def record(sources: dict, commit: str, config: Path, directory: Path, rendered: dict) -> dict:
    """``sources`` (image -> provenance, as in docs/img/sources.json) with the ``rendered``
    images (name -> (pdf, (width, height))) of this run added or replaced."""
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    label = config_label(config)
    for name, (pdf, (width, height)) in rendered.items():
        sources[name] = {
            "commit": commit,
            "config": label,
            "config_sha256": digest,
            "pdf": str(pdf.relative_to(directory)),
            "pixels": [width, height],
            "rendered": datetime.date.today().isoformat(),
        }
    return dict(sorted(sources.items()))


def source_note(sources: dict) -> str:
    """docs/img/SOURCE.md: where every PNG came from (from docs/img/sources.json)."""
    lines = [
        "# Where these figures come from",
        "",
        "Rendered by `python tools/render_doc_figures.py` from the workflow's own figure PDFs "
        "(page 1 of each), after Snakemake had brought the run up to date with the commit's "
        "code (the rules' code hashes rerun whatever that commit computes differently). Do not "
        "edit by hand; rerun the tool (`docs/img/sources.json` holds the same records).",
        "",
        "| image | commit | config of the run (SHA-256) | figure PDF in the run | pixels |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in sources.items():
        width, height = row["pixels"]
        lines.append(
            f"| `{name}` | `{row['commit']}` | {row['config']} (`{row['config_sha256'][:12]}`) "
            f"| `{row['pdf']}` | {width} × {height} |"
        )
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
    parser.add_argument("--only", nargs="+", help="render only these images (e.g. lape_layers.png)")
    parser.add_argument("--target", nargs="+", default=["figures"], help="what Snakemake builds")
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="render the PDFs as they are, for a run known to be complete at --commit",
    )
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
            run += ["--directory", str(directory), "--cores", str(args.cores), *args.target]
            # the rules' code hashes are params; Snakemake's own code trigger would also see
            # another checkout's script paths as changed code
            run += ["--rerun-triggers", "mtime", "params", "input", "software-env"]
            if not args.no_run:
                subprocess.run(run, check=True)
        finally:
            if checkout != REPO:
                git("worktree", "remove", "--force", str(checkout))
    sources = figure_sources(directory, yaml.safe_load(config.read_text()))
    if args.only:
        unknown = sorted(set(args.only) - set(sources))
        if unknown:
            raise SystemExit(f"no such figure in the run: {', '.join(unknown)}")
        sources = {name: sources[name] for name in args.only}
    check_exist(sources)
    rendered = {}
    for name, pdf in sources.items():
        rendered[name] = (pdf, render_png(pdf, args.out / name, args.dpi))
        print(f"{args.out / name}: {rendered[name][1][0]} × {rendered[name][1][1]} from {pdf}")
    ledger = args.out / "sources.json"
    known = json.loads(ledger.read_text()) if ledger.exists() else {}
    known = record(known, commit, config, directory, rendered)
    ledger.write_text(json.dumps(known, indent=1, ensure_ascii=False) + "\n")
    (args.out / "SOURCE.md").write_text(source_note(known))


if __name__ == "__main__":
    main()
