"""The study files shown in the README and the user guide are valid study files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rcl_study.config.schema import parse_study

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/guide.md"]


def _study_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            if re.search(r"^name:", block, re.M):
                blocks.append((f"{page}#{i}", block))
    return blocks


def test_the_pages_show_study_files():
    assert {name.split("#")[0] for name, _ in _study_blocks()} == set(PAGES)


@pytest.mark.parametrize("where, block", _study_blocks(), ids=[n for n, _ in _study_blocks()])
def test_a_study_file_shown_in_the_docs_validates(where, block):
    parse_study(yaml.safe_load(block), where)
