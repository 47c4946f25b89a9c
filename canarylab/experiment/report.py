"""report.md, the plots and the terminal verdict table, from a results directory only.

``render_all(run_dir)`` is what the engine calls at the end of a run and what
``canarylab report RESULTS_DIR`` calls later: it needs no cluster, no
Prometheus, only the files the run saved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from canarylab.dashboard.build import UID as DASHBOARD_UID
from canarylab.experiment import results as res
from canarylab.experiment.analysis import analyse, pooled_histogram
from canarylab.experiment.collect import RepetitionCollection
from canarylab.experiment.load import parse_bombardier
from canarylab.experiment.spec import load_spec
from canarylab.experiment.vocabulary import (
    FAIL,
    INCONCLUSIVE,
    INVALID,
    PASS,
    STATISTICS,
    format_ms,
    format_pct,
)

VERDICT_STYLE: Mapping[str, str] = {
    PASS: "bold green",
    FAIL: "bold red",
    INCONCLUSIVE: "bold yellow",
    INVALID: "bold magenta",
}


def load_collections(run_dir: Path) -> list[RepetitionCollection]:
    files = sorted(
        (run_dir / res.PROM_DIR).glob("rep*.json"),
        key=lambda p: int(p.stem[3:]) if p.stem[3:].isdigit() else 0,
    )
    return [RepetitionCollection.from_dict(res.read_json(f)) for f in files if f.stem[3:].isdigit()]


def _ratio(x: Any) -> str:
    return "–" if x is None else f"{float(x) * 100:.1f}%"


def variant_label(name: str, v: Mapping[str, Any]) -> str:
    knobs = ", ".join(f"{k}={val}" for k, val in (v.get("env") or {}).items())
    return f"{name} ({v.get('threads')} threads{', ' + knobs if knobs else ''})"


def render_plots(run_dir: Path, summary: Mapping[str, Any]) -> list[Path]:
    from canarylab.experiment import plots  # noqa: PLC0415 - matplotlib is slow to import

    reps = load_collections(run_dir)
    variants: Mapping[str, Any] = summary.get("variants") or {}
    labels = {name: variant_label(name, v) for name, v in variants.items()}
    out_dir = run_dir / res.PLOTS_DIR
    made: list[Path] = []
    sub = f"{summary.get('experiment')} · {summary.get('target')} target · {summary.get('started_at')}"
    for name in variants:
        made.append(plots.plot_over_time(reps, name, out_dir / f"latency-over-time-{name}.png", subtitle=sub))
    made.append(plots.plot_comparison(reps, list(variants), out_dir / "latency-over-time.png", labels))
    hists = {}
    for name in variants:
        h = pooled_histogram(reps, "app_response", name)
        if h is not None:
            hists[name] = h
    made.append(
        plots.plot_distribution(
            hists,
            out_dir / "latency-distribution.png",
            labels=labels,
            client_max_ms={n: v.get("max_ms") for n, v in variants.items()},
        )
    )
    return made


def grafana_link(summary: Mapping[str, Any], environment: Mapping[str, Any]) -> str | None:
    """The Grafana dashboard for the run's time window, where the target has a Grafana (the lab)."""
    target: Mapping[str, Any] = environment.get("target") or {}
    grafana = target.get("grafana_url")
    started, finished = summary.get("started_at"), summary.get("finished_at")
    if not grafana or not started or not finished:
        return None
    try:
        start_ms = int(datetime.fromisoformat(str(started)).timestamp() * 1000)
        end_ms = int(datetime.fromisoformat(str(finished)).timestamp() * 1000)
    except ValueError:
        return None
    url = f"{str(grafana).rstrip('/')}/d/{DASHBOARD_UID}/?from={start_ms}&to={end_ms}"
    namespace = re.search(r'namespace="([^"]+)"', str(target.get("selector") or ""))
    return url + (f"&var-namespace={namespace.group(1)}" if namespace else "")


def render_markdown(  # noqa: PLR0912, PLR0915 - a report is a long list of sections
    summary: Mapping[str, Any], environment: Mapping[str, Any] | None = None
) -> str:
    env = environment or {}
    variants: Mapping[str, Any] = summary.get("variants") or {}
    comp: Mapping[str, Any] = summary.get("comparison") or {}
    seed: Mapping[str, Any] = summary.get("seed_criterion") or {}
    timing: Mapping[str, Any] = summary.get("timing") or {}
    lines: list[str] = []
    add = lines.append
    add(f"# {summary.get('experiment')}: **{summary.get('verdict')}**")
    add("")
    add(f"> {summary.get('reason')}")
    add("")
    add(f"*Hypothesis:* {summary.get('hypothesis', '')}")
    add("")
    add(
        f"Target **{summary.get('target')}**, {summary.get('started_at')} → {summary.get('finished_at')}. "
        f"Load: bombardier, **{summary.get('rate_per_variant')} req/s to each variant** "
        f"(rate from {summary.get('rate_source', 'spec')}), {summary.get('repetitions')} × "
        f"{summary.get('duration_s')} s after a {summary.get('warmup_s')} s warm-up, "
        f"{summary.get('connections')} connections, {summary.get('timeout_s')} s timeout."
    )
    link = grafana_link(summary, env)
    if link:
        add(f"Grafana dashboard for this run's time window: <{link}>")
    if timing:
        add(
            f"Time: {timing.get('load_seconds')} s under load, {timing.get('total_seconds')} s in all "
            f"(overhead {timing.get('overhead_seconds')} s)."
        )
    add("")
    add("## Verdict table")
    add("")
    add("Client side (bombardier, exact; percentiles averaged over repetitions, max the largest):")
    add("")
    add("| variant | threads | target req/s | achieved req/s | requests | errors | p50 ms | p90 ms | p95 ms "
        "| p99 ms | max ms |")  # fmt: skip
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in variants.items():
        add(
            f"| {variant_label(name, v)} | {v.get('threads')} | {v.get('target_rps')} | "
            f"{format_ms(v.get('achieved_rps'))} | {v.get('requests')} | "
            f"{v.get('errors')} ({_ratio(v.get('error_ratio'))}) | "
            + " | ".join(format_ms(v.get(f"{s}_ms")) for s in STATISTICS)
            + " |"
        )
    add("")
    add(
        "Server side (Prometheus): the app's view of the model-service response time "
        "(histogram; its max is only a bucket bound), and the model-service's processing time "
        "(max exact, from its rolling window maximum):"
    )
    add("")
    add("| variant | response p50 | p90 | p95 | p99 | max (bound) | processing p50 | p95 | max (exact) |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in variants.items():
        s, p = v.get("server") or {}, v.get("processing") or {}
        add(
            f"| {name} | "
            + " | ".join(format_ms(s.get(f"{k}_ms")) for k in ("p50", "p90", "p95", "p99"))
            + f" | ≤ {format_ms(s.get('max_ms'))} | {format_ms(p.get('p50_ms'))} "
            f"| {format_ms(p.get('p95_ms'))} | {format_ms(p.get('max_ms'))} |"
        )
    add("")
    add("## Comparison and uncertainty")
    add("")
    add(
        f"Relative change = {summary.get('candidate')} / {summary.get('baseline')} − 1 (negative is faster). "
        f"Decided by: {comp.get('decided_by')}. PASS needs every deciding interval at or below "
        f"−{float(comp.get('min_reduction') or 0) * 100:.0f}%."
    )
    add("")
    conf = float(comp.get("confidence") or 0.95) * 100
    add(f"| statistic | {summary.get('baseline')} ms | {summary.get('candidate')} ms | change | "
        f"{conf:.0f}% CI | decides | client-side change |")  # fmt: skip
    add("|---|---:|---:|---:|---|---|---:|")
    changes: Mapping[str, Any] = comp.get("changes") or {}
    deciding = set(comp.get("statistics") or [])
    client_change: Mapping[str, Any] = comp.get("client_change") or {}
    for stat in STATISTICS:
        e = changes.get(stat)
        if not e:
            continue
        add(
            f"| {stat} | {format_ms(_x1000(e.get('baseline')))} | {format_ms(_x1000(e.get('candidate')))} | "
            f"{format_pct(e.get('change'))} | "
            f"{format_pct(e.get('ci_low'))} .. {format_pct(e.get('ci_high'))} | "
            f"{'yes' if stat in deciding else ''} | {format_pct(client_change.get(stat))} |"
        )
    if changes:
        first = next(iter(changes.values()))
        add("")
        add(f"Method: {first.get('method')}.")
    across = comp.get("across_repetitions")
    within = comp.get("within_run") or {}
    if across and within:
        add("")
        add("Within-run intervals, for comparison (bootstrap of the request-level histogram):")
        add("")
        for stat in STATISTICS:
            e = within.get(stat)
            if e:
                add(
                    f"- {stat}: {format_pct(e.get('change'))} "
                    f"({format_pct(e.get('ci_low'))} .. {format_pct(e.get('ci_high'))})"
                )
    spreads = {n: v.get("spread") for n, v in variants.items() if v.get("spread")}
    if spreads:
        add("")
        add("Spread across repetitions (client side, ms: mean ± sd [min .. max]):")
        add("")
        add("| variant | " + " | ".join(STATISTICS) + " |")
        add("|---|" + "---|" * len(STATISTICS))
        for n, sp in spreads.items():
            cells = []
            for stat in STATISTICS:
                d = sp.get(f"{stat}_ms") or {}
                cells.append(
                    f"{format_ms(d.get('mean'))} ± {format_ms(d.get('std'))} "
                    f"[{format_ms(d.get('min'))} .. {format_ms(d.get('max'))}]"
                )
            add(f"| {n} | " + " | ".join(cells) + " |")
    add("")
    add("## The seed's criterion (reported, not deciding)")
    add("")
    add(
        f"*{seed.get('statement', '')}*, computed exactly as stated from the "
        f"**{seed.get('which_maximum')}**: "
        f"{format_ms(seed.get('baseline_max_ms'))} ms → {format_ms(seed.get('candidate_max_ms'))} ms "
        f"({format_pct(seed.get('change'))}): **{seed_result(seed)}**."
    )
    if seed.get("exact") is False:
        add(
            "The model-service went unscraped for longer than its rolling maximum's window "
            "(a scrape gap), so a larger maximum may have been missed: the maximum is not exact "
            "and the criterion cannot be decided."
        )
    cl = seed.get("client") or {}
    add(
        "The same criterion on the client's exact maximum latency: "
        f"{format_ms(cl.get('baseline_max_ms'))} ms → "
        f"{format_ms(cl.get('candidate_max_ms'))} ms ({format_pct(cl.get('change'))})."
    )
    add(
        "The maximum of one run is a single extreme observation: it moves with one slow request (a GC "
        "pause, a scheduler hiccup), so it never decides the verdict alone (docs/experiment.md)."
    )
    add("")
    add("## Validity")
    add("")
    validity: Mapping[str, Any] = summary.get("validity") or {}
    add(
        f"Valid: **{'yes' if validity.get('valid') else 'no'}**. Achieved rate = "
        f"{validity.get('achieved_rate_definition')}; INVALID below "
        f"{float(validity.get('min_achieved_rate') or 0.95) * 100:.0f}% of the target."
    )
    for d in summary.get("details") or []:
        if d != summary.get("reason"):
            add(f"- {d}")
    for w in validity.get("warnings") or []:
        add(f"- warning: {w}")
    cal = summary.get("calibration")
    if cal:
        add("")
        add("## Calibration")
        add("")
        add(f"Chose **{cal.get('chosen_rate')} req/s**: {cal.get('reason')} (unloaded p95 "
            f"{format_ms(cal.get('unloaded_p95_ms'))} ms, {cal.get('seconds')} s).")  # fmt: skip
        add("")
        add("| step | rate | p95 ms | errors |")
        add("|---:|---:|---:|---:|")
        for st in cal.get("steps") or []:
            p95 = format_ms(st.get("p95_ms"))
            add(f"| {st.get('step')} | {st.get('rate')} | {p95} | {st.get('errors')} |")
    add("")
    add("## Plots")
    add("")
    for name in variants:
        add(f"![{name} over time](plots/latency-over-time-{name}.png)")
        add("")
    add("![both variants over time](plots/latency-over-time.png)")
    add("")
    add("![latency distribution](plots/latency-distribution.png)")
    add("")
    add("## Environment")
    add("")
    tools = env.get("tools") or {}
    target = env.get("target") or {}
    versions = target.get("versions") or {}
    bomb = tools.get("bombardier") or {}
    add(f"- bombardier: {bomb.get('version')} ({bomb.get('path')})")
    for k, v in versions.items():
        if "/version" not in k:
            add(f"- {k}: {v}")
    if target.get("ports"):
        add(f"- ports: {', '.join(f'{k} {p}' for k, p in target['ports'].items())}")
    rules = target.get("rules") or {}
    if rules.get("file"):
        state = "loaded" if rules.get("loaded") else "not loaded"
        add(
            f"- Prometheus rules: {rules['file']} ({state}: {str(rules.get('detail', '')).splitlines()[-1:]})"
        )
    add("- every knob, process and environment variable: environment.json; raw data: load/, prometheus/")
    add("")
    return "\n".join(lines)


def _x1000(x: Any) -> float | None:
    return None if x is None else float(x) * 1000.0


def reanalyse(run_dir: Path) -> dict[str, Any]:
    """Recompute summary.json's analysis from the run's raw data (bombardier JSON, Prometheus results).

    The analysis is seeded from the spec, so the saved data always gives the same numbers.
    """
    summary = dict(res.read_json(run_dir / res.SUMMARY))
    spec = load_spec(run_dir / res.SPEC)
    reps = load_collections(run_dir)
    client = {
        v.name: [
            parse_bombardier((run_dir / res.load_file("rep", v.name, repetition=r.repetition)).read_text())
            for r in reps
        ]
        for v in spec.variants
    }
    summary.update(analyse(spec, client, reps, target_restarts=summary.get("target_restarts") or {}))
    res.write_json(run_dir / res.SUMMARY, summary)
    return summary


def render_all(run_dir: Path) -> dict[str, Any]:
    """Re-render report.md and the plots of ``run_dir`` from its saved files; return the summary."""
    summary = res.read_json(run_dir / res.SUMMARY)
    env_path = run_dir / res.ENVIRONMENT
    environment = res.read_json(env_path) if env_path.exists() else {}
    render_plots(run_dir, summary)
    (run_dir / res.REPORT).write_text(render_markdown(summary, environment))
    return dict(summary)


def seed_result(seed: Mapping[str, Any]) -> str:
    """The outcome: "met", "not met", "unknown (scrape gap)" or "no data" (old summaries too)."""
    if seed.get("result"):
        return str(seed["result"])
    met = seed.get("met")
    return "met" if met else "not met" if met is not None else "no data"


def verdict_table(summary: Mapping[str, Any]) -> Group:
    """The verdict table the command prints at the end: per variant, then the comparison."""
    verdict = str(summary.get("verdict"))
    style = VERDICT_STYLE.get(verdict, "bold")
    table = Table(title=f"{summary.get('experiment')} ({summary.get('target')} target)", title_justify="left")
    table.add_column("variant")
    table.add_column("threads", justify="right")
    table.add_column("req/s (target)", justify="right")
    table.add_column("errors", justify="right")
    for s in STATISTICS:
        table.add_column(f"{s} ms", justify="right")
    table.add_column("server p95 ms", justify="right")
    table.add_column("processing max ms", justify="right")
    for name, v in (summary.get("variants") or {}).items():
        table.add_row(
            name,
            str(v.get("threads")),
            f"{format_ms(v.get('achieved_rps'))} ({v.get('target_rps'):g})",
            f"{v.get('errors')} ({_ratio(v.get('error_ratio'))})",
            *(format_ms(v.get(f"{s}_ms")) for s in STATISTICS),
            format_ms((v.get("server") or {}).get("p95_ms")),
            format_ms((v.get("processing") or {}).get("max_ms")),
        )
    comp = summary.get("comparison") or {}
    conf = float(comp.get("confidence") or 0.95) * 100
    changes = Table(title=f"{summary.get('candidate')} vs {summary.get('baseline')}", title_justify="left")
    for col in ("statistic", "change", f"{conf:.0f}% CI", "decides"):
        changes.add_column(col, justify="left" if col in ("statistic", "decides") else "right")
    deciding = comp.get("statistics") or []
    for stat, e in (comp.get("changes") or {}).items():
        changes.add_row(
            stat,
            format_pct(e.get("change")),
            f"{format_pct(e.get('ci_low'))} .. {format_pct(e.get('ci_high'))}",
            "yes" if stat in deciding else "",
        )
    seed = summary.get("seed_criterion") or {}
    changes.add_row(
        f"seed: max {seed.get('source', '')} ({'exact' if seed.get('exact', True) else 'not exact'})",
        format_pct(seed.get("change")),
        "no interval: one extreme value",
        f"no ({seed_result(seed)})",
    )
    verdict_text = Text.assemble(
        ("verdict: ", "bold"), (verdict, style), (f"  {summary.get('reason', '')}", "")
    )
    return Group(table, changes, verdict_text)


def verdict_line(summary: Mapping[str, Any]) -> str:
    return (
        f"verdict: {summary.get('verdict')}: {summary.get('reason')} (results: {summary.get('results_dir')})"
    )
