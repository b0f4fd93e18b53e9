"""The search language and the text rules shared by both databases' indexes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from feeds_server.domain import search_text
from feeds_server.domain.search_query import SearchCursor, decode_cursor, encode_cursor, parse
from feeds_server.errors import ValidationFailed

ME = 42


def test_words_are_normalized_and_stop_words_left_out():
    q = parse("Réunions THE meetings le", ME)
    assert q.words == ("reunions", "meetings")
    assert q.ignored == ("the", "le")
    assert q.has_text and not q.is_empty


def test_a_quoted_phrase_keeps_its_words_in_order():
    q = parse('budget "Quarterly  Review" "single"', ME)
    assert q.words == ("budget", "single")
    assert q.phrases == (("quarterly", "review"),)


def test_an_unclosed_quote_runs_to_the_end():
    assert parse('"next steps', ME).phrases == (("next", "steps"),)


def test_every_filter():
    q = parse('from:me from:@[user:7] from:9 in:"Sales team" in:12 module:Deals type:comment type:record has:file '
              "before:2026-03-10 after:2026-03-01 deal", ME)
    assert q.authors == (ME, 7, 9)
    assert q.groups == ("Sales team", "12")
    assert q.modules == ("Deals",)
    assert q.types == ("comment", "record")
    assert q.has_file
    assert q.before == datetime(2026, 3, 10, tzinfo=timezone.utc)
    assert q.after == datetime(2026, 3, 2, tzinfo=timezone.utc)  # after the day ends
    assert q.words == ("deal",)


def test_filters_alone_are_a_query_and_an_unknown_key_is_words():
    q = parse("from:me", ME)
    assert not q.has_text and not q.is_empty
    assert parse("subject:budget", ME).words == ("subject", "budget")
    assert parse("the", ME).is_empty


@pytest.mark.parametrize("bad", ["from:someone", "from:0", "type:email", "has:link", "before:2026-13-01", "after:yesterday", 'in:""'])
def test_bad_filter_values_are_refused_with_a_stable_code(bad):
    with pytest.raises(ValidationFailed) as err:
        parse(bad, ME)
    assert err.value.code == "invalid_search_query"


def test_too_long_or_too_many_words_are_refused():
    with pytest.raises(ValidationFailed):
        parse("a" * 501, ME)
    with pytest.raises(ValidationFailed):
        parse(" ".join(f"word{n}" for n in range(17)), ME)


def test_stems_are_accent_insensitive_in_english_and_french():
    assert search_text.stem("reunions", "fr") == search_text.stem(search_text.normalize("Réunion"), "fr")
    assert search_text.stem("meetings", "en") == search_text.stem("meeting", "en")
    assert search_text.stems("Les réunions @[user:3] d'équipe", "fr") == "le reunion equip"
    assert search_text.normalize("Œuvre Straße") == "oeuvre strasse"


def test_the_excerpt_marks_matched_words_as_plain_text_parts():
    parts = search_text.excerpt("We had <b>meetings</b> about réunions", parse("meeting reunion", ME).lexemes())
    assert [p["text"] for p in parts if p["hit"]] == ["meetings", "réunions"]
    assert "".join(p["text"] for p in parts) == "We had <b>meetings</b> about réunions"


def test_a_long_text_is_cut_around_the_first_hit_on_word_boundaries():
    text = " ".join(["filler"] * 60) + " budget " + " ".join(["tail"] * 60)
    parts = search_text.excerpt(text, parse("budget", ME).lexemes(), width=80)
    joined = "".join(p["text"] for p in parts)
    assert parts[0]["text"] == "…" and parts[-1]["text"] == "…"
    assert [p["text"] for p in parts if p["hit"]] == ["budget"]
    assert len(joined) <= 84 and "fille " not in joined


def test_cursor_round_trips_and_refuses_forgeries():
    for c in (SearchCursor(top=900, score=123, item_id=45), SearchCursor(top=900)):
        assert decode_cursor(encode_cursor(c)) == c
    forged = [encode_cursor(SearchCursor(top=1, score=1, item_id=1))[:-2] + "!!", encode_cursor(SearchCursor(top=10, score=1, item_id=11))]
    for bad in ("", "abc", "dzEuMg", *forged):  # "w1.2": two numbers
        with pytest.raises(ValidationFailed):
            decode_cursor(bad)


def test_the_sqlite_rank_depends_on_the_item_and_the_query_alone():
    from feeds_server.store.sqlite_functions import search_rank, search_stems

    def rank(text: str, q: str) -> int:
        words = parse(q, ME).words
        return search_rank(search_stems(text, "en"), search_stems(text, "fr"),
                           " ".join(search_text.stem(w, "en") for w in words), " ".join(search_text.stem(w, "fr") for w in words))

    assert rank("pipeline pipeline pipeline", "pipelines") > rank("a pipeline among other words", "pipelines") > 0
    assert rank("réunion et meeting", "reunions meetings") > rank("réunion seule", "reunions meetings")
    assert rank("nothing here", "pipeline") == 0 and rank("anything", "the") == 0
