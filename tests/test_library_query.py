"""Search, filter and sort logic of the library table (bst_core.library_query)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bst_core.corpus import empty_table
from bst_core.library_query import (
    LIBRARY_COLUMNS,
    Filters,
    TextIndex,
    filter_mask,
    library_frame,
    parse_query,
    query_mask,
    set_edited,
    set_predictions,
    sort_order,
)


@pytest.fixture()
def frame() -> pd.DataFrame:
    table = empty_table(5)
    table["id"] = ["101", "102", "103", "104", "105"]
    table["title"] = ["Dog bark", "Rain on roof", "Door slam", "City park ambience", "Piano chord"]
    table["tags"] = ["dog animal", "rain weather", "door wood", "birds city", "piano"]
    table["description"] = ["", "heavy rain", "a slam", "", "C major"]
    table["label"] = ["fx-a", "ss-n", "fx-o", "ss-u", ""]
    table["audio_path"] = ["/a/101.wav", "/a/102.wav", "", "/a/104.wav", "/a/105.wav"]
    frame = library_frame(table)
    set_predictions(frame, ["101", "102", "103", "104", "105"],
                    ["fx-a", "ss-u", "fx-o", "ss-u", "is-k"], [0.9, 0.4, 0.8, 0.55, 0.7])
    return frame


def ids(frame: pd.DataFrame, mask: np.ndarray) -> list[str]:
    return frame["id"][mask].tolist()


def test_library_frame_has_display_columns_and_status(frame: pd.DataFrame) -> None:
    assert set(LIBRARY_COLUMNS) <= set(frame.columns)
    assert frame["audio"].tolist() == [""] * 5            # no embeddings yet: unknown
    assert frame["status"].tolist() == ["ok", "ok", "no audio", "ok", "ok"]
    assert frame["top"].tolist() == ["fx", "ss", "fx", "ss", "is"]   # prediction's top level
    assert np.isnan(frame["duration_s"]).all()


def test_audio_status_comes_from_the_corpus_then_from_the_predictions() -> None:
    table = empty_table(3)
    table["id"] = ["1", "2", "3"]
    table["audio_path"] = ["/s/1.wav", "/s/2.wav", "/s/3.wav"]
    frame = library_frame(table, ["ok", "text only: empty file (0 bytes)", "ok"])
    assert frame["audio"].tolist() == ["ok", "text only: empty file (0 bytes)", "ok"]
    assert frame["status"].tolist() == ["ok", "text only", "ok"]          # never "ok" for undecodable audio
    set_predictions(frame, ["3", "1"], ["fx-o", "fx-v"], [0.5, 0.6],
                    audio_status=["text only: not an audio file", "ok"])
    assert frame["audio"].tolist() == ["ok", "text only: empty file (0 bytes)", "text only: not an audio file"]
    assert frame["status"].tolist() == ["ok", "text only", "text only"]
    with pytest.raises(ValueError, match="audio statuses"):
        library_frame(table, ["ok"])


def test_set_predictions_aligns_by_id_and_clears_missing(frame: pd.DataFrame) -> None:
    where = set_predictions(frame, ["104", "101"], ["m-p", "sp-s"], [0.3, 0.6])
    assert where.tolist() == [1, -1, -1, 0, -1]
    assert frame["prediction"].tolist() == ["sp-s", "", "", "m-p", ""]
    assert frame["top"].tolist() == ["sp", "ss", "fx", "m", ""]   # truth's top where no prediction
    assert np.isnan(frame["score"][1])


def test_words_are_anded_and_case_insensitive(frame: pd.DataFrame) -> None:
    assert ids(frame, query_mask(frame, "RAIN")) == ["102"]
    assert ids(frame, query_mask(frame, "city birds")) == ["104"]
    assert ids(frame, query_mask(frame, "city rain")) == []


def test_exclude_phrase_and_class_cells(frame: pd.DataFrame) -> None:
    assert ids(frame, query_mask(frame, "-rain -dog")) == ["103", "104", "105"]
    assert ids(frame, query_mask(frame, '"heavy rain"')) == ["102"]
    assert ids(frame, query_mask(frame, "is-k")) == ["105"]   # class cells are searchable text


def test_field_terms(frame: pd.DataFrame) -> None:
    assert ids(frame, query_mask(frame, "class:ss-u")) == ["102", "104"]   # truth or prediction
    assert ids(frame, query_mask(frame, "truth:ss-u")) == ["104"]
    assert ids(frame, query_mask(frame, "pred:ss-u")) == ["102", "104"]
    assert ids(frame, query_mask(frame, "top:ss")) == ["102", "104"]
    assert ids(frame, query_mask(frame, "class:fx")) == ["101", "103"]     # a top key = its classes
    assert ids(frame, query_mask(frame, "class:fx-o,is-k")) == ["103", "105"]
    assert ids(frame, query_mask(frame, "-class:fx")) == ["102", "104", "105"]


def test_confidence_terms(frame: pd.DataFrame) -> None:
    assert ids(frame, query_mask(frame, "score>0.75")) == ["101", "103"]
    assert ids(frame, query_mask(frame, "conf<0.5")) == ["102"]


def test_unknown_class_is_a_problem_and_matches_nothing(frame: pd.DataFrame) -> None:
    query = parse_query("class:zz-q dog")
    assert query.problems and "zz-q" in query.problems[0]
    assert not query_mask(frame, query).any()


def test_unbalanced_quote_while_typing_does_not_raise(frame: pd.DataFrame) -> None:
    assert ids(frame, query_mask(frame, '"dog')) == ["101"]
    assert parse_query("").empty


def test_text_index_narrows_cached_words_without_changing_results(frame: pd.DataFrame) -> None:
    index = TextIndex(frame)
    assert index.texts[0].startswith("101\tdog bark")
    for typed in ("r", "ra", "rai", "rain", "o", "oo", "door"):     # as if typed letter by letter
        assert (query_mask(frame, typed, index) == query_mask(frame, typed)).all()
    assert ids(frame, query_mask(frame, "door", index)) == ["103"]
    assert ids(frame, query_mask(frame, "o -door", index)) == ["101", "102", "105"]


def test_filters(frame: pd.DataFrame) -> None:
    assert ids(frame, filter_mask(frame, Filters())) == frame["id"].tolist()
    assert ids(frame, filter_mask(frame, Filters(predicted=frozenset({"ss-u"})))) == ["102", "104"]
    assert ids(frame, filter_mask(frame, Filters(tops=frozenset({"fx", "is"})))) == ["101", "103", "105"]
    assert ids(frame, filter_mask(frame, Filters(score_min=0.6, score_max=0.85))) == ["103", "105"]
    # truth ≠ prediction needs both: 105 has no truth
    assert ids(frame, filter_mask(frame, Filters(disagree=True))) == ["102"]
    assert ids(frame, filter_mask(frame, Filters(truth="ss-n", prediction="ss-u"))) == ["102"]
    assert ids(frame, filter_mask(frame, Filters(ids=frozenset({"104", "101", "999"})))) == ["101", "104"]
    assert not Filters().active and Filters(disagree=True).active


def test_duration_filter_keeps_only_known_durations(frame: pd.DataFrame) -> None:
    frame["duration_s"] = [1.0, 5.0, np.nan, 12.0, 0.2]
    assert ids(frame, filter_mask(frame, Filters(duration_min=0.5, duration_max=10))) == ["101", "102"]


def test_edited_labels_set_status_and_are_searchable(frame: pd.DataFrame) -> None:
    set_edited(frame, {"103": "fx-m"})
    assert frame["status"].tolist() == ["ok", "ok", "edited", "ok", "ok"]
    assert ids(frame, query_mask(frame, "edited:fx-m")) == ["103"]
    set_edited(frame, {})
    assert frame["status"][2] == "no audio"


def test_sort_order_numeric_text_class_and_missing_last(frame: pd.DataFrame) -> None:
    frame.loc[1, "score"] = np.nan
    assert frame["id"][sort_order(frame, "score")].tolist() == ["104", "105", "103", "101", "102"]
    assert frame["id"][sort_order(frame, "score", descending=True)].tolist() == \
        ["101", "103", "105", "104", "102"]
    assert frame["id"][sort_order(frame, "title")].tolist() == ["104", "101", "103", "105", "102"]
    # truth in taxonomy order (fx before ss), the unlabelled row last either way
    by_truth = frame["id"][sort_order(frame, "truth")].tolist()
    assert by_truth[-1] == "105" and by_truth.index("101") < by_truth.index("102")
    assert frame["id"][sort_order(frame, "truth", descending=True)].tolist()[-1] == "105"


def test_text_index_stays_valid_when_predictions_change(frame: pd.DataFrame) -> None:
    index = TextIndex(frame)
    assert ids(frame, query_mask(frame, "m-p", index)) == []
    set_predictions(frame, ["102"], ["m-p"], [0.5])
    assert ids(frame, query_mask(frame, "m-p", index)) == ["102"]


def test_ids_made_of_digits_sort_numerically() -> None:
    table = empty_table(4)
    table["id"] = ["1000", "999", "20", "3"]
    frame = library_frame(table)
    assert frame["id"][sort_order(frame, "id")].tolist() == ["3", "20", "999", "1000"]
    assert frame["id"][sort_order(frame, "id", descending=True)].tolist() == ["1000", "999", "20", "3"]


# --- status:, edited, unknown fields, decision (issue 8, issue 9 §4) ------------------------------

def test_status_field_matches_the_status_column_and_a_first_word(frame: pd.DataFrame) -> None:
    set_edited(frame, {"104": "ss-n"})
    assert frame["status"].tolist() == ["ok", "ok", "no audio", "edited", "ok"]
    assert ids(frame, query_mask(frame, "status:ok")) == ["101", "102", "105"]
    assert ids(frame, query_mask(frame, 'status:"no audio"')) == ["103"]
    assert ids(frame, query_mask(frame, "status:no")) == ["103"]
    assert ids(frame, query_mask(frame, "status:edited")) == ["104"]
    assert ids(frame, query_mask(frame, "-status:ok")) == ["103", "104"]
    bad = parse_query("status:great")
    assert bad.problems and "not a status" in bad.problems[0] and not query_mask(frame, bad).any()


def test_edited_word_means_has_an_edited_label(frame: pd.DataFrame) -> None:
    set_edited(frame, {"102": "ss-n", "105": "is-p"})
    assert ids(frame, query_mask(frame, "edited")) == ["102", "105"]
    assert ids(frame, query_mask(frame, "-edited")) == ["101", "103", "104"]
    assert ids(frame, query_mask(frame, "edited top:ss")) == ["102"]


def test_an_unknown_field_is_not_understood_and_matches_nothing(frame: pd.DataFrame) -> None:
    query = parse_query("colour:red dog")
    assert query.problems and "colour: is not a search field" in query.problems[0]
    assert not query_mask(frame, query).any()
    assert parse_query("12:30").words == ("12:30",)          # not letters before the colon: a word


def test_decision_column_from_abstain_and_its_search(frame: pd.DataFrame) -> None:
    from bst_core.abstain import abstain_frame
    from bst_core.library_query import decision_words, set_decisions
    from bst_core.predictions import Predictions
    from bst_core.taxonomy import CLASS_INDEX, NUM_CLASSES

    probs = np.full((3, NUM_CLASSES), 0.0)
    probs[0, CLASS_INDEX["fx-a"]] = 1.0                                     # sure leaf
    probs[1, [CLASS_INDEX["ss-u"], CLASS_INDEX["ss-n"]]] = [0.4, 0.35]      # unsure leaf, clear top
    probs[1, CLASS_INDEX["fx-o"]] = 0.25
    probs[2, CLASS_INDEX["fx-o"]] = 0.9
    probs[2, CLASS_INDEX["fx-a"]] = 0.1
    predictions = Predictions(["101", "102", "103"], probs)
    decisions = abstain_frame(predictions, 0.6)["decision"].tolist()
    assert decisions == ["fx-a", "ss", "fx-o"]
    set_decisions(frame, predictions.ids, decisions)
    assert frame["decision"].tolist() == ["fx-a", "ss", "fx-o", "", ""]
    assert decision_words("ss") == "ss, leaf unsure" and decision_words("fx-o") == "fx-o"
    assert ids(frame, query_mask(frame, "decision:top")) == ["102"]
    assert ids(frame, query_mask(frame, "abstained")) == ["102"]
    assert ids(frame, query_mask(frame, "decision:leaf")) == ["101", "103"]
    assert ids(frame, query_mask(frame, "decision:fx-o")) == ["103"]
    assert ids(frame, query_mask(frame, "decision:ss")) == ["102"]
    assert parse_query("decision:maybe").problems
    assert parse_query("decision:top").uses("decision") and not parse_query("top:fx").uses("decision")
    order = sort_order(frame, "decision")
    assert frame["id"][order].tolist()[:3] == ["103", "101", "102"]        # fx-o, fx-a (taxonomy order), ss


def test_filters_round_trip_through_a_dict() -> None:
    from bst_core.library_query import filters_from_dict, filters_to_dict

    filters = Filters(predicted=frozenset({"fx-o", "ss-n"}), tops=frozenset({"fx"}), score_min=0.25,
                      disagree=True, truth="fx-a", ids=frozenset({"1", "2"}))
    data = filters_to_dict(filters)
    assert filters_from_dict(data) == filters
    assert filters_to_dict(Filters()) == {}
    assert "ids" not in filters_to_dict(Filters(ids=frozenset(map(str, range(10)))), max_ids=5)
    assert filters_from_dict({"predicted": ["fx-o", "nonsense"], "unknown": 1}) == Filters(
        predicted=frozenset({"fx-o"}))
