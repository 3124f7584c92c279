"""The documentation a newcomer reads: a short README whose links and figures all exist, method
pages for every method, and figures whose provenance is recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
METHODS = [
    "language-neurons",
    "overlap-and-bridges",
    "values",
    "tasks",
    "relations",
    "refusal",
    "logit-lens",
    "xtransplant",
    "interventions",
]


def links(page: Path) -> list[str]:
    """The relative targets of a page's Markdown links and images (code blocks skipped)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:|^#", t)]


def test_the_readme_is_short():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_image_exists(page):
    missing = [t for t in links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def test_the_link_finder_sees_links_and_images_but_not_urls_or_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [a](a.md#x), ![fig](img/f.png) and [web](https://x.org), [top](#top).\n"
        "```bash\n[not](code.md)\n```\n"
    )
    assert links(page) == ["a.md#x", "img/f.png"]


def test_every_method_has_a_page_linked_from_the_readme_and_the_index():
    readme = (REPO / "README.md").read_text()
    index = (REPO / "docs/methods/README.md").read_text()
    for name in METHODS:
        assert (REPO / f"docs/methods/{name}.md").exists(), name
        assert f"docs/methods/{name}.md" in readme, name
        assert f"({name}.md)" in index, name


def test_every_method_page_shows_a_figure_and_names_its_reference():
    for name in METHODS:
        text = (REPO / f"docs/methods/{name}.md").read_text()
        assert re.search(r"!\[[^\]]+\]\(\.\./img/\w+\.png\)", text), f"{name}.md: no figure"
        assert re.search(r"(?i)deviation", text), f"{name}.md: no deviations section"


def test_every_rendered_figure_has_its_provenance():
    images = sorted(p.name for p in (REPO / "docs/img").glob("*.png"))
    assert images, "no figures rendered into docs/img/"
    source = (REPO / "docs/img/SOURCE.md").read_text()
    listed = re.findall(r"^\| `(\w+\.png)` \| `[0-9a-f]{40}` \|", source, flags=re.MULTILINE)
    assert sorted(listed) == images
    ledger = json.loads((REPO / "docs/img/sources.json").read_text())
    assert sorted(ledger) == images
    for name, row in ledger.items():
        assert re.fullmatch(r"[0-9a-f]{64}", row["config_sha256"]), name
