"""Training with grouped cross-validation, the model card, and evaluation by character overlap."""

import json

from click.testing import CliRunner

from supervise_nlp.cli import main
from supervise_nlp.evaluate import align, note_and_team_scores, segment_scores


def test_train_writes_model_card_and_manifest(mini_model_dir):
    card = json.loads((mini_model_dir / "card.json").read_text())
    assert card["trained_on"]["notes"] == 6 and card["trained_on"]["segments"] == 20
    assert card["trained_on"]["label_counts"] == {"neutral": 6, "change_focused": 6, "procedural": 8}
    cv = card["cross_validation"]
    assert cv["group"] == "authority" and cv["folds"] == 2
    assert set(cv["per_authority"]) == {"Northshire", "Southvale"}
    assert len(card["trained_on"]["fingerprint"]["sha256"]) == 64
    assert "scikit-learn" in card["versions"]
    md = (mini_model_dir / "card.md").read_text()
    assert "leave one authority out" in md and "Confusion matrix" in md


def test_align_takes_the_most_overlapping_prediction():
    gold = [(0, 10, "neutral"), (11, 30, "procedural")]
    pred = [{"start": 0, "end": 14, "label": "neutral", "p": {}},
            {"start": 15, "end": 30, "label": "change_focused", "p": {}}]
    assert [a[0] for a in align(gold, pred)] == ["neutral", "change_focused"]


def test_segment_scores_by_hand():
    s = segment_scores(["procedural", "procedural", "neutral", "change_focused"],
                       ["procedural", "neutral", "neutral", "change_focused"])
    assert s["per_class"]["procedural"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert s["per_class"]["neutral"]["precision"] == 0.5
    assert abs(s["macro_f1"] - (2 / 3 + 2 / 3 + 1) / 3) < 1e-12
    assert s["confusion"]["matrix"] == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]


def test_team_balance_error_by_hand():
    rec = {"authority": "A", "team": "T"}
    def c(p, ch, n):
        return {"procedural": p, "change_focused": ch, "neutral": n}

    notes = [(rec, c(3, 1, 0), c(2, 2, 0)), (rec, c(1, 3, 2), c(1, 3, 2))]
    s = note_and_team_scores(notes)
    assert s["note_change_share_mae"] == 0.125  # |0.25-0.5| and 0, averaged
    assert s["teams"][0]["true_balance"] == 0.5 and s["teams"][0]["predicted_balance"] == 5 / 8
    assert s["team_balance_mae"] == 0.125


def test_evaluate_command_json_and_model_comparison(mini_model_dir, data):
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", str(data / "mini_corpus.jsonl"), "--model", str(mini_model_dir),
                               "--format", "json"])
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert scores["segments"] == 20 and 0 <= scores["macro_f1"] <= 1
    res = runner.invoke(main, ["evaluate", str(data / "mini_corpus.jsonl"), "--model", str(mini_model_dir),
                               "--model", str(mini_model_dir)])
    assert res.exit_code == 0 and "macro-F1" in res.stdout and "Confusion matrix" in res.stdout
