"""The SVG bar charts: scales with whole ticks, bars that add up, text that stays text."""

from __future__ import annotations

import re

import pytest

from passes.charts import BOTTOM, HEIGHT, TOP, Series, _nice_ceiling, bar_chart


@pytest.mark.parametrize(
    ("value", "top"), [(0, 2), (1, 2), (3, 4), (7, 8), (9, 10), (11, 20), (250, 400)]
)
def test_the_axis_top_is_round_and_its_middle_whole(value: float, top: int) -> None:
    assert _nice_ceiling(value) == top and top % 2 == 0


def test_stacked_bars_reach_the_sum_and_labels_are_escaped() -> None:
    svg = str(
        bar_chart(
            "<b>title</b>",
            ["a<script>", "b"],
            [Series("x", "#000", [1, 2]), Series("y", "#111", [3, 0])],
        )
    )
    assert "<script>" not in svg and "a&lt;script&gt;" in svg
    assert "&lt;b&gt;title&lt;/b&gt;" in svg
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    # Bar "a" stacks 1 + 3 = 4, the top of the axis: the full plot height.
    assert len(heights) == 3  # a zero makes no bar
    assert heights[0] + heights[1] == pytest.approx(HEIGHT - TOP - BOTTOM, abs=0.2)
