"""The companion name pattern: `{name}` is the image's base name, `*` any text, `?` one character.

Everything else is literal (brackets too: file names hold them more often than users mean a
character class). The pattern is a file name, not a path: subfolders come from the image's own
RELATIVE_PATH, mirrored under the companion folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_TOKEN = "{name}"
DEFAULT_PATTERN = "{name}.*"


class PatternError(ValueError):
    """The pattern cannot be used; the message says what to change."""


def _glob_regex(text: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


@dataclass(frozen=True)
class NamePattern:
    """A checked pattern; `for_name` gives the matcher of one image's companions."""

    text: str

    @classmethod
    def parse(cls, pattern: str) -> NamePattern:
        text = (pattern or "").strip()
        if not text:
            raise PatternError(f"pattern is empty: give a file name pattern such as '{DEFAULT_PATTERN}', "
                               "'{name}_mask.png' or '{name}.txt'.")
        if NAME_TOKEN not in text:
            raise PatternError(f"pattern '{text}' has no {NAME_TOKEN}: without it every image would get the same "
                               f"file. Write {NAME_TOKEN} where the image's base name goes, e.g. '{{name}}_mask.png'.")
        if "/" in text or "\\" in text:
            raise PatternError(f"pattern '{text}' contains a folder separator: the pattern is a file name. Put the "
                               "folder in the folder setting; subfolders of the images are mirrored on their own.")
        return cls(text)

    @property
    def has_wildcards(self) -> bool:
        return "*" in self.text or "?" in self.text

    def for_name(self, base_name: str, ignore_case: bool = False) -> re.Pattern[str]:
        """A regex matching the whole file name of base_name's companions."""
        source = re.escape(base_name).join(_glob_regex(p) for p in self.text.split(NAME_TOKEN))
        return re.compile(source, re.DOTALL | (re.IGNORECASE if ignore_case else 0))

    def exact_name(self, base_name: str) -> str:
        """The one file name a pattern without wildcards stands for."""
        return self.text.replace(NAME_TOKEN, base_name)
