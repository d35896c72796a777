"""report --engine dask / --scheduler: the per-group work runs as Dask tasks, with the same JSON
as the local engine (a local cluster in this process keeps the test fast)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from report_golden import comparable, notes

from supervise_nlp.cli import main

ARGS = ["--format", "json", "-q", "--bootstrap", "200", "--permutations", "199", "--min-notes", "10"]


def report(*args):
    res = CliRunner().invoke(main, ["report", *map(str, args)])
    assert res.exit_code == 0, res.output
    return comparable(json.loads(res.stdout))


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return notes(tmp_path_factory.mktemp("dask") / "notes.jsonl", n=1200, seed=3)


@pytest.mark.parametrize("by", [["--by", "team", "--milestone", "2024-09-01"], ["--by", "month", "--no-culture"],
                                ["--by", "team", "--by", "worker", "--no-culture"]])
def test_report_on_dask_equals_the_local_report(cluster, small, by):
    local = report(small, *by, *ARGS)
    dask = report(small, *by, *ARGS, "--scheduler", cluster.scheduler_address)
    assert dask == local
    assert len(local["groups"]) >= 3
    assert "summarise" in cluster.scheduler.task_prefixes  # the group summaries ran as Dask tasks


def test_dask_map_runs_tasks_in_order(cluster):
    from supervise_nlp.aggregate import summarise
    from supervise_nlp.report_dask import DaskMap, local_map

    rng = np.random.default_rng(1)
    args = [(rng.integers(0, 5, 40), rng.integers(0, 5, 40), rng.integers(0, 3, 40), rng.integers(0, 4, 40),
             np.ones(40, bool), False) for _ in range(6)]
    with DaskMap(cluster.scheduler_address) as mapper:
        got = mapper(summarise, args)
        assert mapper.tasks == 6
    want = local_map(summarise, args)
    assert [g["balance_ci"] for g in got] == [w["balance_ci"] for w in want]
    assert [g["notes"] for g in got] == [40] * 6
