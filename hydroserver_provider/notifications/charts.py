"""Small per-datastream charts for digests: a PNG when matplotlib is installed, else text.

matplotlib is optional (not a dependency of the provider): the digest always carries a text
sparkline, and an inline PNG bar chart when matplotlib can be imported. The figure is drawn with
the object-oriented API on an Agg canvas, so no global pyplot state or display is involved.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

__all__ = ["SPARK_BARS", "png_bar_chart", "sparkline"]

SPARK_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """``[0, 4, 8]`` -> ``"▁▄█"``; zeros are the lowest bar, so an empty run still shows."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK_BARS[0] * len(values)
    steps = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[round(max(v, 0) / top * steps)] for v in values)


def png_bar_chart(values: Sequence[float], *, labels: Sequence[str] = (),
                  failed: Sequence[bool] = (), title: str = "") -> bytes | None:
    """A small bar chart (one bar per run, failed runs in red) as PNG bytes, or None when
    matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(4.0, 1.3), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    colours = ["#c0392b" if (i < len(failed) and failed[i]) else "#2e86c1"
               for i in range(len(values))]
    axes.bar(range(len(values)), values, color=colours, width=0.8)
    axes.set_xticks([])
    axes.tick_params(labelsize=7)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    if labels and len(labels) == len(values):
        axes.set_xlabel(f"{labels[0]} … {labels[-1]}" if len(labels) > 1 else labels[0],
                        fontsize=7)
    if title:
        axes.set_title(title, fontsize=8, loc="left")
    figure.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
