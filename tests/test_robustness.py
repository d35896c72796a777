"""Robustness and privacy: arbitrary input never crashes the readers, nothing touches the network."""

import json
import socket

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervise_nlp.cli import main
from supervise_nlp.read import Note, ReadOptions, Reject, read_records

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.binary(max_size=600))
def test_any_bytes_as_jsonl_give_one_item_per_non_blank_line(tmp_path, data):
    p = tmp_path / "x.jsonl"
    p.write_bytes(data)
    items = list(read_records([str(p)], ReadOptions(encoding="utf-8")))
    assert all(isinstance(i, (Note, Reject)) for i in items)
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines = lines[:-1]

    def is_record(raw: bytes) -> bool:  # undecodable lines are records (rejected); blank lines are not
        if raw.startswith(b"\xef\xbb\xbf") and raw is lines[0]:
            raw = raw[3:]
        try:
            return bool(raw.decode("utf-8").strip())
        except UnicodeDecodeError:
            return True

    expected = [n for n, raw in enumerate(lines, 1) if is_record(raw)]
    assert [i.line for i in items] == expected


@SETTINGS
@given(st.lists(st.lists(st.text(max_size=300), min_size=1, max_size=4), max_size=6))
def test_any_csv_rows_never_crash_and_every_row_is_accounted_for(tmp_path, rows):
    import csv

    p = tmp_path / "x.csv"
    with open(p, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        w.writerows(rows)
    items = list(read_records([str(p)]))
    records = [r for r in rows if any(c.strip() for c in r)]  # rows of empty cells are layout
    assert len(items) == len(records)
    for item, row in zip(items, records):
        if len(row) == 2 and row[1].strip():
            assert isinstance(item, Note) and item.text == row[1] and item.id == row[0]
        else:
            assert isinstance(item, Reject) and item.reason


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_field_is_a_note_or_a_reject_with_a_reason(tmp_path, text):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"id": 1, "text": text}) + "\n", encoding="utf-8")
    (item,) = read_records([str(p)], ReadOptions(max_chars=200))
    if isinstance(item, Note):
        assert item.text == text and text.strip() and len(text) <= 200
    else:
        assert item.reason and item.line == 1


def test_messy_text_emoji_control_characters_and_mixed_line_endings_are_labelled(tmp_path):
    texts = ["Mum said 😊 she wants to try again.\r\nSW to send the form.\rDad at work\n",
             "Ярослав пришёл. 他说他想回学校。 Mum said she is proud of him.",
             "\x00\x07 nul and bell\x1b[31m escape \u200b zero-width. Next line"]
    p = tmp_path / "messy.jsonl"
    p.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    res = CliRunner().invoke(main, ["classify", str(p), "--keep-text"])
    assert res.exit_code == 0, res.output
    for line, text in zip(res.stdout.splitlines(), texts):
        out = json.loads(line)
        assert out["text"] == text and out["segments"]
        assert all(0 <= s["start"] < s["end"] <= len(text) for s in out["segments"])


def test_a_one_megabyte_note_is_labelled(tmp_path):
    sentence = "Mum said she wants the boys home and SW to update the plan by Friday. "
    text = sentence * (1_000_000 // len(sentence) + 1)
    p = tmp_path / "big.jsonl"
    p.write_text(json.dumps({"id": "big", "text": text}) + "\n")
    res = CliRunner().invoke(main, ["classify", str(p), "-q"])
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert sum(out["counts"].values()) == len(out["segments"]) > 10_000


def test_duplicate_ids_are_kept(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "a", "text": "one."}\n{"id": "a", "text": "two."}\n')
    res = CliRunner().invoke(main, ["classify", str(p)])
    assert [json.loads(x)["id"] for x in res.stdout.splitlines()] == ["a", "a"]
    # reported as a count: ids taken from file names can be people's names
    assert "1 id(s) appear more than once (1 extra record(s))" in res.stderr and "'a'" not in res.stderr


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise RuntimeError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_every_command_works_with_networking_blocked(no_network, data, tmp_path):
    runner = CliRunner()
    out = tmp_path / "c.jsonl"
    for args in (["classify", str(data / "notes.jsonl"), "-o", str(out), "--rejects", str(tmp_path / "r.jsonl")],
                 ["report", str(out), "--format", "html", "-o", str(tmp_path / "r.html"), "--bootstrap", "100"],
                 ["explain", "Mum said she wants to be the parent she never had."],
                 ["evaluate", str(data / "mini_corpus.jsonl")]):
        res = runner.invoke(main, args)
        assert res.exit_code == 0, (args, res.output, res.exception)


def test_rejects_carry_no_note_text_unless_asked(data, tmp_path):
    r1, r2 = tmp_path / "r1.jsonl", tmp_path / "r2.jsonl"
    runner = CliRunner()
    runner.invoke(main, ["classify", str(data / "notes.jsonl"), "-q", "--rejects", str(r1)])
    runner.invoke(main, ["classify", str(data / "notes.jsonl"), "-q", "--rejects", str(r2), "--rejects-keep-raw"])
    assert "teddies" not in r1.read_text() and "teddies" in r2.read_text()


def test_output_that_is_an_input_is_refused_and_the_input_survives(tmp_path, data):
    p = tmp_path / "n.jsonl"
    p.write_bytes((data / "notes.jsonl").read_bytes())
    before = p.read_bytes()
    res = CliRunner().invoke(main, ["classify", str(p), "-o", str(p)])
    assert res.exit_code == 1 and "is also an input" in res.stderr and p.read_bytes() == before


def test_rejects_file_from_an_earlier_run_is_left_alone_and_named(tmp_path, data):
    # a run never removes a file it did not create (issue 12); it says the file is not its own
    out = tmp_path / "o.jsonl"
    stale = tmp_path / "o.rejects.jsonl"
    stale.write_text('{"file": "old", "line": 1, "reason": "from last week"}\n')
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"id": "a", "text": "Mum said she wants to try."}\n')
    res = CliRunner().invoke(main, ["classify", str(ok), "-o", str(out)])
    assert res.exit_code == 0 and "from an earlier run" in res.stderr
    assert "from last week" in stale.read_text()


def test_output_keys_never_overwrite_input_fields(tmp_path):
    p = tmp_path / "l.jsonl"
    p.write_text('{"id": "a", "text": "SW to send the form.", "label": "high risk"}\n')
    out = json.loads(CliRunner().invoke(main, ["classify", str(p), "-q"]).stdout)
    assert out["input_label"] == "high risk" and out["label"] in ("procedural", "change_focused", "unclassified")


def test_reclassifying_keep_text_output_drops_text_unless_asked(tmp_path, data):
    first = tmp_path / "c.jsonl"
    CliRunner().invoke(main, ["classify", str(data / "mini_corpus.jsonl"), "--keep-text", "-o", str(first), "-q"])
    again = CliRunner().invoke(main, ["classify", str(first), "-q"]).stdout
    assert "Leo" not in again and json.loads(again.splitlines()[0])["segments"]


def test_explain_takes_a_long_note_as_text_not_a_path():
    note = "Mum said she wants to try again and we talked about what helped last time " * 8
    res = CliRunner().invoke(main, ["explain", note, "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["segments"]


def test_pseudonymise_teams_alone_hides_workers_and_teams_and_weak_keys_are_refused(tmp_path, data):
    key = tmp_path / "k"
    res = CliRunner().invoke(main, ["report", str(data / "classified.jsonl"), "--by", "worker", "--format", "json",
                                    "--pseudonymise-teams", "--key-file", str(key), "--min-notes", "1",
                                    "--bootstrap", "100"])
    assert res.exit_code == 0 and oct(key.stat().st_mode & 0o777) == "0o600"
    for name in ("Asha", "T1", "Gus", "T4"):
        assert f'"{name}"' not in res.stdout
    weak = tmp_path / "weak"
    weak.write_text("short")
    res = CliRunner().invoke(main, ["report", str(data / "classified.jsonl"), "--pseudonymise", "--key-file",
                                    str(weak), "--bootstrap", "100"])
    assert res.exit_code == 1 and "at least 32 bytes" in res.stderr
