"""Static checks: the shared words of the experiment are defined once under canarylab/.

A *definition* is a literal collection (tuple, list, set, ``Literal[...]``, or
the keys of a dict) of string constants that holds every name of a vocabulary.
Each vocabulary must have exactly one, in its own module; everything else
derives from it (``get_args``) or names single members.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from canarylab.experiment.targets import TARGETS
from canarylab.experiment.targets.registry import FACTORIES
from canarylab.experiment.vocabulary import STATISTICS, VERDICT_EXIT_CODES, VERDICTS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "canarylab"
#: Known copies in files another owner is changing; each entry is a to-do, not a licence.
NOT_YET: dict[str, str] = {}


def _strings(node: ast.AST) -> set[str] | None:
    """The strings of a literal collection of string constants, else None."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        items: list[ast.expr | None] = list(node.elts)
    elif isinstance(node, ast.Dict):
        items = list(node.keys)
    else:
        return None
    if not items or not all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
        return None
    return {i.value for i in items if isinstance(i, ast.Constant)}


def definitions(source: str, names: tuple[str, ...]) -> list[int]:
    """Line numbers of the literal collections in ``source`` that hold all of ``names``."""
    want = set(names)
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if (found := _strings(node)) is not None and want <= found
    )


def definition_sites(names: tuple[str, ...], vocabulary: str) -> list[str]:
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if NOT_YET.get(str(path.relative_to(ROOT))) == vocabulary:
            continue
        for line in definitions(path.read_text(), names):
            sites.append(f"{path.relative_to(ROOT)}:{line}")
    return sites


def test_the_detector_finds_every_form_of_definition() -> None:
    source = """
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE", "INVALID")
Kind = Literal["PASS", "FAIL", "INCONCLUSIVE", "INVALID", "OTHER"]
STYLE = {"PASS": 1, "FAIL": 2, "INCONCLUSIVE": 3, "INVALID": 4}
choices = ["PASS", "FAIL", "INVALID", "INCONCLUSIVE"]
partial = ("PASS", "FAIL")
derived = get_args(Kind)
"""
    assert definitions(source, VERDICTS) == [2, 3, 4, 5]


@pytest.mark.parametrize(
    ("vocabulary", "home"),
    [
        (VERDICTS, "canarylab/experiment/vocabulary.py"),
        (STATISTICS, "canarylab/experiment/vocabulary.py"),
        (TARGETS, "canarylab/experiment/targets/base.py"),
    ],
    ids=["verdicts", "statistics", "target kinds"],
)
def test_each_vocabulary_is_defined_once(
    vocabulary: tuple[str, ...], home: str, request: pytest.FixtureRequest
) -> None:
    sites = definition_sites(vocabulary, request.node.callspec.id)
    assert len(sites) == 1, f"{', '.join(vocabulary)} defined more than once: {sites}"
    assert sites[0].startswith(f"{home}:"), sites


def test_every_verdict_has_an_exit_code_and_every_kind_a_factory() -> None:
    assert tuple(VERDICT_EXIT_CODES) == VERDICTS
    assert sorted(VERDICT_EXIT_CODES.values()) == [0, 1, 3, 4]
    assert tuple(FACTORIES) == TARGETS


def test_no_private_unit_formatters_are_left_in_the_experiment() -> None:
    """``_ms``/``_pct`` once existed four times with different results; vocabulary has them now."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        for base in (PACKAGE / "experiment", PACKAGE / "commands")
        for path in sorted(base.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name in ("_ms", "_pct")
    ]
    assert found == []


def test_experiment_yml_names_only_the_target_kinds() -> None:
    """experiment.yml cannot import TARGETS: every kind it compares or defaults to must be one."""
    text = (ROOT / "experiment.yml").read_text()
    yaml.safe_load(text)  # still YAML
    named = set(re.findall(r"canarylab_(?:engine_)?target\b[^\n]*?'(\w+)'", text))
    named |= set(re.findall(r"canarylab_(?:engine_)?target \| default\('(\w+)'\)", text))
    assert named, "experiment.yml no longer names a target kind: update this test"
    assert named <= set(TARGETS), f"kinds in experiment.yml that are not in TARGETS: {named - set(TARGETS)}"
