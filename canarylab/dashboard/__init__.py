"""The canarylab Grafana dashboard: generated from Python, validated, and checked against Prometheus.

- :mod:`.panels`: rows, time series, variables and annotations, with grafana-foundation-sdk's builders.
- :mod:`.build`: the canarylab dashboard itself, made from :mod:`canarylab.queries`.
- :mod:`.validate`: structural checks of any dashboard JSON.
- :mod:`.promql`: every panel query with the dashboard variables substituted.
- :mod:`.verify`: runs those queries against a real Prometheus.
- :mod:`.files`: the generated files committed to the repository.
- :mod:`.annotations`: experiment phase events as Grafana annotations.
"""
