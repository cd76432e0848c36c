"""Markdown out of the per-round metrics: medians of per-round ratios, never single times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from benchmarks.suite import Column, Metrics, Workload

History = list[dict[str, dict[str, Metrics]]]  # round -> workload key -> peer name -> metrics


@dataclass(frozen=True)
class Failure:
    kind: str  # "error", "wrong result", "hung", "skipped"
    message: str

    def cell(self) -> str:
        return f"✗ {self.kind}"


@dataclass
class Session:
    """Everything the report needs."""

    peers: Sequence[str]
    suite: Sequence[Workload]
    history: History
    failures: dict[tuple[str, str], Failure]  # (workload key, peer name) -> first failure
    skipped: dict[str, str]  # peer name -> why it did not run at all
    not_applicable: set[tuple[str, str]]  # (workload key, peer name)
    machine: dict[str, str]
    sizes: str
    warnings: list[str]


def per_round_values(history: History, key: str, column: Column, peer: str) -> list[float]:
    values = []
    for rnd in history:
        metrics = rnd.get(key, {})
        if peer in metrics:
            value = column.compute(metrics, peer)
            if value is not None:
                values.append(value)
    return values


def format_value(value: float, kind: str) -> str:
    if kind == "ratio":
        return f"{value:.2f}x" if value >= 0.01 else "<0.01x"
    if kind == "s":
        return f"{value:.3f} s"
    if kind == "MB":
        return f"{value:,.0f} MB"
    if kind == "ms":
        return f"{value:.1f} ms"
    if value < 10:
        return f"{value:.2f} µs"
    return f"{value:,.0f} µs" if value >= 100 else f"{value:.1f} µs"


def cell(session: Session, workload: Workload, column: Column, peer: str, spread: bool) -> str:
    """The median over rounds (with the min-max of the rounds when ``spread``), or why not."""
    if peer in session.skipped:
        return "✗ skipped"
    if (workload.key, peer) in session.not_applicable:
        return "—"
    if (workload.key, peer) in session.failures:
        return session.failures[workload.key, peer].cell()
    values = per_round_values(session.history, workload.key, column, peer)
    if not values:
        return "—"
    text = format_value(median(values), column.kind)
    if spread and column.kind == "ratio" and len(values) > 1 and max(values) >= 0.01:
        text += f" ({min(values):.2f}-{max(values):.2f})"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def summary_table(session: Session) -> list[str]:
    picked = [(w, c) for w in session.suite for c in w.columns if c.headline]
    header = ["peer", *(column.headline for _, column in picked)]
    rows = [
        [peer, *(cell(session, w, c, peer, spread=False) for w, c in picked)]
        for peer in session.peers
    ]
    return markdown_table(header, rows)


def workload_section(session: Session, workload: Workload) -> list[str]:
    header = ["peer", *(column.label for column in workload.columns)]
    rows = [
        [peer, *(cell(session, workload, c, peer, spread=True) for c in workload.columns)]
        for peer in session.peers
    ]
    lines = [f"### {workload.key}: {workload.title}", "", *markdown_table(header, rows)]
    note = workload.note(median_metrics(session, workload))
    return [*lines, "", note] if note else lines


def median_metrics(session: Session, workload: Workload) -> dict[str, Metrics]:
    """Each peer's median of each raw metric, for notes."""
    per_peer: dict[str, dict[str, list[float]]] = {}
    for rnd in session.history:
        for peer, metrics in rnd.get(workload.key, {}).items():
            for name, value in metrics.items():
                per_peer.setdefault(peer, {}).setdefault(name, []).append(value)
    return {peer: {k: median(v) for k, v in m.items()} for peer, m in per_peer.items()}


def bars_table(session: Session, peer: str = "paralleltask") -> list[str]:
    rows = []
    for workload in session.suite:
        for column in workload.columns:
            if column.bar is None:
                continue
            measured = cell(session, workload, column, peer, spread=False)
            values = per_round_values(session.history, workload.key, column, peer)
            failed = (workload.key, peer) in session.failures or peer in session.skipped
            verdict = (
                "—"
                if failed or not values
                else "PASS"
                if column.bar.met_by(median(values))
                else "FAIL"
            )
            bar = f"{column.bar.op} {format_value(column.bar.value, column.kind)}"
            rows.append([f"{workload.key} {column.label}", bar, measured, verdict])
    return markdown_table(["bar", "needs", f"{peer} (median)", "verdict"], rows)


def failures_section(session: Session) -> list[str]:
    lines = [f"- **{peer}** did not run: {why}" for peer, why in session.skipped.items()]
    for (key, peer), failure in session.failures.items():
        first_line = failure.message.strip().splitlines()[-1] if failure.message.strip() else ""
        lines.append(f"- **{peer}** on {key}: {failure.kind} — `{first_line[:300]}`")
    return ["## Problems", "", *lines] if lines else []


def machine_section(session: Session) -> list[str]:
    return [f"- {name}: {value}" for name, value in session.machine.items()]


def render(session: Session) -> str:
    rounds = len(session.history)
    lines = [
        "# paralleltask benchmarks",
        "",
        *machine_section(session),
        f"- sizes: {session.sizes}",
        "",
        *(f"> **Warning:** {warning}\n" for warning in session.warnings),
        f"Every cell is the median over {rounds} round(s); ratios are taken within each round "
        "(peers interleaved, order rotated per round) and then their median is reported, with "
        "the min-max over rounds in brackets in the detailed tables. Speed-up = serial time / "
        "peer time (higher is better); '÷ X' = peer / X (lower is better); '—' = not "
        "applicable; '✗' = the peer failed (see Problems).",
        "",
        "## Summary",
        "",
        *summary_table(session),
        "",
        "## Bars for paralleltask",
        "",
        *bars_table(session),
        "",
        "## Details",
    ]
    for workload in session.suite:
        lines += ["", *workload_section(session, workload)]
    problems = failures_section(session)
    if problems:
        lines += ["", *problems]
    return "\n".join(lines) + "\n"
