"""The one string type of the log: no control characters, no lone surrogates, bounded.

PostgreSQL cannot store U+0000 and UTF-8 cannot encode a lone surrogate, so a string with one
would be accepted on the append-only log and then refused by every projection, forever
(docs/architecture.md, decision 17). Every string field of the envelope, the payloads and the
campaign is ``Annotated[str, Text(...)]``, so no producer can publish such a value and a reader
dead-letters it. Edges (HTTP, forms, CLI, imports) call `text_problem` to refuse early.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from pydantic import BeforeValidator, Field, StringConstraints

# C0 controls, DEL, C1 controls and the surrogate range (only ever unpaired inside a str).
_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # \t and \n allowed
# The same rule for the JSON Schemas (surrogates cannot be written in a schema pattern).
SCHEMA_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
MULTILINE_SCHEMA_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"

# A pattern built only of classes of ASCII letters, digits, "_" and "-" (ranges included: any
# range between two such characters stays inside printable ASCII): it cannot match a control
# character or a surrogate, so the Python character check would only repeat it.
_ASCII_CLASSES = re.compile(r"\^(?:\[[A-Za-z0-9_-]+\](?:\{\d+(?:,\d+)?\}|[+*?])?)+\$")

ID_MAX = 128
NAME_MAX = 500
FREE_TEXT_MAX = 4000


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` may not go on the log (English, for APIs and logs), or None if it may."""
    found = (_MULTILINE if multiline else _SINGLE_LINE).search(value)
    if found is None:
        return None
    code = ord(found.group())
    kind = "unpaired surrogate" if 0xD800 <= code <= 0xDFFF else "control character"
    return f"{kind} U+{code:04X} at position {found.start()} is not allowed"


@dataclass(frozen=True)
class Text(GroupedMetadata):
    """Metadata for ``Annotated[str, Text(...)]``: the character rule, then length and pattern.

    Refuses control characters (\\t and \\n allowed if multiline) and lone surrogates; the
    character check runs first, so its message is the one reported. `pattern`, if given,
    further narrows the field (codes, ids); a pattern of ASCII letter/digit classes alone
    already refuses every such character, and then only the pattern's message is reported.
    """

    max_length: int
    min_length: int = 0
    pattern: str | None = None
    multiline: bool = False

    def __iter__(self) -> Iterator[Any]:
        multiline = self.multiline

        def check(value: Any) -> Any:
            # Printable ASCII holds no control character and no surrogate: most strings of the
            # log (codes, ids) pass here without the regular expression.
            if isinstance(value, str) and not (value.isascii() and value.isprintable()):
                problem = text_problem(value, multiline=multiline)
                if problem is not None:
                    raise ValueError(problem)
            return value

        yield StringConstraints(
            min_length=self.min_length or None, max_length=self.max_length, pattern=self.pattern
        )
        if self.pattern is None:  # a narrower pattern already excludes control characters
            schema = MULTILINE_SCHEMA_PATTERN if multiline else SCHEMA_PATTERN
            yield Field(json_schema_extra={"pattern": schema})
        if self.pattern is not None and _ASCII_CLASSES.fullmatch(self.pattern):
            # Codes and ids: pydantic's Rust regex refuses what the check would, without a
            # call into Python per string (the rebuild decodes millions of them; issue #18).
            return
        yield BeforeValidator(check)  # the last before-validator listed runs first


Id = Annotated[str, Text(ID_MAX)]
Name = Annotated[str, Text(NAME_MAX)]
NonEmptyName = Annotated[str, Text(NAME_MAX, min_length=1)]
FreeText = Annotated[str, Text(FREE_TEXT_MAX, multiline=True)]
