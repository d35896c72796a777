"""Self-audit: one note explained, from an argument, a file or standard input."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from supervise_nlp.cli import main

NOTE = ("Present: SW, Mum, Jayden (4).\nCore group invites sent and chronology updated.\n"
        "Mum said she wants to be the parent she never had.")


def run(args, **kw):
    res = CliRunner().invoke(main, ["explain", *args], **kw)
    assert res.exit_code == 0, res.output
    return res.stdout


def test_three_input_routes_give_the_same_explanation(tmp_path):
    f = tmp_path / "note.txt"
    f.write_text(NOTE)
    a = run([NOTE, "--format", "json"])
    b = run([str(f), "--format", "json"])
    c = run(["--format", "json"], input=NOTE)
    assert a == b == c


def test_json_has_segments_offsets_labels_contributions():
    ex = json.loads(run([NOTE, "--format", "json"]))
    assert [s["label"] for s in ex["segments"]] == ["neutral", "procedural", "change_focused"]
    for s in ex["segments"]:
        assert NOTE[s["start"]:s["end"]] == s["text"]
        assert s["because"] and all(b["weight"] > 0 for b in s["because"])
        assert s["p"][s["label"]] == max(s["p"].values())
    assert "chronology" in [b["feature"] for b in ex["segments"][1]["because"]]
    assert "a_change_focused_account_would_record" in ex["segments"][1]
    assert "a_change_focused_account_would_record" not in ex["segments"][2]
    assert ex["counts"] == {"procedural": 1, "change_focused": 1, "neutral": 1} and ex["change_share"] == 0.5
    assert ex["label"] == "procedural"


def test_piped_output_has_plain_markers_and_terminal_output_has_colour():
    plain = run([NOTE])
    assert "\x1b[" not in plain
    assert "[N " in plain and "[P " in plain and "[C " in plain and "Change share 0.50" in plain
    coloured = run([NOTE, "--color"])
    assert "\x1b[" in coloured


def test_html_page_is_self_contained(tmp_path):
    out = tmp_path / "note.html"
    run([NOTE, "--format", "html", "-o", str(out)])
    html = out.read_text()
    assert "Core group invites sent" in html and "<script" not in html and "http" not in html
    assert "not a judgement of the practice" in html


def test_nothing_is_written_unless_asked(tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        run([NOTE])
    finally:
        os.chdir(cwd)
    assert list(tmp_path.iterdir()) == []


def test_empty_note_is_a_clear_error():
    res = CliRunner().invoke(main, ["explain", "--format", "json"], input="  \n")
    assert res.exit_code == 1 and "the note is empty" in res.stderr


def test_help_does_not_import_spacy_or_sklearn():
    code = ("import sys\nfrom supervise_nlp.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('spacy', 'sklearn', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "classify" in out
