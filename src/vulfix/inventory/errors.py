"""The one failure of an import: the document is wrong, and here is where."""

from __future__ import annotations

# Enough to fix a file in a few passes without flooding a terminal.
SHOWN_PROBLEMS = 20


class InvalidDocumentError(ValueError):
    """The document was rejected as a whole; each problem reads `section[index].Field: why`."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        shown = list(self.problems[:SHOWN_PROBLEMS])
        hidden = len(self.problems) - len(shown)
        if hidden:
            shown.append(f"... and {hidden} more problem{'s' if hidden > 1 else ''}")
        super().__init__("\n".join(shown))
