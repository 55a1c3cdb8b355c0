"""A Unicode TrueType font for the PDF and the chart: Vietnamese needs more than Latin-1.

The PDF core fonts cannot write "ệ" or "ừ", so the report embeds DejaVu (Debian's
fonts-dejavu-core, installed by deploy/Dockerfile and .ci/run). PARINDEX_REPORT_FONT_DIR names
another folder holding DejaVuSans.ttf, DejaVuSans-Bold.ttf and DejaVuSansMono.ttf.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SEARCH = (
    "/usr/share/fonts/truetype/dejavu",  # Debian, Ubuntu
    "/usr/share/fonts/dejavu",  # Fedora, Alpine
    "/usr/share/fonts/TTF",  # Arch
)
FILES = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf", "mono": "DejaVuSansMono.ttf"}


class FontMissing(Exception):
    """No folder holds the report's fonts; the server answers 503 with a page that says so."""


@dataclass(frozen=True)
class Fonts:
    regular: Path
    bold: Path
    mono: Path


def find_fonts() -> Fonts:
    folders = [os.environ.get("PARINDEX_REPORT_FONT_DIR", ""), *SEARCH]
    for folder in filter(None, folders):
        paths = {k: Path(folder) / name for k, name in FILES.items()}
        if all(p.is_file() for p in paths.values()):
            return Fonts(**paths)
    raise FontMissing("DejaVu fonts not found (install fonts-dejavu-core)")
