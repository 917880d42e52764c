"""The run summary's Markdown (the `datahub_runs_summary` asset's metadata in the Dagster UI)
shows every text cell as text (issue #19 finding 12): error signatures carry text from error
messages, which can hold data values and names a definition or a source chose. Rendered by a
CommonMark + GFM-tables renderer that passes raw HTML through (the least forgiving kind), no
link, image, HTML tag or emphasis comes out of a cell, and each cell reads as written."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from markdown_it import MarkdownIt

from datahub_assets.runs.summary import markdown, summarise

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOSTILE = [
    "[click me](javascript:alert(1))",
    "![pixel](https://evil.example/p.png)",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "`code` *em* _em_ **strong** __strong__ ~~gone~~",
    "a | b || c",
    "first\nsecond\r\nthird",
    "&lt;img src=x&gt; &amp; &#60;b&#62;",
    "\\[still text](x) \\",
    "<https://evil.example/autolink> <mailto:x@evil.example>",
    "[ref]: https://evil.example\n[ref]",
    "# heading\n- list\n> quote",
]
TAGS = (
    "<a",
    "<img",
    "<script",
    "<code",
    "<em",
    "<strong",
    "<s>",
    "<del",
    "<h1",
    "<ul",
    "<blockquote",
)


def _render(text: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text)


def _markup(rendered: str) -> list[str]:
    """The tags that came out of the tables' cells (the summary's own headings and bold
    line are outside them)."""
    bodies = "".join(re.findall(r"<tbody>(.*?)</tbody>", rendered, re.S))
    return [tag for tag in TAGS if tag in bodies]


def _cells(rendered: str) -> list[list[str]]:
    """The body rows of every table, each cell as plain text."""
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", rendered, re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        if cells:
            rows.append([html.unescape(c) for c in cells])
    return rows


def _failure(signature: str, pipeline: str = "shop.orders") -> dict:
    start = datetime(2026, 11, 19, 8, tzinfo=UTC)
    return {
        "run_id": "r1",
        "pipeline": pipeline,
        "status": "failed",
        "started_at": start,
        "ended_at": start + timedelta(seconds=3),
        "duration_s": 3.0,
        "trigger": "manual",
        "error_class": "E",
        "error_message": signature,
        "error_signature": signature,
    }


@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_signature_renders_as_text(text):
    s = summarise([_failure(text)], since=datetime(2026, 11, 17, tzinfo=UTC), now=NOW)
    rendered = _render(markdown(s))
    assert _markup(rendered) == [], rendered
    (failure_row,) = [r for r in _cells(rendered) if r[0] == "1"]
    assert len(failure_row) == 4  # no cell split off or swallowed
    assert failure_row[1] == " ".join(text.split())  # as written, line breaks as spaces


def test_hostile_pipeline_and_sla_text_render_as_text():
    name = "<img src=x onerror=alert(1)>[x](javascript:1)"
    slas = {name: ("*P1D*", timedelta(days=1))}
    s = summarise(
        [_failure("boom", name)], since=datetime(2026, 11, 17, tzinfo=UTC), now=NOW, slas=slas
    )
    rendered = _render(markdown(s))
    assert _markup(rendered) == [], rendered
    assert [name, "*P1D*", "never", "-"] in _cells(rendered)
