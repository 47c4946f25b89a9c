"""Every PromQL query canarylab runs, written once.

The Grafana dashboard renders them with Grafana's variables; the experiment
engine renders the same templates with a fixed window and selector, so the
report's plots and the dashboard always show the same numbers.

Templates hold two placeholders: ``<sel>``, the label matchers inside a
selector's braces (may be empty), and ``<w>``, a range such as ``30s`` or
``$__rate_interval``.
"""

from __future__ import annotations

from dataclasses import dataclass

import canarylab_contract as c

#: Percentiles the report and the dashboard show.
PERCENTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)

V = c.LABEL_VARIANT


@dataclass(frozen=True)
class Query:
    key: str
    title: str
    template: str
    legend: str
    unit: str

    def render(self, window: str, selector: str = "") -> str:
        """PromQL for ``window``; ``selector`` is matchers like ``namespace="lab"``."""
        sel = selector
        # A matcher already in the template needs a comma before the extra ones.
        expr = self.template.replace("<sel>,", f"{sel}," if sel else "")
        return expr.replace("<sel>", sel).replace("<w>", window)


def _pct(q: float) -> str:
    return f"p{round(q * 100)}"


def _quantile(metric: str, q: float, key: str, title: str) -> Query:
    return Query(
        key=f"{key}_{_pct(q)}",
        title=f"{title} {_pct(q)}",
        template=f"histogram_quantile({q}, sum by (le, {V}) (rate({metric}_bucket{{<sel>}}[<w>])))",
        legend=f"{{{{{V}}}}} {_pct(q)}",
        unit="s",
    )


def app_response_quantile(q: float) -> Query:
    """Model-service response time as the app sees it (includes the thread-pool queue)."""
    return _quantile(c.APP_MODEL_RESPONSE_SECONDS, q, "app_response", "Model-service response time")


def processing_quantile(q: float) -> Query:
    """Time spent inside the model-service's /predict handler."""
    return _quantile(c.MODEL_PROCESSING_SECONDS, q, "processing", "Prediction processing time")


PROCESSING_MAX = Query(
    key="processing_max",
    title="Maximum prediction processing time (exact)",
    template=f"max by ({V}) (max_over_time({c.MODEL_PROCESSING_WINDOW_MAX_SECONDS}{{<sel>}}[<w>]))",
    legend=f"{{{{{V}}}}} max",
    unit="s",
)
#: The time of each sample of the processing-max gauge: each is a successful scrape of the
#: model-service (a failed scrape leaves none), so the gaps between them show whether
#: ``max_over_time`` of the gauge saw every request (a gap longer than the gauge's window
#: can hide a maximum).
PROCESSING_MAX_SAMPLE_TIMES = Query(
    key="processing_max_sample_times",
    title="Scrapes of the maximum processing time",
    template=f"timestamp({c.MODEL_PROCESSING_WINDOW_MAX_SECONDS}{{<sel>}})",
    legend=f"{{{{{V}}}}} scraped",
    unit="dateTimeAsIso",
)
REQUEST_RATE = Query(
    key="request_rate",
    title="Request rate",
    template=f"sum by ({V}) (rate({c.APP_REQUESTS_TOTAL}{{<sel>}}[<w>]))",
    legend=f"{{{{{V}}}}}",
    unit="reqps",
)
ERROR_RATIO = Query(
    key="error_ratio",
    title="Error ratio",
    template=(
        f'(sum by ({V}) (rate({c.APP_REQUESTS_TOTAL}{{<sel>,{c.LABEL_OUTCOME}!="{c.OUTCOME_OK}"}}[<w>]))'
        f" or sum by ({V}) (rate({c.APP_REQUESTS_TOTAL}{{<sel>}}[<w>])) * 0)"
        f" / sum by ({V}) (rate({c.APP_REQUESTS_TOTAL}{{<sel>}}[<w>]))"
    ),
    legend=f"{{{{{V}}}}}",
    unit="percentunit",
)
IN_FLIGHT = Query(
    key="in_flight",
    title="In-flight requests",
    template=f"sum by ({V}) ({c.MODEL_IN_FLIGHT}{{<sel>}})",
    legend=f"{{{{{V}}}}} in flight",
    unit="short",
)
THREADS = Query(
    key="threads",
    title="Configured threads",
    template=f"max by ({V}) ({c.MODEL_THREADS}{{<sel>}})",
    legend=f"{{{{{V}}}}} threads",
    unit="short",
)
QUEUE_DEPTH = Query(
    key="queue_depth",
    title="Requests waiting for a thread",
    template=f"sum by ({V}) ({c.MODEL_QUEUE_DEPTH}{{<sel>}})",
    legend=f"{{{{{V}}}}} queued",
    unit="short",
)

#: Busy threads against capacity: in-flight requests over the configured threads of every pod
#: (each pod's gauge counts processes x threads); 1 = every thread busy, and what arrives waits.
UTILISATION = Query(
    key="utilisation",
    title="Threads busy",
    template=f"sum by ({V}) ({c.MODEL_IN_FLIGHT}{{<sel>}}) / sum by ({V}) ({c.MODEL_THREADS}{{<sel>}})",
    legend=f"{{{{{V}}}}} busy",
    unit="percentunit",
)
#: The model-service's CPU, in cores.  Only its series carry the variant label: the app's
#: process collector has none, so ``variant!=""`` keeps the app out.
_MODEL_CPU = f'sum by ({V}) (rate({c.MODEL_PROCESS_CPU_SECONDS}{{<sel>,{V}!=""}}[<w>]))'
#: CPU per model-service process, as a share of one core: Python code holds the GIL, so a
#: process whose requests are CPU-bound stops near 1 however many threads it has.
CPU_PER_PROCESS = Query(
    key="cpu_per_process",
    title="CPU per model-service process (1 = one core)",
    template=f"{_MODEL_CPU} / sum by ({V}) ({c.MODEL_PROCESSES}{{<sel>}})",
    legend=f"{{{{{V}}}}} CPU per process",
    unit="percentunit",
)
#: CPU seconds the model-service spent per request it answered: work, not waiting.
CPU_PER_REQUEST = Query(
    key="cpu_per_request",
    title="Model-service CPU per request",
    template=f"{_MODEL_CPU} / sum by ({V}) (rate({c.MODEL_REQUESTS_TOTAL}{{<sel>}}[<w>]))",
    legend=f"{{{{{V}}}}} CPU per request",
    unit="s",
)

#: Per model-service pod (the contract's pod label): how the load spread over a variant's
#: replicas, and how each pod served it.  On the local target each variant has one.
P = c.LABEL_POD
POD_REQUESTS = Query(
    key="pod_requests",
    title="Requests answered per model-service pod",
    template=f"sum by ({V}, {P}) (increase({c.MODEL_REQUESTS_TOTAL}{{<sel>}}[<w>]))",
    legend=f"{{{{{V}}}}} {{{{{P}}}}}",
    unit="short",
)
POD_PROCESSING_P95 = Query(
    key="pod_processing_p95",
    title="Prediction processing time p95 per model-service pod",
    template=(
        f"histogram_quantile(0.95, sum by (le, {V}, {P}) "
        f"(rate({c.MODEL_PROCESSING_SECONDS}_bucket{{<sel>}}[<w>])))"
    ),
    legend=f"{{{{{V}}}}} {{{{{P}}}}} p95",
    unit="s",
)
POD_CPU_PER_REQUEST = Query(
    key="pod_cpu_per_request",
    title="Model-service CPU per request, per pod",
    template=(
        f'sum by ({V}, {P}) (rate({c.MODEL_PROCESS_CPU_SECONDS}{{<sel>,{V}!=""}}[<w>]))'
        f" / sum by ({V}, {P}) (rate({c.MODEL_REQUESTS_TOTAL}{{<sel>}}[<w>]))"
    ),
    legend=f"{{{{{V}}}}} {{{{{P}}}}} CPU per request",
    unit="s",
)


def app_response_ratio(q: float, numerator: str = c.CANARY, denominator: str = c.STABLE) -> Query:
    """``numerator``'s response-time quantile over ``denominator``'s (1 = equal; the alert watches it)."""

    def side(variant: str) -> str:
        return (
            f"histogram_quantile({q}, sum by (le) "
            f'(rate({c.APP_MODEL_RESPONSE_SECONDS}_bucket{{<sel>,{V}="{variant}"}}[<w>])))'
        )

    return Query(
        key=f"app_response_{_pct(q)}_ratio",
        title=f"Response time {_pct(q)}: {numerator} ÷ {denominator}",
        template=f"{side(numerator)} / {side(denominator)}",
        legend=f"{numerator} ÷ {denominator} {_pct(q)}",
        unit="none",
    )


# --- experiment engine: raw counters and health over an experiment window -------------


def bucket_counts(metric: str, key: str, title: str) -> Query:
    """Cumulative bucket counters by ``le`` and variant; their increase over a window is the
    request-level latency distribution the engine resamples."""
    return Query(
        key=f"{key}_buckets",
        title=f"{title}: cumulative bucket counts",
        template=f"sum by (le, {V}) ({metric}_bucket{{<sel>}})",
        legend=f"{{{{{V}}}}} le={{{{le}}}}",
        unit="short",
    )


APP_RESPONSE_BUCKETS = bucket_counts(
    c.APP_MODEL_RESPONSE_SECONDS, "app_response", "Model-service response time"
)
PROCESSING_BUCKETS = bucket_counts(c.MODEL_PROCESSING_SECONDS, "processing", "Prediction processing time")
#: Counter resets in the window: a restarted app or model-service starts its counters again.
APP_COUNTER_RESETS = Query(
    key="app_counter_resets",
    title="App counter resets (restarts)",
    template=f"sum by ({V}) (resets({c.APP_REQUESTS_TOTAL}{{<sel>}}[<w>]))",
    legend=f"{{{{{V}}}}} app resets",
    unit="short",
)
MODEL_COUNTER_RESETS = Query(
    key="model_counter_resets",
    title="Model-service counter resets (restarts)",
    template=f"sum by ({V}) (resets({c.MODEL_REQUESTS_TOTAL}{{<sel>}}[<w>]))",
    legend=f"{{{{{V}}}}} model-service resets",
    unit="short",
)
#: Share of successful scrapes per job in the window (1 = every scrape worked).
SCRAPE_SUCCESS = Query(
    key="scrape_success",
    title="Successful scrapes",
    template="avg by (job) (avg_over_time(up{<sel>}[<w>]))",
    legend="{{job}}",
    unit="percentunit",
)
