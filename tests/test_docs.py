"""Every ```python block in README.md and docs/**/*.md runs, as a reader would run it.

The convention (also for pages added later, which are collected automatically):

- the python blocks of one page run in order, in one namespace, as if pasted one
  after the other into one interpreter session;
- a block preceded by the line ``<!-- no-run: <reason> -->`` is skipped; use it
  only for deliberately partial snippets (a fragment of a bigger program, code
  for another library), and say why;
- a block preceded by ``<!-- slow: <reason> -->`` (a full-size training run
  whose numbers the page quotes) runs only in the slow suite (``pytest -m
  slow``), which runs the whole page; the default run skips it, so later blocks
  must not need what it defines;
- a block with a file name (```` ```python title="swish.py" ````) is also
  written to that file, which later blocks may import; the ``test_*`` functions
  of a block titled ``test_*.py`` are then called, as pytest would;
- blocks run in a fresh temporary folder (files they write go there), with
  NumPy floating-point errors and Python warnings raised as in every test.

A failure names the page and the line of the block, and the traceback shows the
page's own line numbers. Pages whose code loads Fashion-MNIST are skipped when
the data set is not installed (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import functools
import re
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>no-run|slow):(?P<reason>.*?)-->\s*$")
_PYTHON = ("python", "py", "python3")
_TITLE = re.compile(r'title="(?P<name>[\w.-]+\.py)"')


@attrs.frozen
class Block:
    """One fenced python block: where it starts (the line of its first code line) and its code."""

    page: Path
    line: int
    code: str
    skip: str | None  # the no-run reason, or None when the block runs
    title: str | None = None  # the file name of a block with title="name.py"
    slow: str | None = None  # the slow reason: runs only in the slow suite


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def parse(text: str, page: Path = Path("page.md")) -> list[Block]:
    """The python blocks of a markdown text, in order, with their no-run markers.

    Fences may be indented (inside tabs or admonitions) and use three or more
    backticks or tildes; a fence closes only with the same character, at least
    as many of them, and no info string, so blocks nested in a longer fence
    (a ````markdown example) are not code.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m["fence"], m["indent"]
        lang = m["info"].split()[0].lower() if m["info"] else ""
        end = i + 1
        while end < len(lines):
            close = _FENCE.match(lines[end])
            if (close and not close["info"] and close["fence"][0] == fence[0]
                    and len(close["fence"]) >= len(fence)):
                break
            end += 1
        if lang in _PYTHON:
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                    for line in lines[i + 1 : end]]
            title = _TITLE.search(m["info"])
            kind, reason = _marker(lines, i)
            blocks.append(Block(page, i + 2, textwrap.dedent("\n".join(body)) + "\n",
                                reason if kind == "no-run" else None,
                                title["name"] if title else None,
                                reason if kind == "slow" else None))
        i = end + 1
    return blocks


def _marker(lines: list[str], fence_index: int) -> tuple[str | None, str | None]:
    """``(kind, reason)`` of a no-run or slow marker just before the fence (blank lines
    allowed), or ``(None, None)``."""
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    m = _MARKER.match(lines[j]) if j >= 0 else None
    return (m["kind"], m["reason"].strip()) if m else (None, None)


def _blocks(page: Path) -> list[Block]:
    return parse(page.read_text(encoding="utf-8"), page)


PAGES_WITH_CODE = [p for p in PAGES if _blocks(p)]


@functools.cache
def _fashion_mnist_installed() -> bool:
    import fnn.datasets

    try:
        fnn.datasets.fashion_mnist(download=False)
    except (OSError, ValueError):
        return False
    return True


def run_page(
    blocks: list[Block], folder: Path | None = None, slow: bool = False
) -> dict[str, object]:
    """Run the blocks that are not marked no-run (nor slow, unless ``slow``), in order, in
    one namespace; return it. Titled blocks are written to ``folder`` (which must be
    importable) before they run."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in blocks:
        if block.skip is not None or (block.slow is not None and not slow):
            continue
        if block.title is not None and folder is not None:
            (folder / block.title).write_text(block.code, encoding="utf-8")
        # Pad with newlines so tracebacks show the page's own line numbers.
        source = "\n" * (block.line - 1) + block.code
        try:
            if block.title is not None and block.title.startswith("test_"):
                _run_test_file(compile(source, str(block.page), "exec"))
            else:
                exec(compile(source, str(block.page), "exec"), namespace)
        except Exception as err:
            raise AssertionError(
                f"{_name(block.page)}:{block.line}: this python block raised "
                f"{type(err).__name__}: {err}"
            ) from err
    return namespace


def _run_test_file(code: object) -> None:
    """Run a test module's code in its own namespace and call its test functions."""
    module: dict[str, object] = {"__name__": "docs_test_module"}
    exec(code, module)
    tests = [f for name, f in module.items() if name.startswith("test_") and callable(f)]
    assert tests, "a block titled test_*.py defines no test function"
    for test in tests:
        test()


def _run_in(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: bool) -> None:
    blocks = _blocks(page)
    running = [b for b in blocks if b.skip is None and (slow or b.slow is None)]
    if any("fashion_mnist(" in b.code for b in running) and not _fashion_mnist_installed():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    try:
        run_page(blocks, tmp_path, slow=slow)
    finally:  # forget modules the page wrote (swish.py), so no other test imports them
        for name in set(sys.modules) - before:
            if str(tmp_path) in str(getattr(sys.modules[name], "__file__", "") or ""):
                del sys.modules[name]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_name)
def test_page_code_runs(page, tmp_path, monkeypatch):
    """Every python block of the page (but the slow ones) runs, in order, in one namespace."""
    _run_in(page, tmp_path, monkeypatch, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.slow for b in _blocks(p))], ids=_name)
def test_page_code_runs_in_full(page, tmp_path, monkeypatch):
    """Every python block of the page, the slow ones included, runs in order."""
    _run_in(page, tmp_path, monkeypatch, slow=True)


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_markers_have_a_reason_and_a_block(page):
    """Every no-run or slow marker says why, and stands right before a python block."""
    lines = page.read_text(encoding="utf-8").splitlines()
    marked = {b.line - 1 for b in _blocks(page) if b.skip or b.slow}  # 1-based fence lines
    for number, line in enumerate(lines, 1):
        m = _MARKER.match(line)
        if m is None:
            continue
        assert m["reason"].strip(), f"{_name(page)}:{number}: a {m['kind']} marker needs a reason"
        following = next((k for k in range(number, len(lines)) if lines[k].strip()), None)
        assert following is not None and following + 1 in marked, (
            f"{_name(page)}:{number}: a {m['kind']} marker must stand right before a "
            "```python block"
        )


def test_collects_the_readme_and_every_docs_page():
    """The runner finds README.md and docs pages by globbing, so new pages join by themselves."""
    names = {_name(p) for p in PAGES_WITH_CODE}
    assert {"README.md", "docs/getting-started.md", "docs/tutorials.md"} <= names


def test_parse_finds_blocks_markers_and_nesting():
    """The parser: indented fences, tildes, markers with blank lines, no-info closings, and
    python fences nested in a longer fence are not code."""
    text = textwrap.dedent("""\
        # Title

        ```python
        a = 1
        ```

        <!-- no-run: a fragment -->

        ```python title="x.py"
        not python at all(
        ```

        === "tab"

            ```python
            b = a + 1
            ```

        ````markdown
        ```python
        raise SystemExit
        ```
        ````

        ~~~py
        c = b * 2
        ~~~

        <!-- slow: a long run -->
        ```python
        c = c + 1
        ```

        ```text
        ignored
        ```
        """)
    blocks = parse(text)
    assert [(b.line, b.code, b.skip, b.title, b.slow) for b in blocks] == [
        (4, "a = 1\n", None, None, None),
        (10, "not python at all(\n", "a fragment", "x.py", None),
        (16, "b = a + 1\n", None, None, None),
        (26, "c = b * 2\n", None, None, None),
        (31, "c = c + 1\n", None, None, "a long run"),
    ]
    assert run_page(blocks)["c"] == 4
    assert run_page(blocks, slow=True)["c"] == 5


def test_a_failing_block_names_its_page_and_line(tmp_path):
    """A block that raises is reported with the page and the line where the block starts,
    and the traceback points at the page's own line."""
    page = tmp_path / "p.md"
    page.write_text("# P\n\n```python\nx = 1\ny = undefined_name\n```\n")
    with pytest.raises(AssertionError, match=r"p\.md:4: this python block raised NameError") as info:
        run_page(parse(page.read_text(), page))
    tb = info.value.__cause__.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_lineno == 5 and tb.tb_frame.f_code.co_filename == str(page)


def test_titled_blocks_become_files_and_test_files_run(tmp_path, monkeypatch):
    """A block titled mod.py is importable by later blocks; the tests of a test_*.py block
    are called, so a failing one fails the page."""
    page = tmp_path / "p.md"
    page.write_text(textwrap.dedent("""\
        ```python title="docmod.py"
        def double(v):
            return 2 * v
        ```

        ```python title="test_docmod.py"
        from docmod import double

        def test_double():
            assert double(2) == 5
        ```
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AssertionError, match=r"p\.md:7: this python block raised AssertionError"):
        run_page(parse(page.read_text(), page), tmp_path)
    assert (tmp_path / "docmod.py").read_text().startswith("def double")
    sys.modules.pop("docmod", None)
