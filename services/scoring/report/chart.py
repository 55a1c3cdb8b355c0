"""A ranking's bar chart as a PNG, drawn with Pillow (already needed by fpdf2).

An image, not page CSS, so the chart survives printing and sits in the DOCX as in the PDF
(issue #15: "charts vanish when printed"). Bars below quota on some form are drawn amber.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from services.scoring.report.content import Chart
from services.scoring.report.fonts import Fonts

SCALE = 2  # drawn at twice the size it is shown, for a sharp print
WIDTH = 900


def chart_png(chart: Chart, fonts: Fonts) -> bytes:
    font = ImageFont.truetype(str(fonts.regular), 13 * SCALE)
    bold = ImageFont.truetype(str(fonts.bold), 14 * SCALE)
    row, top, label_w, right = 26 * SCALE, 34 * SCALE, 300 * SCALE, 70 * SCALE
    width = WIDTH * SCALE
    height = top + row * len(chart.bars) + 10 * SCALE
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((0, 4 * SCALE), chart.title, fill="black", font=bold)
    span = width - label_w - right
    top_value = max((b.maximum for b in chart.bars), default=0.0) or 1.0
    for i, bar in enumerate(chart.bars):
        y = top + i * row
        label = bar.label
        while draw.textlength(label, font=font) > label_w - 10 * SCALE and len(label) > 4:
            label = label[:-2].rstrip() + "…"
        draw.text((0, y + 4 * SCALE), label, fill="black", font=font)
        draw.rectangle((label_w, y + 3 * SCALE, label_w + span, y + row - 5 * SCALE), "#eeeeee")
        length = max(0.0, min(1.0, bar.value / top_value)) * span
        colour = "#c77c02" if bar.short else "#1f5fa8"
        if length >= 1:
            draw.rectangle((label_w, y + 3 * SCALE, label_w + length, y + row - 5 * SCALE), colour)
        draw.text((label_w + span + 8 * SCALE, y + 4 * SCALE), bar.text, fill="black", font=font)
    out = io.BytesIO()
    img.save(out, format="PNG", dpi=(144, 144))
    return out.getvalue()
