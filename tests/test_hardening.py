"""Issue 12: hostile or careless inputs. Nothing lost, nothing destroyed, nothing leaked or obeyed."""

import csv
import datetime as dt
import errno
import gzip
import io
import json
import os
import re
import signal
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from supervise_nlp import cli, runio
from supervise_nlp.aggregate import build_report, build_table
from supervise_nlp.cli import main
from supervise_nlp.read import Labelled, Note, ReadOptions, Reject, read_records

FAST = ["--bootstrap", "100", "--permutations", "99"]


def split(items):
    items = list(items)
    return [i for i in items if isinstance(i, Note)], [i for i in items if isinstance(i, Reject)]


def csv_file(path, rows, header=("id", "text", "team")):
    buf = io.StringIO()
    csv.writer(buf).writerows([list(header), *rows])
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return path


def summary_counts(stderr):
    m = re.search(r"total: read (\d+) = labelled (\d+) \+ rejected (\d+)", stderr)
    return tuple(map(int, m.groups())) if m else None


@pytest.fixture
def run(mini_model_dir):
    def invoke(*args, **kw):
        args = list(args)
        if args[0] in ("classify", "report") and "--model" not in args:
            args += ["--model", str(mini_model_dir), "-j", "1"]
        return CliRunner().invoke(main, args, **kw)
    return invoke


# --- records lost or runs stopped ---------------------------------------------------------------


def test_unclosed_csv_quote_costs_one_row_and_the_rest_is_read(tmp_path, run):
    rows = [[str(i), f"Note {i}, with a comma. Mum said she is proud.", "T1"] for i in range(100)]
    p = csv_file(tmp_path / "u.csv", rows)
    lines = p.read_text().splitlines(True)
    lines[11] = '10,"Note 10 never closed,T1\r\n'
    p.write_text("".join(lines), newline="")
    notes, rejects = split(read_records([str(p)]))
    assert len(notes) == 99 and [r.line for r in rejects] == [12] and "unclosed" in rejects[0].reason
    res = run("classify", str(p), "-o", str(tmp_path / "o.jsonl"), "--strict")
    assert res.exit_code == 1 and summary_counts(res.stderr) == (100, 99, 1)


def test_unclosed_quote_to_the_end_of_the_file_and_past_the_line_limit(tmp_path):
    body = "".join(f"{i},plain note {i},T1\r\n" for i in range(2, 40))
    p = tmp_path / "eof.csv"
    p.write_text('id,text,team\r\n1,"opened,T1\r\n' + body, newline="")
    notes, rejects = split(read_records([str(p)]))
    assert len(notes) == 38 and rejects[0].line == 2 and "never closed" in rejects[0].reason
    notes, rejects = split(read_records([str(p)], ReadOptions(max_lines=5)))
    assert len(notes) == 38 and "more than 5 lines" in rejects[0].reason


def test_suspicious_csv_field_is_warned_about(tmp_path):
    swallowed = "start\n" + "".join(f"{i},row {i},T1\n" for i in range(5))
    p = csv_file(tmp_path / "s.csv", [["1", swallowed, "T1"]])
    seen = []
    notes, _ = split(read_records([str(p)], notice=seen.append))
    assert len(notes) == 1 and any("shaped like rows" in s for s in seen)


def test_utf8_bom_before_a_quoted_header(tmp_path):
    p = tmp_path / "b.csv"
    p.write_bytes(b'\xef\xbb\xbf"text","id"\r\n"Mum said hi.","1"\r\n')
    notes, rejects = split(read_records([str(p)]))
    assert [(n.text, n.id) for n in notes] == [("Mum said hi.", "1")] and not rejects


def test_lone_surrogate_and_deep_nesting_and_huge_numbers_are_rejects_not_crashes(tmp_path, run):
    p = tmp_path / "j.jsonl"
    p.write_text('{"id": "\\ud83d", "text": "Mum said hi."}\n'
                 '{"id": 2, "team": "T\\udc00", "text": "SW to call."}\n'
                 + "[" * 100_000 + "\n"
                 + '{"id": 4, "text": "x", "n": ' + "9" * 5000 + "}\n"
                 '{"id": 5, "text": "Mum said she is proud."}\n')
    notes, rejects = split(read_records([str(p)]))
    assert [n.id for n in notes] == [5] and [r.line for r in rejects] == [1, 2, 3, 4]
    res = run("classify", str(p), "-o", str(tmp_path / "o.jsonl"))
    assert res.exit_code == 0 and summary_counts(res.stderr) == (5, 1, 4)
    assert "\\ud83d" not in (tmp_path / "o.rejects.jsonl").read_text()
    res = run("report", str(p), "--format", "json", *FAST, "--min-notes", "1")
    assert res.exit_code == 0 and summary_counts(res.stderr) == (5, 1, 4)


def test_classify_output_with_bad_counts_is_rejected(tmp_path, run):
    good = {"id": 1, "team": "A", "label": "procedural", "change_share": 0.0, "segments": [],
            "counts": {"procedural": 2, "change_focused": 0, "neutral": 1}}
    bad = [dict(good, counts={"procedural": -5, "change_focused": 1, "neutral": 0}),
           dict(good, counts={"procedural": 10**23, "change_focused": 1, "neutral": 0}),
           dict(good, counts={"procedural": True, "change_focused": 1, "neutral": 0})]
    p = tmp_path / "c.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in [good, *bad]))
    items = list(read_records([str(p)]))
    assert isinstance(items[0], Labelled) and all(isinstance(i, Reject) for i in items[1:])
    res = run("report", str(p), "--format", "json", *FAST, "--min-notes", "1")
    rep = json.loads(res.stdout)
    assert res.exit_code == 0 and rep["input"] == {"records": 4, "labelled": 1, "rejected": 3}
    lo, hi = rep["overall"]["balance_ci"]  # one note: the interval is not estimated (workers as units)
    assert (lo, hi) == (None, None) or 0 <= lo <= hi <= 1
    assert rep["overall"]["balance"] == 0.0


def _stop_after(n, how):
    """A labelled stream that stops the run after n records: a real signal, or a write failure."""
    real = cli._labelled_stream

    def stream(items, *a, **k):
        for i, pair in enumerate(real(items, *a, **k)):
            if i == n:
                how()
            yield pair
    return stream


def _notes(tmp_path, n=40, bad_every=4):
    p = tmp_path / "n.jsonl"
    p.write_text("".join((json.dumps({"id": i, "text": f"Mum said she is proud {i}. SW to call."}) if i % bad_every
                          else "{not json") + "\n" for i in range(n)))
    return p


def test_sigterm_keeps_whole_records_and_rejects_prints_counts_and_resume_completes(tmp_path, run, monkeypatch):
    p = _notes(tmp_path)
    full = tmp_path / "full.jsonl"
    assert run("classify", str(p), "-o", str(full)).exit_code == 0
    out, rej = tmp_path / "o.jsonl", tmp_path / "o.rejects.jsonl"
    monkeypatch.setattr(cli, "_labelled_stream", _stop_after(25, lambda: os.kill(os.getpid(), signal.SIGTERM)))
    res = run("classify", str(p), "-o", str(out))
    assert res.exit_code == 128 + signal.SIGTERM
    read, labelled, rejected = summary_counts(res.stderr)
    assert read == 25 and labelled + rejected == 25
    assert out.read_text().endswith("\n") and len(out.read_text().splitlines()) == labelled
    assert len(rej.read_text().splitlines()) == rejected and all(json.loads(x) for x in rej.read_text().splitlines())
    monkeypatch.undo()
    res = run("classify", str(p), "-o", str(out), "--resume")
    assert res.exit_code == 0 and summary_counts(res.stderr) == (40, 30, 10)
    assert out.read_bytes() == full.read_bytes() and len(rej.read_text().splitlines()) == 10
    assert not runio.resume_path(str(out)).exists()
    assert run("classify", str(p), "-o", str(out), "--resume").exit_code != 0  # nothing left to resume


def test_disk_full_keeps_whole_records_and_names_the_file(tmp_path, run, monkeypatch):
    p = _notes(tmp_path, 600)
    out, rej = tmp_path / "o.jsonl", tmp_path / "o.rejects.jsonl"
    real = runio._write_all
    calls = {"n": 0}

    def full_disk(fd, data):
        calls["n"] += 1
        if calls["n"] >= 3:  # the second commit's output write: half of it fits
            real(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)
    monkeypatch.setattr(runio, "_write_all", full_disk)
    res = run("classify", str(p), "-o", str(out))
    assert res.exit_code == 1 and "o.jsonl: could not be written (No space left on device)" in res.stderr
    read, labelled, rejected = summary_counts(res.stderr)
    assert read == 256 and len(out.read_text().splitlines()) == labelled and out.read_text().endswith("\n")
    assert len(rej.read_text().splitlines()) == rejected > 0
    monkeypatch.undo()
    assert run("classify", str(p), "-o", str(out), "--resume").exit_code == 0
    assert len(out.read_text().splitlines()) + len(rej.read_text().splitlines()) == 600


def test_output_appears_only_whole_at_the_end(tmp_path, run, monkeypatch):
    p = _notes(tmp_path, 300)
    out = tmp_path / "o.jsonl"
    out.write_text("previous complete file\n")
    seen = []
    monkeypatch.setattr(cli, "_labelled_stream", _stop_after(290, lambda: seen.append(out.read_text())))
    assert run("classify", str(p), "-o", str(out)).exit_code == 0
    assert seen == ["previous complete file\n"] and len(out.read_text().splitlines()) == 225
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# --- files destroyed ----------------------------------------------------------------------------


def test_no_command_writes_over_an_input_by_any_name(tmp_path, run, data):
    exp = tmp_path / "export.csv"
    exp.write_bytes((data / "notes.csv").read_bytes())
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_bytes((data / "classified.jsonl").read_bytes())
    (tmp_path / "link.csv").symlink_to(exp)
    os.link(exp, tmp_path / "hard.csv")
    out_rejects = tmp_path / "out.rejects.jsonl"
    out_rejects.write_text('{"id": 1, "text": "Mum said hi."}\n')
    before = {p: p.read_bytes() for p in (exp, labelled, out_rejects)}
    for args in (["report", str(exp), "--format", "csv", "-o", str(exp)],
                 ["report", str(exp), "--rejects", str(exp)],
                 ["classify", str(exp), "--rejects", str(exp)],
                 ["classify", str(out_rejects), "-o", str(tmp_path / "out.jsonl")],
                 ["classify", str(exp), "-o", str(tmp_path / "link.csv")],
                 ["classify", str(exp), "-o", str(tmp_path / "hard.csv")],
                 ["classify", str(labelled), "-o", str(tmp_path / "f"), "--rejects", str(tmp_path / "f")],
                 ["explain", str(out_rejects), "-o", str(out_rejects)]):
        res = run(*args)
        assert res.exit_code != 0 and ("is also an input" in res.stderr or "both the" in res.stderr), args
    assert all(p.read_bytes() == b for p, b in before.items())
    # a report of classify output never touches that run's rejects file
    mine = tmp_path / "labelled.rejects.jsonl"
    mine.write_text('{"file": "x", "line": 1, "reason": "r"}\n')
    assert run("report", str(labelled), "--format", "html", "-o", str(tmp_path / "labelled.html"), *FAST).exit_code == 0
    assert mine.read_text() == '{"file": "x", "line": 1, "reason": "r"}\n'


# --- names and text leaking or obeyed ------------------------------------------------------------


def _report_input(tmp_path, teams, per_team=6, extra=None):
    rows = []
    for t in teams:
        for i in range(per_team):
            rows.append({"id": f"{t}{i}", "team": t, "worker": f"w{i % 3}", "date": f"2024-03-0{1 + i % 9}",
                         "label": "procedural", "change_share": 0.5, "segments": [],
                         "counts": {"procedural": 1 + i % 2, "change_focused": 1, "neutral": 0}})
    rows += extra or []
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_csv_report_neutralises_formulas(tmp_path, run):
    p = _report_input(tmp_path, ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "Plain"])
    res = run("report", str(p), "--format", "csv", *FAST)
    cells = [r[0] for r in csv.reader(io.StringIO(res.stdout))][1:]
    assert res.exit_code == 0 and cells and all(not c.startswith(("=", "+", "-", "@")) for c in cells)
    assert "'=HYPERLINK(\"http://x\")" in cells


def test_escape_sequences_never_reach_the_terminal(tmp_path, run):
    p = _report_input(tmp_path, ["\x1b]0;owned\x07T1", "T2\x1b[2J", "T3\x9b31m"])
    res = run("report", str(p), *FAST)
    assert res.exit_code == 0 and "\x1b" not in res.stdout and "\x9b" not in res.stdout and "owned" in res.stdout
    res = run("report", str(p), "--format", "json", *FAST)
    assert "\x9b" not in res.stdout and "\x1b" not in res.stdout
    res = CliRunner().invoke(main, ["explain", "Mum said \x1b]0;title\x07 she is proud.\x1b[2J"])
    assert res.exit_code == 0 and "\x1b" not in res.stdout and "\x07" not in res.stdout
    named = tmp_path / "evil\x1b[2Jname.jsonl"
    named.write_text("{bad\n")
    res = run("classify", str(named))
    assert "\x1b" not in res.stderr and "name.jsonl" in res.stderr


def test_markup_and_mathtext_in_names_are_text(tmp_path, run):
    p = _report_input(tmp_path, ["[/]", "[bold]Loud[/bold]", "$\\frac{$", "Costs $5 and $6"])
    res = run("report", str(p), *FAST)
    assert res.exit_code == 0 and "[bold]Loud[/bold]" in res.stdout and "[/]" in res.stdout
    res = run("report", str(p), "--format", "html", "-o", str(tmp_path / "r.html"), *FAST)
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r.html").read_text()
    assert "Costs $5 and $6" in html and "\\frac{" in html


def test_headerless_csv_reason_never_echoes_values(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("1,Mum visited home,T1\r\n2,Second,T1\r\n")
    _, rejects = split(read_records([str(p)]))
    assert rejects and all("Mum visited" not in r.reason for r in rejects)


def _table(rows, by=("team",), where=(), merge_case=False):
    notes = [(f, {"procedural": p, "change_focused": c, "neutral": n}, []) for f, (p, c, n) in rows]
    return build_table(notes, by, where, merge_case=merge_case)


def _rep(table, by=("team",), **kw):
    return build_report(table, by, {"records": len(table), "labelled": len(table), "rejected": 0},
                        n_boot=100, n_perm=99, **kw)


def test_suppression_holds_in_milestone_and_trend(tmp_path):
    rows = [({"team": "A", "worker": "x", "date": f"2024-0{m}-10"}, (2, 1, 0)) for m in (1, 2, 3) for _ in range(6)]
    rows += [({"team": "A", "worker": "x", "date": "2024-04-10"}, (0, 3, 0))] * 2  # a small month
    rep = _rep(_table(rows), milestone=dt.date(2024, 4, 1))
    ms = rep["culture"]["trend"]["milestone"]
    assert ms["after"] is None and ms["change"] is None  # "after" would be the held-back month
    rep = _rep(_table(rows), milestone=dt.date(2024, 3, 1))
    months = [m["month"] for m in rep["culture"]["trend"]["by_month"]]
    assert "2024-03" not in months  # after minus March would be April


def test_suppression_of_the_overall_row_after_where():
    rows = [({"team": t, "worker": w}, (2, 1, 0)) for t in "AB" for w in ("x", "y") for _ in range(5)]
    rows += [({"team": "A", "worker": "solo"}, (1, 2, 0))] * 3
    rep = _rep(_table(rows, where=[("worker", "solo")]))
    assert rep["groups"] == [] and rep["overall"] is None


def test_suppression_when_the_second_held_group_is_all_neutral():
    rows = [({"team": t}, (2, 1, 0)) for t in "ABC" for _ in range(6)]
    rows += [({"team": "D"}, (1, 3, 0))] * 2 + [({"team": "E"}, (0, 0, 2))] * 2
    rep = _rep(_table(rows))
    assert len(rep["groups"]) == 2 and rep["held_back"]["groups"] == 3
    # the comparisons are redone over the groups still shown, never naming a held-back one
    shown = [g["key"] for g in rep["groups"]]
    assert rep["comparison"]["overall"]["groups"] == 2
    assert all(p["a"] in shown and p["b"] in shown for p in rep["comparison"]["pairwise"])


def test_suppression_covers_mirroring_read_through_type_map_and_mixed_model_estimates():
    rows = []
    for t in "ABC":
        for w in ("x", "y", "z"):
            rows += [({"team": t, "worker": f"{t}{w}", "type": "Supervision session"}, (2, 1, 0))] * 3
            rows += [({"team": t, "worker": f"{t}{w}", "type": "Doorstep call"}, (1, 2, 0))] * 3
    rows += [({"team": "A", "worker": "Ax", "type": "Duty"}, (0, 3, 0))] * 2  # one small other type
    rows += [({"team": "B", "worker": "Bsolo", "type": "Doorstep call"}, (3, 0, 0))] * 2  # a worker of 2 notes
    rep = _rep(_table(rows), type_map={"doorstep call": "visit"})
    mir = rep["culture"]["mirroring"]
    teams = [e["team"] for e in mir["teams"]]
    assert "A" not in teams and {"B", "C"} <= set(teams)  # A minus supervision and visits would be Duty
    shrunk = (rep["culture"]["variance"].get("shrunken") or {}).get("workers", [])
    assert shrunk and "Bsolo" not in {w["worker"] for w in shrunk}


def test_validation_corrects_only_groups_left_shown():
    from supervise_nlp.quantify import apply_additions, validation_additions

    rows = [({"team": t}, (2, 1, 0)) for t in "ABC" for _ in range(6)]
    rows += [({"team": "D"}, (1, 3, 0))] * 2 + [({"team": "E"}, (0, 0, 2))] * 2
    table = _table(rows)
    rep = _rep(table)
    eye = [[[10.0 if i == j else 1.0 for j in range(3)] for i in range(3)]] * 20
    validation = {"for_report": {"clusters": eye}, "model": {"segments": 60, "population": {"kappa": 0.8,
                  "macro_f1": 0.85}}, "coders": 2, "agreement": {"kappa": 0.9}, "verdict": {"level": "good"}}
    import supervise_nlp.validate as v

    orig = v.statement
    v.statement = lambda _v: "checked on 60 segments"
    try:
        apply_additions(rep, validation_additions(rep, validation, table=table, n_boot=100, seed=1))
    finally:
        v.statement = orig
    assert len(rep["groups"]) == 2 and all("corrected" in g for g in rep["groups"])


def test_suppression_holds_across_groupings():
    rows = [({"team": "A", "worker": "big"}, (2, 1, 0))] * 10 + [({"team": "A", "worker": "small"}, (0, 3, 0))] * 3
    rows += [({"team": "B", "worker": w}, (1, 1, 0)) for w in ("p", "q") for _ in range(6)]
    rep = _rep(_table(rows, by=("team", "worker")), by=("team", "worker"))
    shown = [tuple(g["key"].values()) for g in rep["groups"]]
    assert ("A", "big") not in shown  # team A (a --by team row) minus A/big would be A/small


def test_names_are_normalised_and_case_variants_reported():
    decomposed = "Team A\u030a"  # A + combining ring: NFC gives Å
    rows = [({"team": t}, (1, 1, 0)) for t in ("Team Å", decomposed, "Team Å ", "Team\u00a0Å", " Team  Å")]
    t = _table(rows)
    assert set(t.keys["team"]) == {"Team Å"}
    t = _table([({"worker": w}, (1, 1, 0)) for w in ("Asha", "asha", "ASHA")], by=("worker",))
    assert len(set(t.keys["worker"])) == 3 and any("differ only by upper/lower case" in k for k in t.quality)
    t = _table([({"worker": w}, (1, 1, 0)) for w in ("Asha", "asha", "ASHA")], by=("worker",), merge_case=True)
    assert set(t.keys["worker"]) == {"Asha"}


def test_dates_before_1950_and_in_the_future_are_counted():
    t = _table([({"date": "1900-01-01"}, (1, 1, 0)), ({"date": "2999-01-01"}, (1, 1, 0))])
    assert any("before 1950" in k for k in t.quality) and any("future" in k for k in t.quality)


# --- other inputs and files ---------------------------------------------------------------------


def test_utf16_gzip_zip_and_xlsx_exports_are_read(tmp_path):
    text = "id,text,team\r\n1,Mum said she wants the boys home.,T1\r\n"
    (tmp_path / "a.csv").write_bytes(text.encode("utf-16"))
    (tmp_path / "b.txt").write_bytes(text.replace(",", "\t").encode("utf-16-le"))
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"id": 1, "text": "Mum said hi."}) + "\n")
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.writestr("x.csv", text)
        z.writestr("y.jsonl", json.dumps({"id": 2, "text": "SW to call."}) + "\n")
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["id", "text", "date"])
    wb.active.append([1, "Mum said hi.", dt.datetime(2024, 3, 1)])
    wb.save(tmp_path / "e.xlsx")
    for name, n in (("a.csv", 1), ("c.jsonl.gz", 1), ("d.zip", 2), ("e.xlsx", 1)):
        notes, rejects = split(read_records([str(tmp_path / name)]))
        assert len(notes) == n and not rejects, name
    notes, _ = split(read_records([str(tmp_path / "e.xlsx")]))
    assert notes[0].fields["date"] == "2024-03-01"
    (note,) = read_records([str(tmp_path / "b.txt")])
    assert "Mum said she wants" in note.text and "\x00" not in note.text


def test_zip_bombs_and_devices_are_refused(tmp_path):
    big = tmp_path / "bomb.jsonl.gz"
    with gzip.open(big, "wb") as fh:
        fh.write(b" " * (3 << 20))
    _, rejects = split(read_records([str(big)], ReadOptions(max_bytes=1 << 20)))
    assert rejects and "zip bomb" in rejects[0].reason
    with pytest.raises(Exception, match="not a regular file"):
        list(read_records(["/dev/zero"]))


def test_model_files_that_are_links_or_devices_are_refused(tmp_path, mini_model_dir):
    import shutil

    from supervise_nlp.modelio import ModelError, load_card, load_model

    m = tmp_path / "m"
    shutil.copytree(mini_model_dir, m)
    (m / "model.skops").unlink()
    (m / "model.skops").symlink_to("/dev/zero")
    with pytest.raises(ModelError, match="symbolic link"):
        load_model(m)
    shutil.rmtree(m)
    shutil.copytree(mini_model_dir, m)
    card = json.loads((m / "card.json").read_text())
    card["cross_validation"] = {"macro_f1": 0.99, "kappa": 0.99, "team_balance_mae": 0.0}
    (m / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="checksum"):
        load_card(m)


def test_model_with_bad_hyper_parameters_is_refused_on_load(tmp_path, mini_model_dir):
    from test_modelio import copy, dumped, replace_model_file

    from supervise_nlp.modelio import ModelError, load_model

    model = load_model(mini_model_dir)
    model.steps[0][1].n_features = -3
    m = copy(mini_model_dir, tmp_path)
    replace_model_file(m, dumped(model))
    with pytest.raises(ModelError, match="n_features"):
        load_model(m)
    with pytest.raises(ModelError, match="n_features"):
        load_model(m, light=True)  # the light loader (classify, explain) checks the same things


def test_light_and_skops_loaders_refuse_arrays_that_do_not_fit(tmp_path, mini_model_dir):
    from test_modelio import copy, dumped, replace_model_file

    from supervise_nlp.classify import LightPipeline
    from supervise_nlp.modelio import ModelError, load_model

    assert isinstance(load_model(mini_model_dir, light=True), LightPipeline)
    model = load_model(mini_model_dir)
    clf = model.steps[-1][1]
    clf.coef_ = clf.coef_[:, :10].copy()
    m = copy(mini_model_dir, tmp_path)
    replace_model_file(m, dumped(model))
    for light in (False, True):
        with pytest.raises(ModelError, match="refused"):
            load_model(m, light=light)


def test_weak_key_files_are_warned_about(tmp_path, run):
    p = _report_input(tmp_path, ["A", "B"])
    key = tmp_path / "k"
    key.write_text("a" * 40)
    key.chmod(0o644)
    res = run("report", str(p), "--pseudonymise", "--key-file", str(key), *FAST)
    assert res.exit_code == 0 and "every user" in res.stderr and "one character repeated" in res.stderr


def test_pool_workers_leave_stopping_to_the_parent():
    from supervise_nlp.parallel import _quiet_worker

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)}
    try:
        signal.signal(signal.SIGTERM, lambda *a: None)
        _quiet_worker()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


# --- anything at all ----------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
                           | st.sampled_from(["\ud83d", "\udc00x", "[" * 3000]),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=8)
records = st.dictionaries(st.sampled_from(["id", "text", "team", "worker", "date", "counts", "segments", "label"]),
                          json_values, max_size=6)
inputs = st.one_of(
    st.tuples(st.just("x.jsonl"), st.binary(max_size=300)),
    st.tuples(st.just("x.jsonl"), st.lists(records, max_size=4).map(
        lambda rs: "".join(json.dumps(r) + "\n" for r in rs).encode("utf-8", "surrogatepass"))),
    st.tuples(st.just("x.csv"), st.lists(st.lists(st.text(max_size=30), max_size=4), max_size=5).map(
        lambda rows: ("id,text,team\r\n" + "\r\n".join(",".join(r) for r in rows)).encode("utf-8", "surrogatepass"))),
)


@PROPERTY
@given(inputs)
def test_any_input_ends_normally_reconciles_and_is_never_modified(tmp_path_factory, mini_model_dir, case):
    name, data = case
    d = tmp_path_factory.mktemp("prop")
    p = d / name
    p.write_bytes(data)
    for args in (["classify", str(p), "-o", str(d / "o.jsonl")],
                 ["report", str(p), "--format", "json", "-o", str(d / "r.json"), "--min-notes", "1", *FAST]):
        res = CliRunner().invoke(main, [*args, "--model", str(mini_model_dir), "-j", "1"])
        assert res.exit_code in (0, 1) and not isinstance(res.exception, (AssertionError, RecursionError)) \
            and (res.exception is None or isinstance(res.exception, SystemExit)), res.output
        counts = summary_counts(res.stderr)
        if counts:
            assert counts[0] == counts[1] + counts[2]
        elif args[0] == "classify":
            assert "empty file" in res.stderr
        else:
            assert "no labelled notes" in res.stderr or "empty file" in res.stderr
        assert p.read_bytes() == data
        Path(d / "o.rejects.jsonl").unlink(missing_ok=True)
