"""report.md, the plots and the terminal verdict table, from a results directory only.

``render_all(run_dir)`` is what the engine calls at the end of a run and what
``canarylab report RESULTS_DIR`` calls later: it needs no cluster, no
Prometheus, only the files the run saved.  Everything is rendered from the
types of :mod:`canarylab.experiment.summary` (summary.json of any schema this
code reads, old results too); ``render_markdown`` is one small renderer per
section.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from canarylab.dashboard.build import UID as DASHBOARD_UID
from canarylab.errors import CanarylabError
from canarylab.experiment import results as res
from canarylab.experiment.analysis import analyse, pooled_histogram
from canarylab.experiment.collect import APP_RESPONSE, RepetitionCollection
from canarylab.experiment.load import parse_bombardier
from canarylab.experiment.spec import spec_from_dict
from canarylab.experiment.summary import (
    QUANTILE_STATISTICS,
    PodFigures,
    RunEnvironment,
    Spread,
    Summary,
    VariantFigures,
    as_environment,
    as_summary,
)
from canarylab.experiment.vocabulary import (
    FAIL,
    INCONCLUSIVE,
    INVALID,
    MIN_REPETITIONS_TO_PASS,
    MISSING,
    PASS,
    STATISTICS,
    format_ms,
    format_pct,
    seconds_to_ms,
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


def _ratio(x: float | None) -> str:
    return MISSING if x is None else f"{x * 100:.1f}%"


def variant_label(name: str, v: VariantFigures) -> str:
    knobs = ", ".join(f"{k}={val}" for k, val in v.env.items())
    return f"{name} ({v.threads} threads{', ' + knobs if knobs else ''})"


def render_plots(run_dir: Path, summary: Summary) -> list[Path]:
    from canarylab.experiment import plots  # noqa: PLC0415 - matplotlib is slow to import

    reps = load_collections(run_dir)
    variants = summary.variants
    labels = {name: variant_label(name, v) for name, v in variants.items()}
    out_dir = run_dir / res.PLOTS_DIR
    made: list[Path] = []
    sub = f"{summary.experiment} · {summary.target} target · {summary.started_at}"
    for name in variants:
        made.append(plots.plot_over_time(reps, name, out_dir / f"latency-over-time-{name}.png", subtitle=sub))
    made.append(plots.plot_comparison(reps, list(variants), out_dir / "latency-over-time.png", labels))
    if summary.load_regime is not None:  # its section links the plot
        load_plot = out_dir / "load-over-time.png"
        sizes = {
            name: f"{name}: {v.threads} threads × {v.processes} process{'es' if v.processes > 1 else ''}"
            for name, v in summary.load_regime.variants.items()
        }
        made.append(plots.plot_load(reps, list(variants), load_plot, sizes, subtitle=sub))
    hists = {}
    for name in variants:
        h = pooled_histogram(reps, APP_RESPONSE, name)
        if h is not None:
            hists[name] = h
    made.append(
        plots.plot_distribution(
            hists,
            out_dir / "latency-distribution.png",
            labels=labels,
            client_max_ms={n: v.client.max_ms for n, v in variants.items()},
        )
    )
    if summary.calibration is not None:
        made.append(plots.plot_calibration(summary.calibration, out_dir / "calibration.png", subtitle=sub))
    return made


def grafana_link(
    summary: Summary | Mapping[str, Any], environment: RunEnvironment | Mapping[str, Any] | None
) -> str | None:
    """The Grafana dashboard for the run's time window, where the target has a Grafana (the lab)."""
    s, env = as_summary(summary), as_environment(environment)
    if not env.grafana_url or not s.started_at or not s.finished_at:
        return None
    try:
        start_ms = int(datetime.fromisoformat(s.started_at).timestamp() * 1000)
        end_ms = int(datetime.fromisoformat(s.finished_at).timestamp() * 1000)
    except ValueError:
        return None
    url = f"{env.grafana_url.rstrip('/')}/d/{DASHBOARD_UID}/?from={start_ms}&to={end_ms}"
    namespace = re.search(r'namespace="([^"]+)"', env.selector)
    return url + (f"&var-namespace={namespace.group(1)}" if namespace else "")


# --- report.md, one section at a time ------------------------------------------------------------


def _header(s: Summary, env: RunEnvironment) -> list[str]:
    lines = [
        f"# {s.experiment}: **{s.verdict}**",
        "",
        f"> {s.reason}",
        "",
        f"*Hypothesis:* {s.hypothesis}",
        "",
        f"Target **{s.target}**, {s.started_at} → {s.finished_at}. "
        f"Load: bombardier, **{s.rate_per_variant} req/s to each variant** "
        f"(rate from {s.rate_source}), {s.repetitions} × "
        f"{s.duration_s} s after a {s.warmup_s} s warm-up, "
        f"{s.connections} connections, {s.timeout_s} s timeout.",
    ]
    link = grafana_link(s, env)
    if link:
        lines.append(f"Grafana dashboard for this run's time window: <{link}>")
    if s.timing:
        t = s.timing
        lines.append(
            f"Time: {t.load_seconds} s under load, {t.total_seconds} s in all "
            f"(overhead {t.overhead_seconds} s)."
        )
    return [*lines, ""]


def _verdict_tables(s: Summary) -> list[str]:
    lines = [
        "## Verdict table",
        "",
        "Client side (bombardier, exact; percentiles averaged over repetitions, max the largest):",
        "",
        "| variant | threads | target req/s | achieved req/s | requests | errors | p50 ms | p90 ms | p95 ms "
        "| p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in s.variants.items():
        lines.append(
            f"| {variant_label(name, v)} | {v.threads} | {v.target_rps} | "
            f"{format_ms(v.achieved_rps)} | {v.requests} | {v.errors} ({_ratio(v.error_ratio)}) | "
            + " | ".join(format_ms(v.client.ms(st)) for st in STATISTICS)
            + " |"
        )
    lines += [
        "",
        "Server side (Prometheus): the app's view of the model-service response time "
        "(histogram; its max is only a bucket bound), and the model-service's processing time "
        "(max exact, from its rolling window maximum):",
        "",
        "| variant | response p50 | p90 | p95 | p99 | max (bound) | processing p50 | p95 | max (exact) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in s.variants.items():
        server, proc = v.server, v.processing
        lines.append(
            f"| {name} | "
            + " | ".join(format_ms(server.quantiles.ms(k)) for k in QUANTILE_STATISTICS)
            + f" | ≤ {format_ms(server.max_ms)} | {format_ms(proc.quantiles.p50_ms)} "
            f"| {format_ms(proc.quantiles.p95_ms)} | {format_ms(proc.max_ms)} |"
        )
    return [*lines, ""]


def _comparison(s: Summary) -> list[str]:
    comp = s.comparison
    lines = [
        "## Comparison and uncertainty",
        "",
        f"Relative change = {s.candidate} / {s.baseline} − 1 (negative is faster). "
        f"Decided by: {comp.decided_by}. PASS needs every deciding interval at or below "
        f"−{comp.min_reduction * 100:.0f}%, across {MIN_REPETITIONS_TO_PASS} or more repetitions "
        "(one run's interval cannot see run-to-run variation); FAIL, an interval wholly above 0 "
        "(slower) or a broken candidate.",
        "",
        f"| statistic | {s.baseline} ms | {s.candidate} ms | change | "
        f"{comp.confidence * 100:.0f}% CI | decides | client-side change |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for stat in STATISTICS:
        e = comp.changes.get(stat)
        if e is None:
            continue
        lines.append(
            f"| {stat} | {format_ms(seconds_to_ms(e.baseline, None))} | "
            f"{format_ms(seconds_to_ms(e.candidate, None))} | {format_pct(e.change)} | "
            f"{format_pct(e.ci_low)} .. {format_pct(e.ci_high)} | "
            f"{'yes' if stat in comp.statistics else ''} | {format_pct(comp.client_change.get(stat))} |"
        )
    if comp.changes:
        first = next(iter(comp.changes.values()))
        lines += ["", f"Method: {first.method}."]
    if comp.across_repetitions and comp.within_run:
        lines += ["", "Within-run intervals, for comparison (bootstrap of the request-level histogram):", ""]
        for stat in STATISTICS:
            w = comp.within_run.get(stat)
            if w is not None:
                lines.append(
                    f"- {stat}: {format_pct(w.change)} ({format_pct(w.ci_low)} .. {format_pct(w.ci_high)})"
                )
    return lines + _spread(s)


def _spread(s: Summary) -> list[str]:
    spreads = {n: v.spread for n, v in s.variants.items() if v.spread}
    if not spreads:
        return []
    lines = [
        "",
        "Spread across repetitions (client side, ms: mean ± sd [min .. max]):",
        "",
        "| variant | " + " | ".join(STATISTICS) + " |",
        "|---|" + "---|" * len(STATISTICS),
    ]
    for n, sp in spreads.items():
        cells = []
        for stat in STATISTICS:
            d = sp.get(stat) or Spread(n=0, mean=None, std=None, min=None, max=None)
            cells.append(
                f"{format_ms(d.mean)} ± {format_ms(d.std)} [{format_ms(d.min)} .. {format_ms(d.max)}]"
            )
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def _seed(s: Summary) -> list[str]:
    seed = s.seed_criterion
    lines = [
        "",
        "## The seed's criterion (reported, not deciding)",
        "",
        f"*{seed.statement}*, computed exactly as stated from the **{seed.which_maximum}**: "
        f"{format_ms(seed.baseline_max_ms)} ms → {format_ms(seed.candidate_max_ms)} ms "
        f"({format_pct(seed.change)}): **{seed.result}**.",
    ]
    if not seed.exact:
        lines.append(
            "The model-service went unscraped for longer than its rolling maximum's window "
            "(a scrape gap), so a larger maximum may have been missed: the maximum is not exact "
            "and the criterion cannot be decided."
        )
    cl = seed.client
    lines += [
        "The same criterion on the client's exact maximum latency: "
        f"{format_ms(cl.baseline_max_ms)} ms → {format_ms(cl.candidate_max_ms)} ms "
        f"({format_pct(cl.change)}).",
        "The maximum of one run is a single extreme observation: it moves with one slow request (a GC "
        "pause, a scheduler hiccup), so it never decides the verdict alone (docs/experiment.md).",
        "",
    ]
    return lines


def _validity(s: Summary) -> list[str]:
    v = s.validity
    lines = [
        "## Validity",
        "",
        f"Valid: **{'yes' if v.valid else 'no'}**. Achieved rate = {v.achieved_rate_definition}; "
        f"INVALID below {v.min_achieved_rate * 100:.0f}% of the target.",
    ]
    busy = [b for b in v.host_cpu_busy if b is not None]
    if busy:
        lines.append(
            f"The host's CPUs were {', '.join(f'{b:.0%}' for b in busy)} busy in the repetitions "
            f"(INVALID above {v.max_host_cpu_busy or 0:.0%}: a saturated host measures itself)."
        )
    lines += [f"- {d}" for d in s.details if d != s.reason]
    lines += [f"- warning: {w}" for w in v.warnings]
    return lines


def _calibration(s: Summary) -> list[str]:
    cal = s.calibration
    if cal is None:
        return []
    lines = [
        "",
        "## Calibration",
        "",
        f"Chose **{cal.chosen_rate} req/s**: {cal.reason} (unloaded p95 "
        f"{format_ms(cal.unloaded_p95_ms)} ms, {cal.seconds} s; both variants loaded, the "
        f"baseline's p95 decides; a step is two halves, the second's p95 counts).",
        "",
        "| step | role | rate | p95 ms (1st half) | p95 ms | × unloaded | errors | kind: why |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for st in cal.steps:
        ratio = MISSING if st.p95_vs_unloaded is None else f"{st.p95_vs_unloaded:.2f}"
        lines.append(
            f"| {st.step} | {st.role} | {st.rate} | {format_ms(st.first_half_p95_ms)} | "
            f"{format_ms(st.p95_ms)} | {ratio} | {st.errors} | {st.kind or MISSING}: {st.why} |"
        )
    lines += ["", "![calibration: the baseline's p95 by rate](plots/calibration.png)"]
    return lines


def _load_regime(s: Summary) -> list[str]:
    regime = s.load_regime
    if regime is None:
        return []
    lines = ['## The load: what "significant load" meant in this run', "", regime.statement, ""]
    lines += [
        "| variant | pods × processes × threads | in flight (mean) | threads busy "
        "| waiting for a thread (mean) | (max) | CPU per process (1 core = 100%) | CPU ms per request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def share(x: float | None) -> str:
        return MISSING if x is None else f"{x:.0%}"

    def number(x: float | None, digits: int = 2) -> str:
        return MISSING if x is None else f"{x:.{digits}f}"

    for name, v in regime.variants.items():
        most = MISSING if v.max_queue is None else f"{v.max_queue:g}"
        lines.append(
            f"| {name} | {v.replicas} × {v.processes} × {v.threads} | {number(v.mean_in_flight)} "
            f"| {share(v.utilisation)} "
            f"| {number(v.mean_queue)} | {most} | {share(v.cpu_per_process)} "
            f"| {number(v.cpu_ms_per_request, 1)} |"
        )
    if regime.host_cpus is not None:
        lines += ["", f"The host has {regime.host_cpus} CPUs: CPU-bound work scales by processes up to that."]
    lines += ["", "![threads busy, queue and CPU over time](plots/load-over-time.png)"]
    return [*lines, "", *_pods(regime.pods)]


def _pods(pods: Sequence[PodFigures]) -> list[str]:
    """Per model-service pod: how the load spread over a variant's replicas, and how each served it."""
    if not pods:
        return []
    lines = [
        "### Per pod",
        "",
        "Each model-service pod's share of its variant's requests, over every repetition: an even "
        "spread means the replicas shared the load.",
        "",
        "| variant | pod | requests | share | processing p95 (ms) | CPU ms per request |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for p in pods:
        share = MISSING if p.share is None else f"{p.share:.0%}"
        p95 = format_ms(p.processing_p95_ms)
        cpu = MISSING if p.cpu_ms_per_request is None else f"{p.cpu_ms_per_request:.1f}"
        lines.append(f"| {p.variant} | {p.pod} | {p.requests:.0f} | {share} | {p95} | {cpu} |")
    return [*lines, ""]


def _sequential(s: Summary) -> list[str]:
    seq = s.sequential
    if seq is None:
        return []
    load = s.timing.load_seconds if s.timing else None
    when = (
        f"stopped after repetition **{seq.stopped_after} of at most {seq.max_repetitions}**"
        if seq.stopped_early
        else f"ran all **{seq.max_repetitions}** repetitions"
    )
    lines = [
        "## Sequential test: when and why it stopped",
        "",
        f"The run looked at the evidence after every repetition from repetition "
        f"{MIN_REPETITIONS_TO_PASS} on, and {when}"
        + (
            f", after {load:g} s of load ({'calibration and ' if s.calibration else ''}warm-up included)"
            if load is not None
            else ""
        )
        + f": {seq.why}.",
        "Each interval is an anytime-valid confidence sequence: it holds at every look at once, "
        "so stopping at the first that decides keeps the error rates (docs/experiment.md).",
        "",
        "| after repetition | load s | deciding intervals | decision |",
        "|---:|---:|---|---|",
    ]
    for look in seq.looks:
        intervals = "; ".join(
            f"{st} {format_pct(ch.change)} ({format_pct(ch.ci_low)} .. {format_pct(ch.ci_high)})"
            for st, ch in look.changes.items()
        )
        lines.append(f"| {look.repetition} | {look.load_seconds:g} | {intervals} | {look.decision} |")
    return [*lines, ""]


def _plots(s: Summary) -> list[str]:
    lines = ["", "## Plots", ""]
    for name in s.variants:
        lines += [f"![{name} over time](plots/latency-over-time-{name}.png)", ""]
    lines += [
        "![both variants over time](plots/latency-over-time.png)",
        "",
        "![latency distribution](plots/latency-distribution.png)",
        "",
    ]
    return lines


def _environment(env: RunEnvironment) -> list[str]:
    lines = ["## Environment", "", f"- bombardier: {env.bombardier_version} ({env.bombardier_path})"]
    lines += [f"- {k}: {v}" for k, v in env.versions.items() if "/version" not in k]
    if env.ports:
        lines.append(f"- ports: {', '.join(f'{k} {p}' for k, p in env.ports.items())}")
    if env.rules_file:
        state = "loaded" if env.rules_loaded else "not loaded"
        lines.append(f"- Prometheus rules: {env.rules_file} ({state}: {env.rules_detail.splitlines()[-1:]})")
    lines += [
        "- every knob, process and environment variable: environment.json; raw data: load/, prometheus/",
        "",
    ]
    return lines


def render_markdown(
    summary: Summary | Mapping[str, Any], environment: RunEnvironment | Mapping[str, Any] | None = None
) -> str:
    """report.md (a mapping is read as summary.json / environment.json, any schema this code reads)."""
    s, env = as_summary(summary), as_environment(environment)
    sections = (
        _header(s, env),
        _load_regime(s),
        _sequential(s),
        _verdict_tables(s),
        _comparison(s),
        _seed(s),
        _validity(s),
        _calibration(s),
        _plots(s),
        _environment(env),
    )
    return "\n".join(line for section in sections for line in section)


def _deployment_warnings(run_dir: Path) -> list[str]:
    """The engine's finding, saved in environment.json, of where the variants that ran were not the file's."""
    env_path = run_dir / res.ENVIRONMENT
    data = res.read_json(env_path) if env_path.exists() else {}
    found = data.get("deployment_warnings") if isinstance(data, Mapping) else None
    return [str(w) for w in found] if isinstance(found, list) else []


def reanalyse(run_dir: Path) -> Summary:
    """Recompute summary.json's analysis from the run's raw data (bombardier JSON, Prometheus results),
    write it (as the current schema) and return it.

    The analysis is seeded from the spec, so the saved data always gives the same numbers.
    """
    saved = read_summary(run_dir)
    data = res.read_yaml(run_dir / res.SPEC)
    spec = spec_from_dict(data, str(run_dir / res.SPEC))
    if isinstance(data, Mapping) and "sequential" not in data:
        # Written before the metric selected anything and p99 could decide: then
        # `metric: app_response_seconds` was the only value there was, and bombardier's p95
        # alone decided across repetitions.  Read it as it was meant, not as it now reads.
        decide = replace(spec.criteria.decide, p99_from_requests=0)
        spec = replace(spec, metric="client_latency", criteria=replace(spec.criteria, decide=decide))
    reps = load_collections(run_dir)
    client = {
        v.name: [
            parse_bombardier((run_dir / res.load_file("rep", v.name, repetition=r.repetition)).read_text())
            for r in reps
        ]
        for v in spec.variants
    }
    summary = saved.with_analysis(
        analyse(
            spec,
            client,
            reps,
            target_restarts=saved.target_restarts,
            deployment_warnings=_deployment_warnings(run_dir),
        )
    )
    res.write_json(run_dir / res.SUMMARY, summary.to_dict())
    return summary


def read_summary(run_dir: Path) -> Summary:
    """summary.json of ``run_dir``, of any schema this code reads (see :meth:`Summary.from_dict`)."""
    path = run_dir / res.SUMMARY
    data = res.read_json(path)
    if not isinstance(data, Mapping):
        raise CanarylabError(f"{path} is not a summary (a JSON object was expected)")
    try:
        return Summary.from_dict(data)
    except CanarylabError as err:
        raise CanarylabError(f"{path}: {err.message}", err.hint) from err


def render_all(run_dir: Path) -> Summary:
    """Re-render report.md and the plots of ``run_dir`` from its saved files; return the summary."""
    summary = read_summary(run_dir)
    env_path = run_dir / res.ENVIRONMENT
    environment = RunEnvironment.from_dict(res.read_json(env_path)) if env_path.exists() else RunEnvironment()
    render_plots(run_dir, summary)
    (run_dir / res.REPORT).write_text(render_markdown(summary, environment))
    return summary


def verdict_table(summary: Summary | Mapping[str, Any]) -> Group:
    """The verdict table the command prints at the end: per variant, then the comparison."""
    s = as_summary(summary)
    style = VERDICT_STYLE.get(s.verdict, "bold")
    table = Table(title=f"{s.experiment} ({s.target} target)", title_justify="left")
    table.add_column("variant")
    table.add_column("threads", justify="right")
    table.add_column("req/s (target)", justify="right")
    table.add_column("errors", justify="right")
    for stat in STATISTICS:
        table.add_column(f"{stat} ms", justify="right")
    table.add_column("server p95 ms", justify="right")
    table.add_column("processing max ms", justify="right")
    for name, v in s.variants.items():
        table.add_row(
            name,
            str(v.threads),
            f"{format_ms(v.achieved_rps)} ({v.target_rps:g})",
            f"{v.errors} ({_ratio(v.error_ratio)})",
            *(format_ms(v.client.ms(stat)) for stat in STATISTICS),
            format_ms(v.server.quantiles.p95_ms),
            format_ms(v.processing.max_ms),
        )
    comp = s.comparison
    changes = Table(title=f"{s.candidate} vs {s.baseline}", title_justify="left")
    for col in ("statistic", "change", f"{comp.confidence * 100:.0f}% CI", "decides"):
        changes.add_column(col, justify="left" if col in ("statistic", "decides") else "right")
    for stat, e in comp.changes.items():
        changes.add_row(
            stat,
            format_pct(e.change),
            f"{format_pct(e.ci_low)} .. {format_pct(e.ci_high)}",
            "yes" if stat in comp.statistics else "",
        )
    seed = s.seed_criterion
    changes.add_row(
        f"seed: max {seed.source} ({'exact' if seed.exact else 'not exact'})",
        format_pct(seed.change),
        "no interval: one extreme value",
        f"no ({seed.result})",
    )
    verdict_text = Text.assemble(("verdict: ", "bold"), (s.verdict, style), (f"  {s.reason}", ""))
    return Group(table, changes, verdict_text)


def verdict_line(summary: Summary | Mapping[str, Any]) -> str:
    s = as_summary(summary)
    return f"verdict: {s.verdict}: {s.reason} (results: {s.results_dir})"
