"""A griffe extension for the API reference: read fnn's ``Example:`` sections as examples.

fnn's docstrings head their doctests ``Example:`` (Google style allows both
spellings); griffe's Google parser recognises only ``Examples:`` as the examples
section and would render ``Example:`` as a plain admonition, losing the code
formatting of the ``>>>`` lines. This extension renames the heading before the
docstring is parsed. It changes only what the documentation shows, never the
source.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headings to ``Examples:`` in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the heading of ``obj``'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
