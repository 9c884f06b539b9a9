"""The timeline picture of a fault run, written as plain SVG text (no plotting library).

Three panels on one time axis (seconds since the load started): committed transactions
per second (from an honest node's chain, by block timestamp), the view number each
node reported, and whether each node answered at all. Fault windows are shaded across
all panels — red for process faults, blue for network faults, amber for Byzantine
ones — and the heal is a dashed green line, so "what broke, when, and what it did to
throughput and views" is one glance.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Sequence

WIDTH = 980
LEFT, RIGHT = 64, 24
LANE_H = 13
TPS_H, VIEW_H, GAP = 190, 110, 34
COLORS = {"process": "#e4574f", "network": "#3b7dd8", "byzantine": "#e89a1c"}
HEAL_COLOR = "#2e9d4a"
NODE_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
               "#666666")


@dataclass(frozen=True)
class Shade:
    label: str
    kind: str
    start: float
    end: float


@dataclass(frozen=True)
class TimelineData:
    title: str
    duration_s: float
    tps: Sequence[tuple[int, int]]
    """(second, committed transactions in blocks stamped in that second)."""
    views: dict[int, Sequence[tuple[float, int]]]
    """node -> (t, view) samples."""
    up: dict[int, Sequence[tuple[float, bool]]]
    """node -> (t, answered) samples."""
    shades: Sequence[Shade]
    heal_t: float | None = None
    load_end_t: float | None = None


class _Canvas:
    def __init__(self, data: TimelineData, lanes: int) -> None:
        self.data = data
        self.t_max = max(1.0, data.duration_s)
        self.top = 34 + lanes * LANE_H + 4
        """Shading starts here, under the label lanes."""
        self.tps_y = self.top + 22
        self.view_y = self.tps_y + TPS_H + GAP
        self.up_y = self.view_y + VIEW_H + GAP
        self.height = self.up_y + max(1, len(data.up)) * 14 + 44
        self.parts: list[str] = []

    def x(self, t: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * min(max(t, 0.0), self.t_max) / self.t_max

    def add(self, text: str) -> None:
        self.parts.append(text)

    def text(self, x: float, y: float, s: str, size: int = 11, anchor: str = "start",
             color: str = "#333", weight: str = "normal") -> None:
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'fill="{color}" font-weight="{weight}">{escape(s)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str = "#999",
             dash: str = "", width: float = 1.0) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{color}" stroke-width="{width}"{extra}/>')

    def rect(self, x: float, y: float, w: float, h: float, fill: str, opacity: float = 1.0,
             title: str = "") -> None:
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" '
                 f'fill="{fill}" fill-opacity="{opacity}">{tip}</rect>')


def _labels(data: TimelineData) -> list[tuple[float, str, str]]:
    """(t, text, colour) of everything labelled above the panels: windows and markers."""
    items = [(s.start, s.label, COLORS.get(s.kind, "#888")) for s in data.shades]
    if data.heal_t is not None:
        items.append((data.heal_t, "heal", HEAL_COLOR))
    if data.load_end_t is not None:
        items.append((data.load_end_t, "load stops", "#777"))
    return sorted(items, key=lambda item: item[0])


def _lanes(labels: Sequence[tuple[float, str, str]], canvas_x) -> list[int]:
    """Label lanes so that labels of overlapping windows do not print over each other."""
    lane_ends: list[float] = []
    lanes = []
    for t, label, _ in labels:
        x0 = canvas_x(t)
        x1 = x0 + 6.2 * len(label) + 8
        for k, end in enumerate(lane_ends):
            if end <= x0:
                lane_ends[k] = x1
                lanes.append(k)
                break
        else:
            lane_ends.append(x1)
            lanes.append(len(lane_ends) - 1)
    return lanes


def _ticks(top: float, steps: int = 4) -> list[float]:
    if top <= 0:
        return [0.0]
    return [top * k / steps for k in range(steps + 1)]


def _axis_time(c: _Canvas) -> None:
    step = 1 if c.t_max <= 12 else 5 if c.t_max <= 70 else 10 if c.t_max <= 150 else 30
    bottom = c.up_y + max(1, len(c.data.up)) * 14 + 4
    t = 0
    while t <= c.t_max + 1e-9:
        x = c.x(t)
        c.line(x, bottom, x, bottom + 4, "#666")
        c.text(x, bottom + 16, f"{t:g}", 10, "middle", "#555")
        t += step
    c.text(WIDTH - RIGHT, bottom + 30, "seconds since the load started", 10, "end", "#555")


def _shades(c: _Canvas) -> None:
    bottom = c.up_y + max(1, len(c.data.up)) * 14
    for shade in c.data.shades:
        x0, x1 = c.x(shade.start), c.x(shade.end)
        c.rect(x0, c.top, x1 - x0, bottom - c.top, COLORS.get(shade.kind, "#888"), 0.13,
               f"{shade.label}: {shade.start:.1f}s - {shade.end:.1f}s")


def _label_lanes(c: _Canvas, labels: list[tuple[float, str, str]], lanes: list[int]) -> None:
    for (t, label, color), lane in zip(labels, lanes):
        x0 = c.x(t)
        y = 34 + lane * LANE_H + 9
        c.line(x0, y + 2, x0, c.top, color, "2,2")
        if x0 + 6.2 * len(label) + 3 > WIDTH:  # no room on the right: print it leftwards
            c.text(x0 - 3, y, label, 10, "end", color, "bold")
        else:
            c.text(x0 + 3, y, label, 10, color=color, weight="bold")


def _tps_panel(c: _Canvas) -> None:
    top = max([count for _, count in c.data.tps] + [1])
    c.text(LEFT, c.tps_y - 6, "committed tx/s", 11, weight="bold")
    for value in _ticks(top):
        y = c.tps_y + TPS_H - TPS_H * value / top
        c.line(LEFT - 4, y, WIDTH - RIGHT, y, "#e3e3e3")
        c.text(LEFT - 7, y + 4, f"{value:.0f}", 10, "end", "#555")
    width = c.x(1.0) - c.x(0.0)
    for second, count in c.data.tps:
        if second >= c.t_max:
            continue
        h = TPS_H * count / top
        w = min(width * 0.9, c.x(c.t_max) - c.x(second))
        c.rect(c.x(second), c.tps_y + TPS_H - h, w, h, "#4a8f5a", 0.85, f"{second}s: {count} tx")
    c.line(LEFT, c.tps_y + TPS_H, WIDTH - RIGHT, c.tps_y + TPS_H, "#666")


def _view_panel(c: _Canvas) -> None:
    views = [v for series in c.data.views.values() for _, v in series]
    top = max(views + [1])
    c.text(LEFT, c.view_y - 6, "view (per node)", 11, weight="bold")
    for value in sorted({0, top} | ({top // 2} if top > 1 else set())):
        y = c.view_y + VIEW_H - VIEW_H * value / top
        c.line(LEFT - 4, y, WIDTH - RIGHT, y, "#e3e3e3")
        c.text(LEFT - 7, y + 4, str(value), 10, "end", "#555")
    for k, (node, series) in enumerate(sorted(c.data.views.items())):
        color = NODE_COLORS[k % len(NODE_COLORS)]
        points, last = [], None
        offset = (k - len(c.data.views) / 2) * 1.5  # keep equal lines from hiding each other
        for t, view in series:
            y = c.view_y + VIEW_H - VIEW_H * view / top + offset
            if last is not None:
                points.append(f"{c.x(t):.1f},{last:.1f}")
            points.append(f"{c.x(t):.1f},{y:.1f}")
            last = y
        if points:
            c.add(f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" '
                  f'stroke-width="1.6"/>')
        c.text(WIDTH - RIGHT - 4 - 52 * (len(c.data.views) - 1 - k), c.view_y - 6,
               f"node{node}", 10, "end", color, "bold")
    c.line(LEFT, c.view_y + VIEW_H, WIDTH - RIGHT, c.view_y + VIEW_H, "#666")


def _up_panel(c: _Canvas) -> None:
    c.text(LEFT, c.up_y - 6, "answering /v1/status (green) or not (grey)", 11, weight="bold")
    for row, (node, series) in enumerate(sorted(c.data.up.items())):
        y = c.up_y + row * 14
        c.text(LEFT - 7, y + 10, f"node{node}", 10, "end", "#555")
        points = list(series)
        for (t, ok), nxt in zip(points, points[1:] + [(c.t_max, points[-1][1])] if points else []):
            c.rect(c.x(t), y, c.x(nxt[0]) - c.x(t), 11, "#5bb974" if ok else "#b0b0b0")


def _markers(c: _Canvas) -> None:
    bottom = c.up_y + max(1, len(c.data.up)) * 14
    if c.data.heal_t is not None:
        x = c.x(c.data.heal_t)
        c.line(x, c.top, x, bottom, HEAL_COLOR, "6,3", 1.6)
    if c.data.load_end_t is not None:
        x = c.x(c.data.load_end_t)
        c.line(x, c.top, x, bottom, "#777", "3,3")


def render_svg(data: TimelineData) -> str:
    labels = _labels(data)
    lanes = _lanes(labels, _Canvas(data, 0).x)
    c = _Canvas(data, (max(lanes) + 1) if lanes else 0)
    c.text(LEFT, 20, data.title, 14, weight="bold")
    _shades(c)
    _label_lanes(c, labels, lanes)
    _tps_panel(c)
    _view_panel(c)
    _up_panel(c)
    _markers(c)
    _axis_time(c)
    body = "\n".join(c.parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{c.height:.0f}" '
            f'viewBox="0 0 {WIDTH} {c.height:.0f}" font-family="Helvetica, Arial, sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')
