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
    assert ex["segments"][1]["category"]["concept"] in ("meeting_logistics", "forms_recording")
    assert any("chronology" in b["feature"] or "core group" in b["feature"] for b in ex["segments"][1]["because"])
    assert "a_change_focused_account_would_record" not in ex["segments"][1]  # names no person: no advice
    assert "a_change_focused_account_would_record" not in ex["segments"][2]
    assert ex["counts"] == {"procedural": 1, "change_focused": 1, "neutral": 1} and ex["change_share"] == 0.5
    assert ex["label"] == "procedural"


def test_piped_output_has_plain_markers_and_terminal_output_has_colour():
    plain = run([NOTE])
    assert "\x1b[" not in plain
    assert "[N " in plain and "[P " in plain and "[C " in plain and "Change share 0.50" in plain
    assert plain.splitlines()[0].startswith("Verdict: procedural")
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


# --- reasons a social worker recognises, guidance only where it fits (issue 13) ----------------

import re  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import urllib.request  # noqa: E402

import pytest  # noqa: E402

from supervise_nlp import cli  # noqa: E402

ADMIN = ("Next supervision booked for 12/03/2025. TOIL to be taken by Friday. Signed: J Smith.\n"
         "Core group invites sent to Mum and Dad for 14/03. Core group minutes uploaded to the system.\n"
         "Home conditions checked and beds seen; Mum was told to keep the kitchen clean.\n"
         "Mum said she wants to be the parent she never had. Dad said he is proud of how far they have come.")


def test_reasons_are_categories_and_content_words_never_model_internals():
    ex = json.loads(run([ADMIN, "--format", "json", "--top", "8"]))
    from spacy.lang.en.stop_words import STOP_WORDS

    for s in ex["segments"]:
        for b in s["because"]:
            f = b["feature"]
            assert b["kind"] in ("category", "word") and b["weight"] > 0
            assert not re.search(r"(sentence|length|starts with|negated|shape|clause)", f), f
            if b["kind"] == "word":
                assert re.fullmatch(r"[a-z][a-z'’-]*[a-z]", f), f  # no punctuation, no digit masks
                assert f not in STOP_WORDS and f != "dddd", f
    invites = next(s for s in ex["segments"] if "invites" in s["text"])
    assert invites["category"]["concept"] == "meeting_logistics" and "core group" in invites["category"]["words"]
    wants = next(s for s in ex["segments"] if "wants to be" in s["text"])
    assert wants["category"]["concept"] == "motivation_goals" and "wants to" in wants["category"]["words"]
    assert "codebook" in wants["category"]


def test_guidance_only_where_a_change_focused_account_was_possible():
    ex = json.loads(run([ADMIN, "--format", "json"]))
    guided = {s["text"]: s["a_change_focused_account_would_record"] for s in ex["segments"]
              if "a_change_focused_account_would_record" in s}
    for s in ex["segments"]:
        if re.search(r"supervision booked|TOIL|Signed", s["text"]):
            assert s["text"] not in guided, s["text"]
        if s["label"] != "procedural":
            assert s["text"] not in guided
    invites = next(t for t in guided if "invites" in t)
    assert "meeting" in guided[invites]
    # never nag: one suggestion per category per note (the minutes share the invites' category)
    assert len(set(guided.values())) == len(guided) and len(guided) <= 3


def test_verdict_heads_the_text_and_html(tmp_path):
    text = run([ADMIN])
    assert text.splitlines()[0].startswith("Verdict: ")
    html = run([ADMIN, "--format", "html"])
    assert html.index("class=verdict") < html.index("class=seg")


def test_mistyped_file_name_is_no_such_file_not_a_note():
    for name in ("my-notes.txt", "visit notes.docx", "./notes/today"):
        res = CliRunner().invoke(main, ["explain", name])
        assert res.exit_code == 1 and "no such file" in res.stderr, name
    # a short note is still a note
    assert "Verdict" in run(["Mum said she wants to be the parent she never had."])


def test_bare_explain_on_a_terminal_prompts(monkeypatch):
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    res = CliRunner().invoke(main, ["explain"], input="Mum said she wants to stop drinking.\n")
    assert res.exit_code == 0 and "Paste the note" in res.stderr and "Ctrl-D" in res.stderr


def test_windows_1252_file_and_stdin_are_decoded_like_classify(tmp_path):
    raw = "Visit to Zoë at the café. Mum said she wants to stop drinking.".encode("cp1252")
    f = tmp_path / "note.txt"
    f.write_bytes(raw)
    for args, inp in (([str(f), "--format", "json"], None), (["--format", "json"], raw)):
        res = CliRunner().invoke(main, ["explain", *args], input=inp)
        assert res.exit_code == 0, res.output
        ex = json.loads(res.stdout)
        assert "Zoë" in ex["segments"][0]["text"] and "\ufffd" not in res.stdout
        assert "Windows-1252" in res.stderr


def test_watch_explains_each_note_as_it_arrives():
    notes = "Mum said she wants to stop drinking.\n---\nCore group invites sent.\n---\n\nChronology updated.\n"
    res = CliRunner().invoke(main, ["explain", "--watch", "--format", "json"], input=notes)
    assert res.exit_code == 0, res.output
    docs = [json.loads(d) for d in re.split(r"(?<=\n})\n(?={)", res.stdout.strip())]
    assert [d["segments"][0]["text"] for d in docs] == [
        "Mum said she wants to stop drinking.", "Core group invites sent.", "Chronology updated."]
    blank = CliRunner().invoke(main, ["explain", "--watch", "--separator", "", "--format", "json"],
                               input="Chronology updated.\n\nMum said she wants to stop drinking.\n")
    assert blank.stdout.count('"summary"') == 2


def test_serve_answers_a_post_on_loopback(labeller):
    from supervise_nlp.explain import make_server

    server = make_server(labeller, "127.0.0.1", 0)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    t = threading.Thread(target=server.handle_request, daemon=True)
    t.start()
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"note=Mum+said+she+wants+to+stop+drinking.",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=30) as r:
            page = r.read().decode()
    finally:
        t.join(timeout=30)
        server.server_close()
    assert "Verdict: change-focused" in page and "<textarea" in page and "<script" not in page


def test_serve_refuses_other_bind_addresses(labeller):
    from supervise_nlp.explain import make_server

    for host in ("0.0.0.0", "192.168.1.10", "::"):
        res = CliRunner().invoke(main, ["explain", "--serve", "--host", host])
        assert res.exit_code == 2 and "this machine only" in res.stderr
        with pytest.raises(ValueError):
            make_server(labeller, host, 0)
    assert socket  # the server binds through the socket module; nothing else is opened
