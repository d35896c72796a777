"""The report's JSON is what it was before the note table went compact and the culture analysis
moved to codes (issue 14): nine saved reports (tests/data/report_golden, made by
``python -m tests.report_golden`` from the code before the change), compared key by key: strings,
counts and structure exactly, floating-point numbers to 1e-9 (relative, or absolute near zero),
since sums taken in another order may differ in the last bits. They were saved again once, when
the worker-outlier rule began to allow for ordinary between-worker variation: only the
``culture.outlier_rule`` and ``culture.outlier_workers`` keys changed then; and when the mixed
model came to be fitted on one BLAS thread (its figures had depended on the machine's thread
count): only ``culture.variance`` changed then, in one case."""

import json
import math

import pytest
from click.testing import CliRunner
from report_golden import CASES, GOLDEN, args_for, comparable, notes

from supervise_nlp.cli import main


def differences(got, want, path="", out=None) -> list[str]:
    """Where ``got`` and ``want`` differ (floats to 1e-9)."""
    out = [] if out is None else out
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            out.append(f"{path}: keys {sorted(set(got) ^ set(want))}")
        for k in set(got) & set(want):
            differences(got[k], want[k], f"{path}.{k}", out)
    elif isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            out.append(f"{path}: {len(got)} items, expected {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            differences(g, w, f"{path}[{i}]", out)
    elif isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            out.append(f"{path}: {got!r}, expected {want!r}")
    elif got != want or type(got) is not type(want):
        out.append(f"{path}: {got!r}, expected {want!r}")
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return notes(tmp_path_factory.mktemp("golden") / "golden.jsonl")


@pytest.mark.parametrize("case", list(CASES))
def test_report_json_is_unchanged(case, synthetic):
    res = CliRunner().invoke(main, ["report", *args_for(case, synthetic)])
    assert res.exit_code == 0, res.output
    got = comparable(json.loads(res.stdout))
    want = json.loads((GOLDEN / f"{case}.json").read_text(encoding="utf-8"))
    assert differences(got, want) == []


def test_differences_notices_a_change():
    assert differences({"a": [1.0, "x"]}, {"a": [1.0 + 1e-12, "x"]}) == []
    assert differences({"a": [1.01, "x"]}, {"a": [1.0, "x"]}) == [".a[0]: 1.01, expected 1.0"]
    assert differences({"a": 1}, {"a": True}) == [".a: 1, expected True"]
