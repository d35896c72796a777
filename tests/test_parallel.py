"""-j 2 and the Dask engine give output identical to -j 1: same records, same order, same rejects."""

import json
import shutil

import pytest
from click.testing import CliRunner

from supervise_nlp.cli import main


@pytest.fixture(scope="module")
def mixed_input(tmp_path_factory, data):
    """A real multi-chunk input: the held-out corpus twice over plus every kind of bad line."""
    from pathlib import Path

    d = tmp_path_factory.mktemp("par")
    corpus = Path(__file__).resolve().parents[1] / "corpora" / "sample" / "test_harrowden.jsonl"
    lines = corpus.read_text("utf-8").splitlines() * 5
    bad = (data / "notes.jsonl").read_text("utf-8").splitlines()
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line)
        if i % 37 == 0:
            mixed.append(bad[i % len(bad)])
    p = d / "mixed.jsonl"
    p.write_text("\n".join(mixed) + "\n", "utf-8")
    shutil.copy(data / "notes.csv", d / "notes.csv")
    return [str(p), str(d / "notes.csv")]


def run(inputs, tmp_path, name, *extra):
    out, rej = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.rejects.jsonl"
    res = CliRunner().invoke(main, ["classify", *inputs, "-o", str(out), "--rejects", str(rej), "-q", *extra])
    assert res.exit_code == 0, (res.output, res.exception)
    return out.read_text(), rej.read_text() if rej.exists() else ""


def test_two_processes_match_one(mixed_input, tmp_path):
    one = run(mixed_input, tmp_path, "j1", "-j", "1")
    two = run(mixed_input, tmp_path, "j2", "-j", "2")
    assert one == two
    records = [json.loads(line) for line in one[0].splitlines()]
    assert len(records) > 300 and records[0]["id"] == "har-0001"
    assert len(one[1].splitlines()) > 5


def test_dask_local_cluster_matches_one_process(mixed_input, tmp_path):
    pytest.importorskip("dask.distributed")
    one = run(mixed_input, tmp_path, "j1", "-j", "1")
    dask = run(mixed_input, tmp_path, "dask", "--engine", "dask")
    assert one == dask


def test_dask_bag_entry_point(data):
    db = pytest.importorskip("dask.bag")
    from supervise_nlp.parallel import label_bag

    records = [json.loads(line) for line in (data / "notes.jsonl").read_text().splitlines()
               if line.strip().startswith("{") and line.strip().endswith("}")]
    out = label_bag(db.from_sequence(records, npartitions=2)).compute(scheduler="sync")
    assert len(out) == len(records)
    labelled = [o for o in out if "label" in o]
    assert [o["id"] for o in labelled] == ["n1", "n2", "n5"]
    assert all("rejected" in o for o in out if "label" not in o)
    # classify output passes through, and its text stays out unless keep_text asks for it
    passed = label_bag(db.from_sequence([{**labelled[0], "text": "Mum said..."}])).compute(scheduler="sync")
    assert passed[0]["id"] == "n1" and "text" not in passed[0]
