"""The dashboard as one self-contained HTML page: inline CSS, charts as inline SVG, no
script, no font or library from the network (it opens from disk, offline, and a browser
has nothing to execute). Every number is also in a table; charts carry SVG `<title>`
tooltips. Elements tests and scrapers can rely on: `#kpi-<name>[data-value]` and
`tr[data-day]` rows of the per-day table."""

from __future__ import annotations

from html import escape

from datahub_assets.runs.summary import Summary, duration_text, rate_text

GREEN, RED, GREY, BLUE = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"
INK, MUTED = "#1f2933", "#6b7785"

CSS = f"""
body{{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
color:{INK};margin:0;background:#f4f6f8}}
main{{max-width:1080px;margin:0 auto;padding:24px}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:16px;margin:28px 0 8px}}
.sub{{color:{MUTED};margin:0 0 16px}}
.kpis{{display:flex;gap:12px;flex-wrap:wrap}}
.kpi{{background:#fff;border-radius:8px;padding:12px 16px;flex:1 1 0;min-width:110px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}}
.kpi .value{{display:block;font-size:26px;font-weight:600}}
.kpi .label{{color:{MUTED};font-size:12px;text-transform:uppercase;letter-spacing:.04em}}
.card{{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}}
table{{border-collapse:collapse;width:100%;background:#fff}}
th,td{{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}}
th{{font-size:12px;color:{MUTED};text-transform:uppercase;letter-spacing:.03em}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}} td.t{{white-space:nowrap}}
code{{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-word}}
.legend span{{display:inline-block;margin-right:14px;color:{MUTED};font-size:12px}}
.legend i{{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}}
.ok{{color:{GREEN}}} .bad{{color:{RED}}} .none{{color:{MUTED}}}
"""


def _kpi(name: str, label: str, value: str, raw: object, cls: str = "") -> str:
    return (
        f'<div class="kpi" id="kpi-{name}"><span class="value {cls}" '
        f'data-value="{escape(str(raw))}">{escape(value)}</span>'
        f'<span class="label">{escape(label)}</span></div>'
    )


def _nice(raw: float) -> int:
    """The smallest 1, 2 or 5 x 10^n at least `raw` (axis steps of whole runs)."""
    magnitude = 1
    while True:
        for m in (1, 2, 5):
            if m * magnitude >= raw:
                return m * magnitude
        magnitude *= 10


def _day_chart(s: Summary, width: int = 1040, height: int = 240) -> str:
    days = s.days
    left, bottom, top = 40, 28, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    most = max([d.runs for d in days] + [1])
    step_y = _nice(most / 4)
    ticks = -(-most // step_y)  # gridlines up to the first step at or above the busiest day
    peak = step_y * ticks
    step = plot_w / max(len(days), 1)
    bar = max(min(step * 0.7, 48), 2)
    every = max(1, len(days) // 14)
    out = [
        f'<svg id="chart-days" role="img" aria-label="pipeline runs per day" '
        f'viewBox="0 0 {width} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(ticks + 1):
        value = step_y * i
        y = top + plot_h - plot_h * i / ticks
        out.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e4e7eb"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="{MUTED}">{value:.0f}</text>'
        )
    for i, d in enumerate(days):
        x = left + i * step + (step - bar) / 2
        y = top + plot_h
        for count, color, what in (
            (d.succeeded, GREEN, "succeeded"),
            (d.failed, RED, "failed"),
            (d.other, GREY, "skipped/canceled"),
        ):
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{d.day}: {count} {what}</title></rect>'
            )
        if d.runs:
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" font-size="10" '
                f'text-anchor="middle" fill="{INK}">{d.runs}</text>'
            )
        if i % every == 0:
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 10}" font-size="11" '
                f'text-anchor="middle" fill="{MUTED}">{d.day:%m-%d}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _rate_chart(s: Summary, width: int = 1040, height: int = 120) -> str:
    left, bottom, top = 40, 10, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    step = plot_w / max(len(s.days), 1)
    out = [
        f'<svg id="chart-rate" role="img" aria-label="success rate per day" '
        f'viewBox="0 0 {width} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">'
    ]
    for pct in (0, 50, 100):
        y = top + plot_h - plot_h * pct / 100
        out.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e4e7eb"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="{MUTED}">{pct}%</text>'
        )
    points = []
    for i, d in enumerate(s.days):
        if d.success_rate is None:
            continue
        x, y = left + i * step + step / 2, top + plot_h * (1 - d.success_rate)
        points.append(f"{x:.1f},{y:.1f}")
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{BLUE}"><title>{d.day}: '
            f"{rate_text(d.success_rate)}</title></circle>"
        )
    if len(points) > 1:
        out.insert(
            -len(points),
            f'<polyline fill="none" stroke="{BLUE}" stroke-width="2" points="{" ".join(points)}"/>',
        )
    out.append("</svg>")
    return "".join(out)


def _slow_chart(s: Summary, width: int = 1040) -> str:
    if not s.slowest:
        return '<p class="none">no successful run in the window</p>'
    label_w, row_h = 300, 24
    height = row_h * len(s.slowest) + 8
    peak = max(x.max_s for x in s.slowest) or 1
    scale = (width - label_w - 90) / peak
    out = [
        f'<svg id="chart-slowest" role="img" aria-label="slowest pipelines" '
        f'viewBox="0 0 {width} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, x in enumerate(s.slowest):
        y = 4 + i * row_h
        out.append(
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end" '
            f'fill="{INK}">{escape(x.pipeline)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{max(x.max_s * scale, 1):.1f}" height="14" '
            f'fill="#bbdefb"><title>max {duration_text(x.max_s)}</title></rect>'
            f'<rect x="{label_w}" y="{y + 4}" width="{max(x.median_s * scale, 1):.1f}" '
            f'height="14" fill="{BLUE}"><title>{escape(x.pipeline)}: median '
            f"{duration_text(x.median_s)} over {x.runs} runs</title></rect>"
            f'<text x="{label_w + x.max_s * scale + 6:.1f}" y="{y + 15}" font-size="11" '
            f'fill="{MUTED}">{duration_text(x.median_s)} / {duration_text(x.max_s)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _table(id_: str, header: tuple[str, ...], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="none" id="{id_}">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f'<table id="{id_}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render(s: Summary, title: str = "Data Hub — pipeline runs") -> str:
    """The page for `s` (every value HTML-escaped)."""
    e = escape
    kpis = "".join(
        [
            _kpi("runs", "pipeline runs", str(s.runs), s.runs),
            _kpi("succeeded", "succeeded", str(s.succeeded), s.succeeded, "ok"),
            _kpi("failed", "failed", str(s.failed), s.failed, "bad" if s.failed else ""),
            _kpi("other", "skipped / canceled", str(s.other), s.other),
            _kpi(
                "success-rate",
                "success rate",
                rate_text(s.success_rate),
                "" if s.success_rate is None else f"{s.success_rate:.4f}",
            ),
            _kpi(
                "sla-breaches",
                "SLA breaches",
                str(len(s.breaches)),
                len(s.breaches),
                "bad" if s.breaches else "",
            ),
        ]
    )
    day_rows = [
        f'<tr data-day="{d.day}" data-runs="{d.runs}" data-succeeded="{d.succeeded}" '
        f'data-failed="{d.failed}"><td class="t">{d.day}</td><td class="n">{d.runs}</td>'
        f'<td class="n">{d.succeeded}</td><td class="n">{d.failed}</td>'
        f'<td class="n">{d.other}</td><td class="n">{rate_text(d.success_rate)}</td></tr>'
        for d in reversed(s.days)
    ]
    failure_rows = [
        f'<tr data-count="{f.count}"><td class="n">{f.count}</td><td><code>{e(f.signature)}'
        f'</code><br><small class="none">{e(f.example)}</small></td>'
        f"<td>{e(', '.join(f.pipelines[:8]))}</td>"
        f'<td class="t">{f.last_seen:%Y-%m-%d %H:%M}</td></tr>'
        for f in s.failures
    ]
    breach_rows = [
        f'<tr><td>{e(b.pipeline)}</td><td>{e(b.sla)}</td><td class="t">'
        f"{f'{b.last_success:%Y-%m-%d %H:%M}' if b.last_success else 'never'}</td>"
        f'<td class="n">{duration_text(b.overdue_s)}</td></tr>'
        for b in s.breaches
    ]
    recent_rows = [
        f'<tr><td class="t">{r["started_at"]:%Y-%m-%d %H:%M}</td><td>{e(r["pipeline"])}</td>'
        f'<td class="t"><code>{e(r["run_id"][:8])}</code></td><td>{e(r.get("trigger") or "")}</td>'
        f"<td><code>{e(r.get('error_class') or '')}</code> "
        f"{e((r.get('error_message') or '')[:240])}</td></tr>"
        for r in s.recent_failures
    ]
    legend = (
        f'<div class="legend"><span><i style="background:{GREEN}"></i>succeeded</span>'
        f'<span><i style="background:{RED}"></i>failed</span>'
        f'<span><i style="background:{GREY}"></i>skipped / canceled</span></div>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{e(title)}</h1>
<p class="sub">{s.since:%Y-%m-%d} to {s.now:%Y-%m-%d %H:%M} UTC · one row per pipeline per
run, from <code>ops_gold.pipeline_runs</code> · generated {s.now:%Y-%m-%d %H:%M} UTC</p>
<section class="kpis">{kpis}</section>
<h2>Runs per day</h2><div class="card">{legend}{_day_chart(s)}</div>
<h2>Success rate per day</h2><div class="card">{_rate_chart(s)}</div>
<h2>Top failure reasons</h2>
{
        _table(
            "failures",
            ("failures", "signature / latest message", "pipelines", "last seen"),
            failure_rows,
            "no failure in the window",
        )
    }
<h2>Slowest pipelines (median / max of successful runs)</h2>
<div class="card">{_slow_chart(s)}</div>
<h2>Freshness / SLA breaches</h2>
{
        _table(
            "breaches",
            ("pipeline", "sla", "last success (UTC)", "overdue by"),
            breach_rows,
            "every pipeline with an SLA is within it",
        )
    }
<h2>Recent failures</h2>
{
        _table(
            "recent",
            ("started (UTC)", "pipeline", "run", "trigger", "error"),
            recent_rows,
            "no failure in the window",
        )
    }
<h2>Per day</h2>
{
        _table(
            "days",
            ("day", "runs", "succeeded", "failed", "skipped/canceled", "success rate"),
            day_rows,
            "no day in the window",
        )
    }
</main></body></html>
"""
