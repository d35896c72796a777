"""Segmenting notes into the codebook's unit, with offsets into the note text."""

from hypothesis import given, settings
from hypothesis import strategies as st

from supervise_nlp.segment import segment_texts


def seg(text):
    return [s.text for s in next(segment_texts([text]))]


def test_recording_abbreviations_do_not_split():
    assert seg("s.47 enquiry started approx. 3 weeks ago. Dr. Patel saw J. Smith, D.o.B. 12/03/2015. mum ok") == [
        "s.47 enquiry started approx. 3 weeks ago.", "Dr. Patel saw J. Smith, D.o.B. 12/03/2015.", "mum ok"]


def test_lines_bullets_and_list_numbers_are_segments():
    assert seg("1. Visit to home\n2. Seen alone\n- bullet one\n\nActions 14/03:\nSW to do x") == [
        "1. Visit to home", "2. Seen alone", "- bullet one", "Actions 14/03:", "SW to do x"]


def test_quotes_brackets_and_missing_space_after_full_stop():
    assert seg('She said "no." Then left. (fine.) Visit ended.Mum waved') == [
        'She said "no."', "Then left.", "(fine.)", "Visit ended.", "Mum waved"]


def test_terse_lower_case_lines_stay_separate_but_wrapped_prose_is_joined():
    text = "arrived 4.10 after school, kacey still in uniform eating crisps on settee\nseen both kids alone"
    assert seg(text) == ["arrived 4.10 after school, kacey still in uniform eating crisps on settee",
                         "seen both kids alone"]
    assert seg("Mum said she wants things to be different and\nshe is ready to try.") == [
        "Mum said she wants things to be different and\nshe is ready to try."]


def test_offsets_point_into_the_note():
    text = "  Present: SW, Mum.\r\n\r\nMum said she was tired.  "
    segs = next(segment_texts([text]))
    assert [(s.start, s.end) for s in segs] == [(2, 19), (23, 46)]
    assert all(text[s.start:s.end] == s.text for s in segs)


def test_whitespace_only_text_has_no_segments():
    assert seg(" \n\t ") == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=8))
def test_any_text_segments_inside_the_note_in_order(texts):
    for text, segs in zip(texts, segment_texts(texts)):
        last = 0
        for s in segs:
            assert 0 <= last <= s.start < s.end <= len(text)
            assert text[s.start:s.end] == s.text and s.text.strip()
            last = s.end
