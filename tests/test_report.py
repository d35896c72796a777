"""The team report: statistics checked against hand-computed values on a small classified file.

tests/data/classified.jsonl is classify output for 20 notes: teams T1-T3 have two workers with
three notes each (4 procedural + change-focused segments per note, so a note's share is C/4);
T4 has one worker with two notes, fewer than the default --min-notes of 5.
"""

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from supervise_nlp.aggregate import bootstrap_balances, build_report, build_table, parse_date
from supervise_nlp.cli import main

C = {"T1": {"Asha": [1, 0, 1], "Ben": [1, 1, 2]}, "T2": {"Cat": [2, 2, 3], "Dev": [1, 2, 2]},
     "T3": {"Eli": [3, 4, 3], "Fay": [2, 3, 4]}, "T4": {"Gus": [4, 4]}}


def run(*args):
    res = CliRunner().invoke(main, ["report", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def rep(data):
    return json.loads(run(data / "classified.jsonl", "--format", "json", "--bootstrap", "300",
                          "--min-notes", "1").stdout)


def test_small_groups_held_back_with_secondary_suppression(data):
    rep = json.loads(run(data / "classified.jsonl", "--format", "json", "--bootstrap", "100").stdout)
    # T4 has 2 notes (< 5). Alone it could be recovered as overall minus the rest, so one more
    # group (the smallest shown, 6 notes) is held back with it.
    assert {k: rep["held_back"][k] for k in ("groups", "notes")} == {"groups": 2, "notes": 8}
    assert len(rep["groups"]) == 2 and "T4" not in [g["key"]["team"] for g in rep["groups"]]
    assert rep["overall"]["notes"] == 20


def test_groups_balance_counts(rep):
    assert rep["input"] == {"records": 20, "labelled": 20, "rejected": 0}
    keys = [g["key"]["team"] for g in rep["groups"]]
    assert keys == ["T1", "T2", "T3", "T4"]  # sorted by balance
    assert rep["held_back"] == {"groups": 0, "notes": 0}
    t1 = rep["groups"][0]
    assert t1["notes"] == 6 and t1["change_focused"] == 6 and t1["procedural"] == 18 and t1["neutral"] == 6
    assert t1["balance"] == 6 / 24
    assert t1["change_focused_notes"] == 0.0
    t3 = rep["groups"][2]
    assert t3["balance"] == 19 / 24 and t3["change_focused_notes"] == 5 / 6  # 3,4,3,3,4 of 4 are > 0.5; one 2/4 is not
    assert rep["overall"]["notes"] == 20 and rep["overall"]["balance"] == (6 + 12 + 19 + 8) / 80
    for g in rep["groups"]:
        lo, hi = g["balance_ci_notes"]
        assert lo <= g["balance"] <= hi
        assert g["workers"] == (1 if g["key"]["team"] == "T4" else 2)
        assert "workers" in g["balance_ci_describes"]
    # one worker cannot speak for a team; two cannot be told apart from their team
    t4 = rep["groups"][3]
    assert t4["balance_ci"] == [None, None] and t4["notice"].startswith("too few workers")
    assert rep["groups"][0]["notice"].startswith("only two workers")


def test_bootstrap_interval_collapses_when_every_note_agrees_and_is_reproducible():
    rng = np.random.default_rng(1)
    b = bootstrap_balances(np.array([1, 2, 3]), np.array([3, 6, 9]), 200, rng)
    assert np.allclose(b, 0.25)
    C, P = np.array([0, 4, 1, 3]), np.array([4, 0, 3, 1])
    b1 = bootstrap_balances(C, P, 300, np.random.default_rng(7))
    b2 = bootstrap_balances(C, P, 300, np.random.default_rng(7))
    assert np.array_equal(b1, b2) and b1.min() >= 0 and b1.max() <= 1
    # resampling whole notes: the spread matches the note-level standard error of a ratio
    assert 0.15 < b1.std() < 0.35


def test_mirroring_by_hand(rep):
    """Each worker's notes alternate supervision, visit, supervision (see the module docstring)."""
    mir = rep["culture"]["mirroring"]
    expected = {}
    for team, ws in C.items():
        sup = [c for cs in ws.values() for j, c in enumerate(cs) if j % 2 == 0]
        vis = [c for cs in ws.values() for j, c in enumerate(cs) if j % 2 == 1]
        expected[team] = (sum(sup) / (4 * len(sup)), sum(vis) / (4 * len(vis)))
    got = {t["team"]: (t["supervision"]["balance"], t["visit"]["balance"]) for t in mir["teams"]}
    assert sorted(got) == sorted(expected)
    for team, (sup, vis) in expected.items():
        assert got[team][0] == pytest.approx(sup) and got[team][1] == pytest.approx(vis)
    s_, v_ = np.array([expected[t][0] for t in sorted(expected)]), np.array([expected[t][1] for t in sorted(expected)])
    assert mir["pearson_r"] == pytest.approx(np.corrcoef(s_, v_)[0, 1])
    assert mir["notes_per_type"]["visit"]["min"] == 1 and "r_corrected" in mir
    assert mir["mean_absolute_gap"] == pytest.approx(np.mean(np.abs(s_ - v_)))


def test_trend_by_month_and_unreadable_dates(rep):
    months = rep["culture"]["trend"]["by_month"]
    assert sum(m["notes"] for m in months) == 19  # one note has a dd/mm/yyyy date
    assert rep["data_quality"]["notes with an unreadable date (not YYYY-MM-DD; see --dayfirst)"] == 1


def test_small_months_are_held_back_too(data):
    rep = json.loads(run(data / "classified.jsonl", "--format", "json", "--min-notes", "4",
                         "--bootstrap", "100").stdout)
    trend = rep["culture"]["trend"]
    assert all(m["notes"] >= 4 for m in trend["by_month"])
    assert trend["months_held_back"] + len(trend["by_month"]) == 6


def test_where_filter_by_and_min_notes(data):
    rep = json.loads(run(data / "classified.jsonl", "--format", "json", "--where", "team=T2", "--by", "worker",
                         "--min-notes", "1", "--no-culture", "--bootstrap", "100").stdout)
    assert [g["key"]["worker"] for g in rep["groups"]] == ["Dev", "Cat"]
    assert rep["groups"][0]["balance"] == 5 / 12 and rep["groups"][1]["balance"] == 7 / 12
    assert rep["data_quality"]["filtered out by --where"] == 14


def test_month_and_dayfirst(data):
    rep = json.loads(run(data / "classified.jsonl", "--format", "json", "--by", "month", "--dayfirst",
                         "--min-notes", "1", "--no-culture", "--bootstrap", "100").stdout)
    assert sum(g["notes"] for g in rep["groups"]) == 20
    assert all(g["key"]["month"].startswith("2025-") for g in rep["groups"])
    assert parse_date("15/01/2025") is None and parse_date("15/01/2025", dayfirst=True).month == 1


def test_milestone_before_after(data):
    rep = json.loads(run(data / "classified.jsonl", "--format", "json", "--milestone", "2025-04-01",
                         "--bootstrap", "200").stdout)
    ms = rep["culture"]["trend"]["milestone"]
    assert ms["before"]["notes"] + ms["after"]["notes"] == 19
    assert ms["change"] == pytest.approx(ms["after"]["balance"] - ms["before"]["balance"])


def test_pseudonymise_is_stable_and_hides_names(data, tmp_path):
    key = tmp_path / "k"
    outs = [run(data / "classified.jsonl", "--by", "worker", "--format", "json", "--pseudonymise", "--key-file",
                key, "--min-notes", "1", "--no-culture", "--bootstrap", "100").stdout for _ in range(2)]
    assert outs[0] == outs[1]
    for name in ("Asha", "Ben", "Cat", "Gus"):
        assert name not in outs[0]
    assert all(g["key"]["worker"].startswith("W-") for g in json.loads(outs[0])["groups"])


def test_csv_and_html_formats(data, tmp_path):
    rows = list(csv.DictReader(io.StringIO(run(data / "classified.jsonl", "--format", "csv", "--min-notes", "1",
                                               "--bootstrap", "100").stdout)))
    assert [r["team"] for r in rows] == ["T1", "T2", "T3", "T4", "overall"]
    assert float(rows[0]["balance"]) == 0.25
    out = tmp_path / "r.html"
    run(data / "classified.jsonl", "--format", "html", "-o", out, "--bootstrap", "100", "--min-notes", "1")
    html = out.read_text()
    assert html.count("<svg") >= 2 and "How these figures were made" in html
    import re

    # self-contained: nothing to fetch (SVG namespace declarations are not fetched)
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html) and "<script" not in html and "<link" not in html
    assert "<metadata>" not in html


def test_report_on_raw_notes_equals_report_on_their_classify_output(data, tmp_path):
    out = tmp_path / "c.jsonl"
    assert CliRunner().invoke(main, ["classify", str(data / "mini_corpus.jsonl"), "-o", str(out)]).exit_code == 0
    a = json.loads(run(data / "mini_corpus.jsonl", "--format", "json", "--min-notes", "1", "--bootstrap", "100").stdout)
    # classify output is read as is: a model path that does not exist is never touched
    b = json.loads(run(out, "--format", "json", "--min-notes", "1", "--bootstrap", "100",
                       "--model", tmp_path / "no-model").stdout)
    assert a["groups"] == b["groups"] and a["overall"] == b["overall"]


def test_no_note_text_unless_examples_are_asked_for(data):
    plain = run(data / "mini_corpus.jsonl", "--format", "json", "--min-notes", "1", "--bootstrap", "100").stdout
    assert "Leo" not in plain
    with_ex = json.loads(run(data / "mini_corpus.jsonl", "--format", "json", "--min-notes", "1",
                             "--include-examples", "1", "--bootstrap", "100").stdout)
    texts = [e["text"] for g in with_ex["groups"] for es in g["examples"].values() for e in es]
    assert texts and all(isinstance(t, str) for t in texts)


def test_build_table_marks_missing_team_as_unknown():
    t = build_table([({"worker": "x"}, {"procedural": 1, "change_focused": 1, "neutral": 0}, [])], ["team"])
    rep = build_report(t, ["team"], {"records": 1, "labelled": 1, "rejected": 0}, min_notes=1, n_boot=20,
                       culture=False)
    assert rep["groups"][0]["key"] == {"team": "unknown"} and rep["data_quality"]["notes with no team"] == 1
