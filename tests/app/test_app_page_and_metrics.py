"""The review page is served with its script, and /metrics carries the contract's series."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

import canarylab_contract as contract
from sentiment_app.validation import MAX_REVIEW_CHARS


def test_page_has_a_labelled_form_and_the_script_that_calls_the_api(client: FlaskClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
    html = resp.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert re.search(r'<form id="review-form" data-api-path="' + re.escape(contract.APP_API_PATH) + '"', html)
    assert '<label for="review">' in html
    assert f'<textarea id="review" name="review" rows="6" maxlength="{MAX_REVIEW_CHARS}"' in html
    assert 'aria-live="polite"' in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no external CDN"
    script = re.search(r'<script src="([^"]+)"', html)
    assert script is not None
    js = client.get(script.group(1))
    assert js.status_code == 200
    source = js.get_data(as_text=True)
    assert "fetch(apiPath" in source
    assert "form.dataset.apiPath" in source
    assert 'method: "POST"' in source
    style = re.search(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert style is not None
    assert client.get(style.group(1)).status_code == 200


def test_metrics_have_the_contract_names_buckets_and_zeroed_series(client: FlaskClient) -> None:
    resp = client.get(contract.METRICS_PATH)
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(resp.get_data(as_text=True))}
    hist = families[contract.APP_MODEL_RESPONSE_SECONDS]
    assert hist.type == "histogram"
    bounds = [float(s.labels["le"]) for s in hist.samples if s.name.endswith("_bucket")]
    assert bounds[:-1] == list(contract.LATENCY_BUCKETS)
    assert {s.labels[contract.LABEL_VARIANT] for s in hist.samples} == {contract.CANARY}

    # prometheus_client names counter families without the _total suffix.
    requests_family = families[contract.APP_REQUESTS_TOTAL.removesuffix("_total")]
    outcomes = {
        s.labels[contract.LABEL_OUTCOME]: s.value
        for s in requests_family.samples
        if s.name.endswith("_total")
    }
    assert outcomes == {
        contract.OUTCOME_OK: 0,
        contract.OUTCOME_CLIENT_ERROR: 0,
        contract.OUTCOME_SERVER_ERROR: 0,
    }
    errors_family = families[contract.APP_MODEL_ERRORS_TOTAL.removesuffix("_total")]
    reasons = {s.labels[contract.LABEL_REASON] for s in errors_family.samples if s.name.endswith("_total")}
    assert reasons == {"timeout", "unavailable", "bad_status"}


def test_each_app_has_its_own_registry(make_app: Callable[..., Flask], fake_model_url: str) -> None:
    first = make_app(fake_model_url, variant=contract.STABLE).test_client()
    second = make_app(fake_model_url, variant=contract.CANARY).test_client()
    assert first.post(contract.APP_API_PATH, json={"review": "good"}).status_code == 200
    line = f'{contract.APP_REQUESTS_TOTAL}{{outcome="ok",variant="%s"}} %s'
    assert line % (contract.STABLE, "1.0") in first.get(contract.METRICS_PATH).get_data(as_text=True)
    second_text = second.get(contract.METRICS_PATH).get_data(as_text=True)
    assert line % (contract.CANARY, "0.0") in second_text
    assert f'variant="{contract.STABLE}"' not in second_text
