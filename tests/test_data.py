"""mtl.data.examples: Example validation, the prepared-data loaders, and the leakage check."""
import numpy as np
import pytest

from mtl.data import examples as data
from mtl.data.examples import (SPLITS, TASK_LABELS, DataError, Example, check_no_leakage, load_lee, load_ner,
                               load_sentiment, load_topic)
from mtl.data.prepare import prepare


@pytest.fixture(scope="module", autouse=True)
def prepared():
    prepare()  # a no-op when the data is up to date


# --- Example -----------------------------------------------------------------------------------------------

def test_example_accepts_any_subset_of_tasks():
    example = Example("Obama visited Paris", {"ner": ("B-PER", "O", "B-LOC"), "topic": "politics"},
                      ("Obama", "visited", "Paris"))
    assert example.labels["topic"] == "politics" and "sentiment" not in example.labels
    assert Example("no labels at all", {}).labels == {}


def test_example_rejects_a_tag_count_that_differs_from_the_word_count():
    with pytest.raises(ValueError, match="3 tags for 2 words"):
        Example("Obama visited", {"ner": ("B-PER", "O", "O")}, ("Obama", "visited"))


def test_example_rejects_token_labels_without_words_and_text_that_is_not_the_words():
    with pytest.raises(ValueError, match="no words"):
        Example("Obama visited", {"ner": ("B-PER", "O")})
    with pytest.raises(ValueError, match="joined by spaces"):
        Example("Obama  visited", {"ner": ("B-PER", "O")}, ("Obama", "visited"))


# --- prepared data -----------------------------------------------------------------------------------------

def test_loaders_return_labelled_examples_with_known_labels():
    for split in SPLITS:
        for example in load_topic(split):
            assert example.labels["topic"] in TASK_LABELS["topic"] and example.text
        for example in load_sentiment(split):
            assert example.labels["sentiment"] in TASK_LABELS["sentiment"]
            assert example.labels["genre"] in TASK_LABELS["genre"]
        for example in load_ner(split):
            assert set(example.labels["ner"]) <= set(TASK_LABELS["ner"])
            assert example.labels["topic"] in TASK_LABELS["topic"]
            assert len(example.labels["ner"]) == len(example.words)


def test_split_sizes():
    assert [len(load_topic(split)) for split in SPLITS] == [1492, 213, 422]
    assert [len(load_sentiment(split)) for split in SPLITS] == [16533, 2362, 4724]
    assert sum(len(load_ner(split)) for split in SPLITS) == 6381


def test_prepared_splits_do_not_leak():
    for load in (load_topic, load_sentiment, load_ner):
        check_no_leakage(*(load(split) for split in SPLITS))


def test_a_text_such_as_NA_stays_a_string(tmp_path, monkeypatch):
    path = tmp_path / "sentiment.csv"
    path.write_text("id,genre,rating,label,text,split\nnyt/1,nyt,0.0,neutral,NA,test\n")
    monkeypatch.setattr(data, "SENTIMENT_FILE", path)
    assert load_sentiment("test") == [Example("NA", {"sentiment": "neutral", "genre": "nyt"})]


def test_unknown_split_lists_the_valid_ones():
    for load in (load_topic, load_sentiment, load_ner):
        with pytest.raises(ValueError, match="'dev'.*train, validation, test"):
            load("dev")


def test_missing_data_says_to_run_prepare(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "TOPIC_FILE", tmp_path / "topic.csv")
    with pytest.raises(FileNotFoundError, match=r"python -m mtl\.data\.prepare"):
        load_topic("train")


def test_lee_is_50_documents_with_a_symmetric_similarity_matrix():
    documents, similarity = load_lee()
    assert len(documents) == 50 and all(documents)
    assert similarity.shape == (50, 50)
    assert np.array_equal(similarity, similarity.T)
    assert np.all(np.diag(similarity) == 1)
    assert similarity.min() >= 0 and similarity.max() <= 1
    assert "£" in " ".join(documents)  # the Latin-1 pound sign was decoded


# --- check_no_leakage --------------------------------------------------------------------------------------

def test_check_no_leakage_names_the_text_and_the_splits():
    train, test = [Example("a", {}), Example("b", {})], [Example("b", {}), Example("c", {})]
    with pytest.raises(DataError, match="'b' is in split 0 and split 1"):
        check_no_leakage(train, test)
    check_no_leakage(train, [Example("c", {})])
    check_no_leakage(["a", "a"], ["b"])  # a repeat within one split is not leakage
