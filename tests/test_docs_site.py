"""The documentation site: a broken link or anchor fails the strict build, and the built
site works offline (MathJax served by the site itself, pages browsable from disk).

These need the docs extra (``pip install -e ".[docs]"``) and, for the real site, MathJax
(``npm ci``); without them they are skipped, unless ``FNN_DOCS_REQUIRED=1`` (set by
``.ci/run``'s docs step), which turns a skip into a failure.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("FNN_DOCS_REQUIRED") == "1":
            pytest.fail(f"FNN_DOCS_REQUIRED=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def mkdocs_yaml():
    """Our mkdocs.yml, parsed (needs the docs extra)."""
    try:
        import mkdocs  # noqa: F401
        import yaml
    except ImportError:
        _need(False, 'mkdocs is not installed (pip install -e ".[docs]")')
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # ignore !!python tags
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=loader)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=300, env=env, check=False)


def _tiny_site(tmp_path: Path, settings: dict, link: str) -> subprocess.CompletedProcess:
    """A two-page site with our strict/validation settings, page one linking to ``link``."""
    import yaml

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(f"# Home\n\nSee [the other page]({link}).\n")
    (docs / "other.md").write_text("# Other\n\n## 5. Why arrays are read-only\n\nBecause.\n")
    config = {"site_name": "t", "docs_dir": "docs", "nav": ["index.md", "other.md"],
              **{k: settings[k] for k in ("strict", "validation", "use_directory_urls")}}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    return _build(tmp_path / "mkdocs.yml", tmp_path / "site")


@pytest.mark.parametrize(("link", "complaint"), [
    ("other.md#why-arrays-are-read-only", r"does not contain an anchor '#why-arrays-are-read-only'"),
    ("missing.md", r"contains a link 'missing\.md', but the target is not found"),
    ("other.md#5-why-arrays-are-read-only", None),
])
def test_strict_build_fails_on_a_broken_link_or_anchor(tmp_path, mkdocs_yaml, link, complaint):
    """With mkdocs.yml's strict and validation settings, a link to a missing anchor or page
    fails the build and names it; a good link builds."""
    run = _tiny_site(tmp_path, mkdocs_yaml, link)
    if complaint is None:
        assert run.returncode == 0, run.stderr
    else:
        assert run.returncode != 0, "the strict build passed a broken link"
        assert re.search(complaint, run.stderr), run.stderr


def test_built_site_works_offline(tmp_path, mkdocs_yaml):
    """The real site builds strictly; every page loads MathJax from the site (no CDN, no
    absolute URL in a script), its fonts are there, and links point at .html files."""
    _need((ROOT / "node_modules" / "mathjax" / "es5" / "tex-mml-chtml.js").is_file(),
          "MathJax is not installed (npm ci)")
    site = tmp_path / "site"
    run = _build(ROOT / "mkdocs.yml", site)
    assert run.returncode == 0, run.stderr
    assert (site / "js" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert list((site / "js" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        html = page.read_text()
        scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', html)
        remote = [s for s in scripts if re.match(r"(https?:)?//", s)]
        assert not remote, f"{page.relative_to(site)} loads {remote}"
    dense = (site / "math" / "dense.html").read_text()
    assert 'src="../js/mathjax/tex-mml-chtml.js"' in dense and 'class="arithmatex"' in dense
    index = (site / "index.html").read_text()
    assert 'href="getting-started.html"' in index, "use_directory_urls must be false"
