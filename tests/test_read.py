"""Reading every input format, and every bad record ending as a reject with file, line and reason."""

import io

import pytest

from supervise_nlp.read import InputError, Note, ReadOptions, Reject, read_records


def split(items):
    items = list(items)
    return [i for i in items if isinstance(i, Note)], [i for i in items if isinstance(i, Reject)]


def test_jsonl_notes_and_every_kind_of_bad_line(data):
    notes, rejects = split(read_records([str(data / "notes.jsonl")]))
    assert [n.id for n in notes] == ["n1", "n2", "n5"]
    reasons = {r.line: r.reason for r in rejects}
    assert reasons[4] == "text is a number, not a string"
    assert reasons[5] == "text is only whitespace"
    assert reasons[6].startswith("malformed JSON")
    assert reasons[7] == "the line is a list, not a JSON object"
    assert reasons[9] == "text is null"
    assert reasons[10].startswith("no 'text' field")
    assert "cut short" in reasons[11]
    assert all(r.source.endswith("notes.jsonl") for r in rejects)
    # unknown fields are carried through untouched
    assert notes[0].fields["case_ref"] == "X-17"
    assert "text" not in notes[0].fields


def test_csv_with_quoted_multiline_field_keeps_record_start_lines(data):
    notes, rejects = split(read_records([str(data / "notes.csv")]))
    assert [n.id for n in notes] == ["c1", "c2"]
    assert "\n" in notes[0].text
    assert notes[0].line == 2 and notes[1].line == 4
    assert notes[0].fields["extra"] == "x"
    assert len(rejects) == 1 and rejects[0].line == 5 and rejects[0].reason == "text is empty"


def test_csv_with_bom_reads_clean_header_and_text(data):
    notes, _ = split(read_records([str(data / "bom.csv")]))
    assert notes[0].id == "b1" and notes[0].text.startswith("Zoë")


def test_windows_1252_csv_is_detected_not_garbled(data):
    said = []
    notes, _ = split(read_records([str(data / "cp1252.csv")], notice=said.append))
    assert notes[0].text == "Renée said she felt “stuck” and wants a fresh start."
    assert "Windows-1252" in said[0]


def test_forcing_utf8_on_windows_1252_rejects_with_a_hint(data):
    notes, rejects = split(read_records([str(data / "cp1252.csv")], ReadOptions(encoding="utf-8")))
    assert not notes and "cp1252" in rejects[0].reason


def test_csv_without_text_column_rejects_every_row_with_the_columns_named(data):
    notes, rejects = split(read_records([str(data / "no_text_column.csv")]))
    # the first row may itself be a note (no header row), so it is counted too
    assert not notes and [r.line for r in rejects] == [1, 2]
    assert "no 'text' column" in rejects[0].reason and "body" in rejects[0].reason


def test_headerless_csv_counts_its_first_row_and_never_echoes_note_text(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text('a1,Team A,Mum disclosed that she is pregnant. She is scared.\r\n'
                 'a2,Team A,Second note.\r\n', encoding="utf-8")
    notes, rejects = split(read_records([str(p)]))
    assert not notes and [r.line for r in rejects] == [1, 2]
    assert all("pregnant" not in r.reason for r in rejects)


def test_csv_note_over_csv_default_field_limit_is_one_record(tmp_path):
    p = tmp_path / "big.csv"
    long_note = ("Para, with a comma and a \"quote\".\n" * 6000)
    p.write_text('id,team,text\r\n1,A,"' + long_note.replace('"', '""') + '"\r\n2,B,short\r\n', encoding="utf-8")
    notes, rejects = split(read_records([str(p)]))
    assert [n.id for n in notes] == ["1", "2"] and not rejects
    assert notes[0].text == long_note and notes[0].fields["team"] == "A"


def test_mac_cr_line_endings_and_one_bad_byte_lose_no_other_row(tmp_path):
    p = tmp_path / "mac.csv"
    p.write_bytes(b"id,text\r1,one\r2,tw\x81o\r3,three\r")
    notes, rejects = split(read_records([str(p)]))
    assert [n.id for n in notes] == ["1", "3"] and [r.line for r in rejects] == [3]
    assert "not valid" in rejects[0].reason


def test_json_array_file_and_nan_fields(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('[{"id": 1, "text": "one.", "score": NaN}, 5, {"id": 3, "text": "three."}]')
    notes, rejects = split(read_records([str(p)]))
    assert [n.id for n in notes] == [1, 3] and notes[0].fields["score"] is None
    assert rejects[0].line == 2 and "not a JSON object" in rejects[0].reason


def test_mapped_field_does_not_overwrite_a_column_of_the_standard_name(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("id,text,Case note\r\n1,an old summary,Mum said she wants to try.\r\n")
    notes, _ = split(read_records([str(p)], ReadOptions(field_map={"text": "Case note"})))
    assert notes[0].text == "Mum said she wants to try." and notes[0].fields["input_text"] == "an old summary"


def test_field_mapping_renames_columns(data):
    opts = ReadOptions(field_map={"text": "body"})
    notes, _ = split(read_records([str(data / "no_text_column.csv")], opts))
    assert notes[0].text == "a note in the wrong column"


def test_text_folder_one_note_per_file_with_id_from_name(data):
    notes, rejects = split(read_records([str(data / "txt_notes")]))
    assert [n.id for n in notes] == ["hollis-2025-02-01", "strategy"] and not rejects


def test_labelled_corpus_record_is_read_as_its_joined_text(data):
    notes, _ = split(read_records([str(data / "mini_corpus.jsonl")]))
    assert notes[1].text.startswith("Supervision 11/02\n- chronology")
    assert "segments" not in notes[1].fields
    assert notes[0].text == "Present: SW, Mum and Leo (6). Mum said she wants Leo to feel safe at home again. " \
                            "SW to update the CIN plan on the system by Friday."


def test_huge_note_rejected_with_the_limit_named(tmp_path):
    p = tmp_path / "big.jsonl"
    p.write_text('{"id": "big", "text": "' + "word " * 3000 + '"}\n')
    _, rejects = split(read_records([str(p)], ReadOptions(max_chars=10_000)))
    assert "over the limit of 10,000" in rejects[0].reason


def test_missing_path_and_empty_folder_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(read_records([str(tmp_path / "nope.jsonl")]))
    with pytest.raises(InputError, match="no .txt files"):
        list(read_records([str(tmp_path)]))


def test_stdin_plain_text_and_jsonl(monkeypatch):
    class FakeStdin:
        def __init__(self, data):
            self.buffer = io.BytesIO(data)

    monkeypatch.setattr("sys.stdin", FakeStdin(b"Mum said she wants things to change."))
    notes, _ = split(read_records(["-"]))
    assert notes[0].text == "Mum said she wants things to change." and notes[0].source == "<stdin>"
    monkeypatch.setattr("sys.stdin", FakeStdin(b'{"id": "s1", "text": "hello"}\n'))
    notes, _ = split(read_records(["-"]))
    assert notes[0].id == "s1"


def test_empty_file_is_reported_and_gives_no_records(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    said = []
    assert list(read_records([str(p)], notice=said.append)) == []
    assert said == [f"{p}: empty file, no records"]
