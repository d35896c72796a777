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


def _corpus(tmp_path, name, authority, register, texts):
    """A small labelled file written for a test: one note per (team, worker) with the given segments."""
    path = tmp_path / name
    rows = []
    for i, segs in enumerate(texts):
        rows.append({"id": f"{name}-{i}", "authority": authority, "team": f"T{i % 2}", "worker": f"W{i}",
                     "type": "visit", "date": "2025-01-01", "layout": "prose", "register": register,
                     "segments": [{"text": t, "label": lab} for t, lab in segs]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_weights_and_leave_one_register_out(tmp_path, data):
    from supervise_nlp.train import cross_validate, parse_weights, read_weighted

    extra = _corpus(tmp_path, "extra.jsonl", "Xshire", "logs", [
        [("Letter sent to mum re review date.", "procedural"),
         ("She said she is proud of her garden.", "change_focused")],
        [("T/C to dad, no answer.", "procedural"), ("He has started volunteering at the food bank.", "change_focused")],
    ])
    recs = read_weighted([str(data / "mini_corpus.jsonl"), str(extra)], parse_weights(["extra*=4"]))
    assert [r.get("_weight", 1.0) for r in recs][-2:] == [4.0, 4.0]
    assert all(r.get("_weight", 1.0) == 1.0 for r in recs[:-2])
    cv = cross_validate(recs, "register")
    # only one register is present besides notes without one: records without the field always train
    assert cv["never_held_out"] == len(recs) - 2 and cv["segments"] == 4 and set(cv["per_group"]) == {"logs"}


def test_parse_weights_refuses_nonsense():
    import pytest

    from supervise_nlp.train import parse_weights

    for bad in ("x", "=2", "a=-1", "a=zero"):
        with pytest.raises(ValueError):
            parse_weights([bad])


def test_adapt_from_base_with_added_notes(mini_model_dir, data, tmp_path):
    added = _corpus(tmp_path, "ours.jsonl", "Ours", "ours", [
        [("Core group booked for Tuesday.", "procedural"), ("Mum said she wants to cook with the kids again.",
                                                             "change_focused")],
        [("Chronology updated on the system.", "procedural"), ("Dad told me he has been sober for a month.",
                                                                "change_focused")],
        [("Present: SW, Mum.", "neutral"), ("We practised what she will say to the school.", "change_focused")],
    ])
    out = tmp_path / "adapted"
    res = CliRunner().invoke(main, ["train", "--base", str(mini_model_dir), "--add", str(added), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    card = json.loads((out / "card.json").read_text())
    ad = card["adaptation"]
    assert ad["added_notes"] == 3 and ad["folds"] == 3 and ad["grouped_by"] == "worker"
    assert str(ad["chosen_weight"]) in {str(float(w)) for w in ad["cross_validation"]} or \
        f"{ad['chosen_weight']:g}" in ad["cross_validation"]
    assert card["trained_on"]["notes"] == 9
    # the adapted model is an ordinary model directory: evaluate loads it
    res = CliRunner().invoke(main, ["evaluate", str(added), "--model", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "Adapted to added notes" in (out / "card.md").read_text()
    # refuses a mix of scratch training and adaptation, with a usage error
    res = CliRunner().invoke(main, ["train", str(added), "--base", "default", "--add", str(added), "-o", str(out)])
    assert res.exit_code == 2


def test_a_relative_weight_pattern_matches_the_installed_corpus(tmp_path, data):
    """The default card's 'corpora/registers/*' must weight the corpus wherever it is installed."""
    from supervise_nlp.train import read_weighted

    installed = tmp_path / "site-packages" / "supervise_nlp" / "corpora" / "registers"
    installed.mkdir(parents=True)
    target = installed / "train_x.jsonl"
    target.write_bytes((data / "mini_corpus.jsonl").read_bytes())
    recs = read_weighted([str(target), str(data / "mini_corpus.jsonl")], [("corpora/registers/*", 3.0)])
    n = len(recs) // 2
    assert all(r.get("_weight") == 3.0 for r in recs[:n]) and all("_weight" not in r for r in recs[n:])
