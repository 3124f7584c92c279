"""tools/render_doc_figures.py: which PDFs become which PNGs, the rendering, the provenance."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("render", REPO / "tools" / "render_doc_figures.py")
render = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render)


def pdf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path, format="pdf")
    plt.close(fig)
    return path


def test_the_heatmap_and_the_first_model_s_and_chat_model_s_figures_are_chosen(tmp_path):
    pdf(tmp_path / "results/overlap_heatmap.pdf")
    pdf(tmp_path / "results/plots/gemma/lape_layers.pdf")
    pdf(tmp_path / "results/plots/other/lape_layers.pdf")  # a second model: not shown
    pdf(tmp_path / "results/plots/chat/refusal.pdf")
    config = {"models": {"gemma": {}, "other": {}}, "chat_models": {"chat": {}}}
    sources = render.figure_sources(tmp_path, config)
    assert {name: p.relative_to(tmp_path).as_posix() for name, p in sources.items()} == {
        "overlap_heatmap.png": "results/overlap_heatmap.pdf",
        "lape_layers.png": "results/plots/gemma/lape_layers.pdf",
        "refusal.png": "results/plots/chat/refusal.pdf",
    }


def test_a_missing_figure_stops_it_naming_the_pdf(tmp_path):
    sources = render.figure_sources(tmp_path, {"models": {"gemma": {}}})
    with pytest.raises(SystemExit, match=r"overlap_heatmap\.pdf"):
        render.check_exist(sources)
    render.check_exist({})  # only the figures asked for need to exist


def test_page_one_is_drawn_at_the_asked_resolution_and_the_source_is_recorded(tmp_path):
    source = pdf(tmp_path / "results/overlap_heatmap.pdf")  # 2 × 1 inches
    size = render.render_png(source, tmp_path / "img/overlap_heatmap.png", dpi=100)
    assert size == (200, 100)
    with Image.open(tmp_path / "img/overlap_heatmap.png") as image:
        assert image.format == "PNG" and image.size == (200, 100)
        assert image.getpixel((2, 2)) == (255, 255, 255)  # white, not transparent
    config = tmp_path / "config.yaml"
    config.write_text("languages: [en, de]\n")
    sources = render.record({}, "abc123", config, tmp_path, {"overlap_heatmap.png": (source, size)})
    old = {"commit": "old", "config": "x", "config_sha256": "0" * 64, "pdf": "p.pdf",
           "pixels": [1, 1], "rendered": "2026-01-01"}  # fmt: skip
    sources = render.record({"lape_layers.png": old, **sources}, "abc123", config, tmp_path, {})
    note = render.source_note(sources)
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    assert sources["overlap_heatmap.png"]["config_sha256"] == digest
    assert sources["overlap_heatmap.png"]["config"] == "a custom config"
    assert f"| `overlap_heatmap.png` | `abc123` | a custom config (`{digest[:12]}`) " in note
    assert "| `results/overlap_heatmap.pdf` | 200 × 100 |" in note
    assert "| `lape_layers.png` | `old` |" in note  # another run's image keeps its record


def test_the_repository_s_own_configs_are_named():
    assert render.config_label(REPO / "config.yaml") == "`config.yaml`"
    assert (
        render.config_label(REPO / ".test/embedded/config.yaml") == "`.test/embedded/config.yaml`"
    )
