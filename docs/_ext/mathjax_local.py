"""An MkDocs hook: serve MathJax from the built site itself, so math renders offline.

MathJax 3 is installed from the npm registry at docs-build time (``npm ci`` in
the repository root reads ``package.json`` and ``package-lock.json`` and puts it
in ``node_modules/mathjax``); nothing of it is committed. This hook adds the
parts the pages use to the site under ``js/mathjax/``: the combined
``tex-mml-chtml.js`` component, its web fonts, and the components it loads on
demand (TeX extensions, the menu and accessibility tools). A reader's browser
then fetches everything from the site, with no CDN and no network.

The build fails with the command to run when MathJax is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

# Relative to node_modules/mathjax/es5: the entry point and what it may load at run time.
PARTS = (
    "tex-mml-chtml.js",
    "output/chtml/fonts/woff-v2",
    "input/tex/extensions",
    "ui",
    "a11y",
    "sre",
)
SITE_DIR = "js/mathjax"
MAJOR = 3


def _es5_dir(config: MkDocsConfig) -> Path:
    root = Path(config.config_file_path).resolve().parent
    package = root / "node_modules" / "mathjax"
    if not (package / "es5" / PARTS[0]).is_file():
        raise PluginError(
            f"MathJax is not installed in {package}; run `npm ci` in {root} "
            "(it installs the MathJax version pinned in package-lock.json from the npm registry)"
        )
    version = json.loads((package / "package.json").read_text())["version"]
    if int(version.split(".")[0]) != MAJOR:
        raise PluginError(f"MathJax {version} in {package}; the site needs {MAJOR}.x: run npm ci")
    return package / "es5"


def on_files(files: Files, *, config: MkDocsConfig, **kwargs: Any) -> Files:
    """Add MathJax's files to the site, as if they were in docs/js/mathjax/."""
    es5 = _es5_dir(config)
    for part in PARTS:
        source = es5 / part
        paths = [source] if source.is_file() else sorted(filter(Path.is_file, source.rglob("*")))
        for path in paths:
            uri = f"{SITE_DIR}/{path.relative_to(es5).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
