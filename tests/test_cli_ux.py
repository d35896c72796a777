"""The command line for a QA lead and a researcher (issue 13): no guessing, no silent failures."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from supervise_nlp.cli import input_size, main

NOTES = ["Mum said she wants to stop drinking and we talked about what helped last time.",
         "Core group invites sent and chronology updated.", "Home conditions checked, beds seen.",
         "Dad said he is proud of the progress they have made.",
         "Strategy discussion held, S47 to be completed by Friday.",
         "We explored what a good week would look like for Mum."]


def invoke(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


@pytest.fixture
def export(tmp_path):
    """A case-management export with its own column names."""
    path = tmp_path / "export.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Note ID", "Team Name", "Note Type", "Date", "Case Note"])
        for i in range(12):
            w.writerow([f"n{i}", ["Duty", "Family Support"][i % 2], ["Home Visit", "Supervision", "Office"][i % 3],
                        f"2025-0{1 + i % 6}-{(i % 27) + 1:02d}", NOTES[i % 6]])
        w.writerow(["n12", "Duty", "Home Visit", "2025-02-01", ""])
    return path


MAPPED = ["--text-field", "Case Note", "--team-field", "Team Name", "--type-field", "Note Type",
          "--id-field", "Note ID", "-j", "1"]


def test_classify_with_nothing_labelled_fails_and_says_why(export, tmp_path):
    out = tmp_path / "out.jsonl"
    res = invoke("classify", export, "--text-field", "Case note text", "-o", out, "-j", "1")
    assert res.exit_code == 1
    assert "nothing was labelled" in res.stderr
    assert "×" in res.stderr and "Case note text" in res.stderr  # the commonest reason, with its count
    assert "--text-field" in res.stderr.split("hint:", 1)[1]
    assert "cp1252" not in res.stderr  # a missing field is not an encoding problem


def test_classify_summary_is_carried_into_report(export, tmp_path):
    out = tmp_path / "out.jsonl"
    res = invoke("classify", export, *MAPPED, "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["records"] == 13 and summary["rejected"] == 1 and summary["labelled"] == 12
    assert summary["field_map"]["team"] == "Team Name"
    rep = invoke("report", out, "--format", "json", "--no-culture", "--min-notes", "1")
    assert rep.exit_code == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert data["input"]["classify"]["records"] == 13 and data["input"]["classify"]["rejected"] == 1
    assert "13 record(s) read by classify, 1 rejected there" in rep.stderr


def test_field_mapping_carries_through_to_by_and_where(export, tmp_path):
    out = tmp_path / "out.jsonl"
    assert invoke("classify", export, *MAPPED, "-o", out, "-q").exit_code == 0
    # the mapped column name, on the raw export and on classify's output, means the team field
    for src, extra in ((export, MAPPED), (out, [])):
        res = invoke("report", src, *extra, "--by", "Team Name", "--where", "note type=home visit",
                     "--format", "json", "--no-culture", "--min-notes", "1")
        assert res.exit_code == 0, res.stderr
        data = json.loads(res.stdout)
        assert data["by"] == ["team"]
        assert {g["key"]["team"] for g in data["groups"]} <= {"Duty", "Family Support"}
        assert sum(g["notes"] for g in data["groups"]) == 4
        assert "capitals ignored" in res.stderr and "is the team field" in res.stderr


def test_by_a_field_no_record_has_warns(export, tmp_path):
    res = invoke("report", export, *MAPPED, "--by", "Locality", "--format", "json", "--no-culture")
    assert res.exit_code == 0, res.stderr
    assert "--by 'Locality': no record has this field" in res.stderr and "team" in res.stderr


def test_milestone_takes_day_first_dates_and_examples_say_why_not(export):
    res = invoke("report", export, *MAPPED, "--milestone", "01/03/2025", "--dayfirst", "--no-culture",
                 "--include-examples", "2", "--min-notes", "1")
    assert res.exit_code == 0, res.stderr
    assert "--include-examples" in res.stderr and "json and html" in res.stderr
    bad = invoke("report", export, *MAPPED, "--milestone", "March")
    assert bad.exit_code == 2 and "dd/mm/yyyy" in bad.stderr


def test_help_lists_each_command_once_and_documents_every_option():
    top = invoke("--help").stdout
    for cmd in ("classify", "report", "explain", "train", "evaluate"):
        assert sum(line.strip().startswith(cmd + " ") for line in top.splitlines()) == 1, cmd
    rep = invoke("report", "--help").stdout
    assert "year" in rep and "dd/mm/yyyy" in rep
    for cmd in ("report", "evaluate", "explain"):
        text = invoke(cmd, "--help").stdout
        for opt in ("--format", "-o, --output"):
            line = next(x for x in text.splitlines() if opt in x)
            assert len(line.split("]")[-1].strip()) > 10 or "Write here" in text, (cmd, opt)
        if cmd != "explain":
            assert "Random seed" in text


def test_train_without_authority_is_a_clear_message(tmp_path):
    corpus = tmp_path / "own.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": f"o{i}", "segments": [
        {"text": NOTES[i % 6], "label": "change_focused" if i % 3 == 0 else "procedural"},
        {"text": "Present: Mum.", "label": "neutral"}]}) for i in range(6)) + "\n")
    res = invoke("train", corpus, "-o", tmp_path / "m", "--no-baseline")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "--cv-group none" in res.stderr and "'authority'" in res.stderr
    ok = invoke("train", corpus, "-o", tmp_path / "m", "--cv-group", "none", "--no-baseline", "-q")
    assert ok.exit_code == 0, ok.output
    card = (tmp_path / "m" / "card.md").read_text()
    assert "Trained on the files listed below" in card and "synthetic sample" not in card


def test_invalid_label_names_the_segment_label_and_valid_labels(tmp_path):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(json.dumps({"id": "b", "segments": [
        {"text": "Chronology updated.", "label": "procedural"},
        {"text": "Dad is proud of the progress.", "label": "change-focused"}]}) + "\n")
    res = invoke("train", corpus, "-o", tmp_path / "m")
    assert res.exit_code == 1
    msg = res.stderr
    assert "segment 2" in msg and "Dad is proud" in msg and "'change-focused'" in msg
    assert "procedural, change_focused, neutral" in msg and "did you mean 'change_focused'" in msg


def test_evaluate_warns_on_own_training_files_and_compares_models(data, mini_model_dir, tmp_path):
    corpus = data / "mini_corpus.jsonl"
    res = invoke("evaluate", corpus, "--model", mini_model_dir, "--model", mini_model_dir,
                 "--format", "json", "--bootstrap", "200")
    assert res.exit_code == 0, res.output
    assert "was trained on" in res.stderr and "mini_corpus.jsonl" in res.stderr
    doc = json.loads(res.stdout)
    assert list(doc["models"]) == [str(mini_model_dir), f"{mini_model_dir} (2)"]
    m = doc["models"][str(mini_model_dir)]
    lo, hi = m["intervals"]["macro_f1"]
    assert lo <= m["macro_f1"] <= hi and m["intervals"]["kappa"]
    assert m["scored_on_its_own_training_files"]
    # the same model twice: a zero difference, and no clear difference
    (cmp,) = doc["paired_comparisons"].values()
    assert cmp["macro_f1_difference"] == 0 and not cmp["clear_difference"]


def test_evaluate_table_has_a_team_table_for_every_model_and_csv(data, mini_model_dir, tmp_path):
    corpus = data / "mini_corpus.jsonl"
    res = invoke("evaluate", corpus, "--model", mini_model_dir, "--bootstrap", "200")
    assert res.exit_code == 0
    assert "Team balance, true vs predicted" in res.stdout and "95% CI" in res.stdout
    two = invoke("evaluate", corpus, "--model", mini_model_dir, "--model", "models/default", "--bootstrap", "200")
    if two.exit_code == 0:
        assert two.stdout.count("Team balance, true vs predicted") == 2 and "Paired comparison" in two.stdout
    out = tmp_path / "scores.csv"
    assert invoke("evaluate", corpus, "--model", mini_model_dir, "--format", "csv", "-o", out,
                  "--bootstrap", "200").exit_code == 0
    rows = list(csv.DictReader(out.open()))
    f1 = next(r for r in rows if r["measure"] == "macro_f1")
    assert float(f1["ci_low"]) <= float(f1["value"]) <= float(f1["ci_high"])
    assert any(r["section"] == "team" for r in rows)


def test_bootstrap_scores_match_sklearn():
    from sklearn.metrics import cohen_kappa_score, f1_score

    from supervise_nlp.evaluate import _f1_kappa

    rng = np.random.default_rng(3)
    t = rng.integers(0, 3, 300)
    p = np.where(rng.random(300) < 0.7, t, rng.integers(0, 3, 300))
    cm = np.zeros((3, 3), int)
    np.add.at(cm, (t, p), 1)
    f1, kappa = _f1_kappa(cm)
    assert f1 == pytest.approx(f1_score(t, p, average="macro")) and kappa == pytest.approx(cohen_kappa_score(t, p))


def test_progress_knows_the_input_size_and_is_quiet_when_piped(export, tmp_path):
    assert input_size((str(export),)) == export.stat().st_size
    assert input_size(("-",)) is None
    res = invoke("classify", export, *MAPPED, "-o", tmp_path / "o.jsonl")
    assert res.exit_code == 0 and "\r" not in res.stderr and "eta" not in res.stderr
