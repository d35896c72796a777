"""Labelling segments and notes with the shipped model, and the classify command's contract."""

import json

from click.testing import CliRunner

from supervise_nlp.classify import change_share, note_label
from supervise_nlp.cli import main


def test_codebook_note_rules():
    assert change_share({"procedural": 1, "change_focused": 3, "neutral": 9}) == 0.75
    assert change_share({"procedural": 0, "change_focused": 0, "neutral": 4}) is None
    assert note_label(None) == "unclassified"
    assert note_label(0.5) == "procedural" and note_label(0.51) == "change_focused"


def test_shipped_model_labels_clear_cases(labeller):
    out = next(labeller.label_texts([
        "Present: SW, Mum, Jayden (4).\nSW to complete the C&F assessment by 14/03.\n"
        "Mum said she wants to be the parent she never had."]))
    assert [s["label"] for s in out["segments"]] == ["neutral", "procedural", "change_focused"]
    for s in out["segments"]:
        assert abs(sum(s["p"].values()) - 1) < 1e-3
        assert s["p"][s["label"]] == max(s["p"].values())
    assert out["counts"] == {"procedural": 1, "change_focused": 1, "neutral": 1}
    assert out["change_share"] == 0.5 and out["label"] == "procedural"


def test_classify_command_output_contract_and_reconciled_counts(data, tmp_path):
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(main, ["classify", str(data / "notes.jsonl"), str(data / "notes.csv"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["n1", "n2", "n5", "c1", "c2"]
    text = {"n1": "Present: SW, Mum, Jayden (4). SW to complete the C&F assessment by 14/03. "
                  "Mum said she wants to be the parent she never had."}
    r = records[0]
    assert "text" not in r and r["case_ref"] == "X-17" and r["team"] == "Alpha"
    assert set(r) >= {"label", "change_share", "counts", "segments"}
    assert r["label"] in ("procedural", "change_focused", "unclassified")
    assert [text["n1"][s["start"]:s["end"]] for s in r["segments"]][1] == \
        "SW to complete the C&F assessment by 14/03."
    assert sum(r["counts"].values()) == len(r["segments"])
    assert "total: read 13 = labelled 5 + rejected 8" in res.stderr
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 8 and all({"file", "line", "reason"} == set(x) for x in rejects)


def test_keep_text_strict_and_unwritable_output(data, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["classify", str(data / "notes.csv"), "--keep-text", "--strict", "-q",
                               "--rejects", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 1 and "--strict: 1 record(s) rejected" in res.stderr
    first = json.loads(res.stdout.splitlines()[0])
    assert first["text"].startswith("Mum said she was tired.")
    res = runner.invoke(main, ["classify", str(data / "notes.csv"), "-o", str(tmp_path / "no" / "dir" / "o.jsonl")])
    assert res.exit_code == 1 and "No such file or directory" in res.stderr and "Traceback" not in res.output


def test_missing_input_is_a_message_not_a_traceback(tmp_path):
    res = CliRunner().invoke(main, ["classify", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 1 and "no such file or folder" in res.stderr
