"""The documentation site builds with warnings as errors (`mkdocs build --strict`), and what it generates
from the code is complete: every CLI subcommand, every config key, the API reference, every figure."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAVE_MKDOCS = all(importlib.util.find_spec(m) is not None for m in ("mkdocs", "material", "mkdocstrings_handlers"))
needs_mkdocs = pytest.mark.skipif(not HAVE_MKDOCS, reason="mkdocs, mkdocs-material or mkdocstrings is not "
                                  "installed: pip install -e '.[docs]' (the test extra includes it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return out


def _text(html: Path) -> str:
    return html.read_text(encoding="utf-8")


@needs_mkdocs
def test_cli_reference_has_every_subcommand(site):
    from trustmarl.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    page = _text(site / "reference" / "cli.html")
    for name, parser in sub.choices.items():
        assert f"trustmarl {name}" in page, name
        for action in parser._actions:  # every option of every subcommand
            for flag in action.option_strings:
                assert flag in page, (name, flag)


@needs_mkdocs
def test_config_reference_has_every_key(site):
    from trustmarl.config import Config
    page = _text(site / "reference" / "config.html")
    for f in fields(Config):
        assert f"<code>{f.name}</code>" in page, f.name


@needs_mkdocs
def test_api_reference_from_docstrings(site):
    page = _text(site / "reference" / "api.html")
    for name in ("make_train", "register_env", "Config", "plot_curves", "make_table", "iqm", "parse_spec",
                 "find_runs", "train"):
        assert f'id="trustmarl.' in page and re.search(rf"\b{re.escape(name)}\b", page), name
    # docstring text, not just names
    assert "interquartile mean" in page


@needs_mkdocs
def test_every_figure_is_on_a_page(site):
    figures = sorted(p.name for p in (ROOT / "docs" / "figures").glob("*.png"))
    assert figures
    pages = "".join(_text(p) for p in site.rglob("*.html"))
    for name in figures:
        assert (site / "figures" / name).is_file(), name
        assert f"figures/{name}" in pages, f"docs/figures/{name} is on no page of the site"
    from trustmarl.analysis.reproduce import EXPERIMENTS
    repro = re.sub(r"<[^>]+>", "", _text(site / "reproductions.html"))  # code blocks are split into spans
    for name in EXPERIMENTS:
        assert f"trustmarl reproduce {name}" in repro, name


@needs_mkdocs
def test_generated_sections_are_all_replaced(site):
    for html in site.rglob("*.html"):
        assert "<!-- gen:" not in _text(html), html


def test_readme_links_the_docs_and_gives_the_build_command():
    readme = (ROOT / "README.md").read_text()
    assert "## Documentation" in readme and readme.index("## Documentation") < readme.index("## Layout")
    section = readme[readme.index("## Documentation"):readme.index("## Layout")]
    assert "pip install -e '.[docs]' && mkdocs build --strict" in section
    assert "docs/index.md" in section

