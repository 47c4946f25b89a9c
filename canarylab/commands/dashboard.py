"""`canarylab dashboard ...`: render, export, validate, import into Grafana, verify against Prometheus."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from canarylab import grafana
from canarylab.dashboard import files, validate
from canarylab.dashboard.build import INTERVAL_DEFAULT, INTERVAL_VAR, NAMESPACE_VAR, build
from canarylab.dashboard.promql import panel_queries, substitute, variable_values
from canarylab.dashboard.verify import verify
from canarylab.errors import CanarylabError
from canarylab.paths import project_root

REQUIRED_VARIABLES = ("datasource", NAMESPACE_VAR, INTERVAL_VAR)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dashboard", help="the Grafana dashboard and the Prometheus rules")
    dsub = p.add_subparsers(dest="dashboard_command", metavar="ACTION", required=True)

    r = dsub.add_parser("render", help="write the dashboard JSON")
    r.add_argument("--out", required=True, help="file to write ('-' for stdout)")
    r.set_defaults(func=_render)

    e = dsub.add_parser(
        "export",
        help="write the committed files: chart dashboard JSON, rules (chart + local), promtool tests",
    )
    e.add_argument("--check", action="store_true", help="only check that the committed files are current")
    e.set_defaults(func=_export)

    v = dsub.add_parser("validate", help="check a dashboard JSON's structure (default: a fresh render)")
    v.add_argument("file", nargs="?", help="dashboard JSON file")
    v.set_defaults(func=_validate)

    i = dsub.add_parser("import", help="create or replace the dashboard in a Grafana, in a folder")
    i.add_argument("--grafana-url", required=True, help="Grafana's root URL, e.g. http://192.168.56.10:3000")
    i.add_argument("--file", help="dashboard JSON to import (default: a fresh render)")
    i.add_argument(
        "--folder-uid",
        default=grafana.DEFAULT_FOLDER_UID,
        help="uid of the folder to create or reuse (default: %(default)s)",
    )
    i.add_argument("--folder", default=grafana.DEFAULT_FOLDER_TITLE, help="folder title")
    i.add_argument("--uid", help="import under this uid instead (a copy next to a provisioned one)")
    i.set_defaults(func=_import)

    q = dsub.add_parser("queries", help="print every panel's PromQL with the variables filled in")
    _query_args(q)
    q.set_defaults(func=_queries)

    c = dsub.add_parser("verify", help="run every panel's PromQL against Prometheus: no empty panel, no NaN")
    c.add_argument("--prometheus-url", required=True, help="Prometheus root URL, e.g. http://127.0.0.1:19090")
    c.add_argument(
        "--at", type=float, help="evaluate at this Unix time (default: now), e.g. a past run's end"
    )
    _query_args(c)
    c.set_defaults(func=_verify)


def _query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--window", default=INTERVAL_DEFAULT, help=f"value of ${INTERVAL_VAR} (default: %(default)s)"
    )
    p.add_argument(
        "--namespace", default=".*", help=f"regex for ${NAMESPACE_VAR} (default: %(default)s, i.e. All)"
    )
    p.add_argument("--file", help="dashboard JSON (default: a fresh render)")


def _load(path: str | None) -> dict[str, Any]:
    if path is None:
        return build()
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise CanarylabError(f"no such file: {path}") from err
    except json.JSONDecodeError as err:
        raise CanarylabError(f"{path} is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise CanarylabError(f"{path} holds no dashboard object")
    # Accept the API's export shape ({"dashboard": {...}, "meta": {...}}) too.
    inner = data.get("dashboard")
    return inner if isinstance(inner, dict) else data


def _render(args: argparse.Namespace) -> int:
    dashboard = build()
    validate.check(dashboard, REQUIRED_VARIABLES)
    text = files.dashboard_json(dashboard)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    root = project_root()
    if args.check:
        stale = files.stale(root)
        if stale:
            names = ", ".join(str(p.relative_to(root)) for p in stale)
            raise CanarylabError(f"out of date: {names}", "run `canarylab dashboard export` and commit")
        print("dashboard and rules files are current")
        return 0
    validate.check(build(), REQUIRED_VARIABLES)
    written = files.write(root)
    for path in written:
        print(f"wrote {path.relative_to(root)}")
    if not written:
        print("dashboard and rules files are current")
    return 0


def _validate(args: argparse.Namespace) -> int:
    dashboard = _load(args.file)
    required = REQUIRED_VARIABLES if args.file is None else ()
    validate.check(dashboard, required, name=args.file or "the rendered dashboard")
    panels = [p for p in dashboard.get("panels", []) if p.get("type") != "row"]
    queries = panel_queries(dashboard)
    print(f"ok: {len(panels)} panels, {len(queries)} queries, schemaVersion {dashboard['schemaVersion']}")
    return 0


def _import(args: argparse.Namespace) -> int:
    dashboard = _load(args.file)
    if args.uid:
        dashboard = {**dashboard, "uid": args.uid, "title": f"{dashboard.get('title', '')} ({args.uid})"}
    validate.check(dashboard, name=args.file or "the rendered dashboard")
    client = grafana.GrafanaClient(args.grafana_url, grafana.find_credentials())
    result = grafana.import_dashboard(client, dashboard, args.folder_uid, args.folder)
    verb = "created" if result.folder.created else "found"
    print(f"folder {result.folder.title!r} ({result.folder.uid}): {verb}")
    print(f"dashboard {result.uid} version {result.version}: {result.link(client.url)}")
    return 0


def _queries(args: argparse.Namespace) -> int:
    values = variable_values(args.window, args.namespace)
    for q in panel_queries(_load(args.file)):
        print(f"# {q.name}")
        print(substitute(q.expr, values))
    return 0


def _verify(args: argparse.Namespace) -> int:
    dashboard = _load(args.file)
    checks = verify(args.prometheus_url, dashboard, variable_values(args.window, args.namespace), at=args.at)
    for check in checks:
        status = "ok  " if check.ok else "FAIL"
        detail = f"{len(check.series)} series" if check.ok else check.problem
        print(f"{status} {check.query.name}: {detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"{len(failed)} of {len(checks)} panel queries failed", file=sys.stderr)
        return 1
    print(f"all {len(checks)} panel queries returned data")
    return 0
