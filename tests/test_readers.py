"""mtl.extras.cli.readers: users' CSV/TSV, JSON Lines and CoNLL files and texts to predict on, and their errors naming
the file and line (random rows and bytes: test_readers_property.py)."""
import io

import pytest

from mtl.data.examples import TASK_LABELS, DataError, Example
from mtl.extras.cli.readers import read_conll, read_csv, read_jsonl, read_texts


# --- read_csv ----------------------------------------------------------------------------------------------

def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_read_csv_reads_csv_and_tsv(tmp_path):
    csv_file = write(tmp_path, "reviews.csv", 'id,text,stars\n1,"Great, really",pos\n\n2,"Two\nlines",neg\n')
    examples = read_csv(csv_file, "text", "stars", "rating", label_names=["pos", "neg"])
    assert examples == [Example("Great, really", {"rating": "pos"}), Example("Two\nlines", {"rating": "neg"})]
    tsv_file = write(tmp_path, "reviews.tsv", "text\tstars\nGreat, really\tpos\n")
    assert read_csv(tsv_file, "text", "stars", "rating") == [Example("Great, really", {"rating": "pos"})]
    semicolons = write(tmp_path, "reviews.txt", "text;stars\nfine;pos\n")
    assert read_csv(semicolons, "text", "stars", "rating", sep=";") == [Example("fine", {"rating": "pos"})]


@pytest.mark.parametrize("content, message", [
    ("text,label\nfine,pos\n", r"reviews\.csv:1: no column 'stars'"),
    ('text,stars\nfine,pos\n"a\nb",pos\n  ,neg\n', r"reviews\.csv:5: empty text in column 'text'"),
    ("text,stars\nfine,pos\nbad,\n", r"reviews\.csv:3: empty label in column 'stars'"),
    ("text,stars\nfine,pos\nbad,meh\n", r"reviews\.csv:3: unknown label 'meh'; expected one of \['pos', 'neg'\]"),
    ("text,stars\nfine,pos,extra\n", r"reviews\.csv:2: 3 fields where the header has 2"),
    ("", r"reviews\.csv: empty file"),
    ("text,stars\n", r"reviews\.csv: no examples"),
])
def test_read_csv_errors_name_the_file_and_line(tmp_path, content, message):
    path = write(tmp_path, "reviews.csv", content)
    with pytest.raises(DataError, match=message):
        read_csv(path, "text", "stars", "rating", label_names=["pos", "neg"])


def test_read_csv_rejects_a_file_that_is_not_utf8(tmp_path):
    path = write(tmp_path, "reviews.csv", "text,stars\n".encode() + "café,pos\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"reviews\.csv:2: not UTF-8 \(byte 0xe9 at offset 14\)"):
        read_csv(path, "text", "stars", "rating")


# --- read_csv: columns by index, no header, TSV without quoting -----------------------------------------------

def test_read_csv_without_a_header_takes_columns_by_index(tmp_path):
    tsv = write(tmp_path, "news.tsv", "sport\tArsenal beat Chelsea\t2004\n\nbusiness\tShares fell\t2005\n")
    expected = [Example("Arsenal beat Chelsea", {"news": "sport"}), Example("Shares fell", {"news": "business"})]
    assert read_csv(tsv, 1, 0, "news", header=False) == expected
    assert read_csv(tsv, -2, -3, "news", header=False) == expected  # negative: from the end
    with_header = write(tmp_path, "news.csv", "label,text\nsport,Arsenal beat Chelsea\nbusiness,Shares fell\n")
    assert read_csv(with_header, 1, "label", "news") == expected  # a header, and a column by index


def test_a_tsv_file_has_no_quoting(tmp_path):
    tsv = write(tmp_path, "quotes.tsv", '"Hi," she said\tpos\n"unbalanced\tneg\n')
    assert [ex.text for ex in read_csv(tsv, 0, 1, "t", header=False)] == ['"Hi," she said', '"unbalanced']


@pytest.mark.parametrize("content, columns, message", [
    ("sport\tArsenal\n", ("text", 0), r"news\.tsv: column 'text' is a name, but the file has no header"),
    ("sport\tArsenal\n", (2, 0), r"news\.tsv:1: no column 2: the row has 2 fields"),
    ("sport\tArsenal\n", (0, -2), r"news\.tsv:1: text and label are the same column"),
    ("sport\tArsenal\nbusiness\tShares\tfell\n", (1, 0), r"news\.tsv:2: 3 fields where line 1 has 2"),
    ("sport\tArsenal\n\t \n", (1, 0), r"news\.tsv:2: empty text in column 1"),
])
def test_read_csv_without_a_header_names_file_and_line_of_a_problem(tmp_path, content, columns, message):
    path = write(tmp_path, "news.tsv", content)
    with pytest.raises(DataError, match=message):
        read_csv(path, *columns, "news", header=False)


def test_read_csv_rejects_malformed_quoting_naming_the_line(tmp_path):
    path = write(tmp_path, "reviews.csv", 'text,stars\nfine,pos\n"quoted" trailing,neg\n')
    with pytest.raises(DataError, match=r"reviews\.csv:3: malformed CSV"):
        read_csv(path, "text", "stars", "rating")


def test_a_missing_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: cannot read the file: No such file"):
        read_csv(tmp_path / "nope.csv", "text", "label", "t")


# --- read_jsonl ----------------------------------------------------------------------------------------------

def test_read_jsonl_reads_sentence_and_token_examples(tmp_path):
    reviews = write(tmp_path, "reviews.jsonl",
                    '{"review": " Loved it ", "stars": 5}\n\n{"review": "Dull", "stars": "1"}\n')
    assert read_jsonl(reviews, "review", "stars", "rating") == [
        Example("Loved it", {"rating": "5"}), Example("Dull", {"rating": "1"})]  # an integer label as in a CSV file
    ner = write(tmp_path, "ner.jsonl", '{"words": ["Obama", "visited", "U.S."], "tags": ["B-PER", "O", "B-LOC"]}\n')
    assert read_jsonl(ner, "words", "tags", "ner", TASK_LABELS["ner"], kind="token") == [
        Example("Obama visited U.S.", {"ner": ("B-PER", "O", "B-LOC")}, ("Obama", "visited", "U.S."))]


@pytest.mark.parametrize("line, kind, message", [
    ('{"text": "ok", "label": "pos"', "sentence", r"x\.jsonl:2: not valid JSON"),
    ('["ok", "pos"]', "sentence", r"x\.jsonl:2: expected a JSON object"),
    ('{"text": "ok"}', "sentence", r"x\.jsonl:2: no field 'label'; the object has \['text'\]"),
    ('{"text": "  ", "label": "pos"}', "sentence", r"x\.jsonl:2: empty text in field 'text'"),
    ('{"text": "ok", "label": true}', "sentence", r"x\.jsonl:2: field 'label' must be a string or an integer"),
    ('{"text": "ok", "label": "meh"}', "sentence", r"x\.jsonl:2: unknown label 'meh'"),
    ('{"text": "bad \\ud800", "label": "pos"}', "sentence", r"x\.jsonl:2: not valid Unicode: a lone surrogate"),
    ('{"text": ["a", "b"], "label": ["O"]}', "token", r"x\.jsonl:2: 1 tags in 'label' for 2 words"),
    ('{"text": ["a b"], "label": ["O"]}', "token",
     r"x\.jsonl:2: word 0 of field 'text' is empty or contains whitespace"),
    ('{"text": ["a"], "label": ["PER"]}', "token", r"x\.jsonl:2: tag 'PER' is not a BIO tag"),
    ('{"text": "a", "label": ["O"]}', "token", r"x\.jsonl:2: field 'text' must be a non-empty list of words"),
])
def test_read_jsonl_errors_name_the_file_and_line(tmp_path, line, kind, message):
    first = '{"text": ["fine"], "label": ["O"]}' if kind == "token" else '{"text": "fine", "label": "pos"}'
    path = write(tmp_path, "x.jsonl", first + "\n" + line + "\n")
    labels = ["O", "B-PER"] if kind == "token" else ["pos", "neg"]
    with pytest.raises(DataError, match=message):
        read_jsonl(path, "text", "label", "t", labels, kind=kind)


# --- read_conll --------------------------------------------------------------------------------------------

def test_read_conll_reads_sentences_and_keeps_tags_as_written(tmp_path):
    path = write(tmp_path, "ner.conll", "-DOCSTART- O\n\nObama B-PER\nvisited O\n\n\nin\tO\nParis I-LOC")
    assert read_conll(path, label_names=TASK_LABELS["ner"]) == [
        Example("Obama visited", {"ner": ("B-PER", "O")}, ("Obama", "visited")),
        Example("in Paris", {"ner": ("O", "I-LOC")}, ("in", "Paris")),  # I- after O is accepted
    ]
    assert read_conll(path, task="entities")[0].labels == {"entities": ("B-PER", "O")}


@pytest.mark.parametrize("content, message", [
    ("Obama B-PER\nvisited O O\n", r"ner\.conll:2: 3 columns where line 1 has 2: 'visited O O'"),
    ("Obama B-PER\n\nParis\n", r"ner\.conll:3: 1 columns where line 1 has 2"),
    ("Obama B-PER\nParis B-GPE\n", r"ner\.conll:2: unknown label 'B-GPE'"),
    ("", r"ner\.conll: no sentences"),
    ("-DOCSTART- -X- O O\n\n", r"ner\.conll: no sentences"),
])
def test_read_conll_errors_name_the_file_and_line(tmp_path, content, message):
    path = write(tmp_path, "ner.conll", content)
    with pytest.raises(DataError, match=message):
        read_conll(path, label_names=TASK_LABELS["ner"])


def test_read_conll_rejects_a_file_that_is_not_utf8(tmp_path):
    path = write(tmp_path, "ner.conll", b"Obama B-PER\n\nM\xfcnchen B-LOC\n")
    with pytest.raises(DataError, match=r"ner\.conll:3: not UTF-8 \(byte 0xfc at offset 14\)"):
        read_conll(path)


# --- read_conll: any number of columns ---------------------------------------------------------------------

CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German\tJJ\tB-NP\tB-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_read_conll_reads_the_four_column_conll_2003_layout(tmp_path):
    path = write(tmp_path, "train.txt", CONLL_2003)
    assert read_conll(path, label_names=TASK_LABELS["ner"]) == [  # tag: the last column; spaces or tabs
        Example("EU rejects German call", {"ner": ("B-ORG", "O", "B-MISC", "O")}, ("EU", "rejects", "German", "call")),
        Example("Peter Blackburn", {"ner": ("B-PER", "I-PER")}, ("Peter", "Blackburn")),
    ]
    chunks = read_conll(path, task="chunk", tag_column=2)  # another column as the tag
    assert chunks[0].labels == {"chunk": ("B-NP", "B-VP", "B-NP", "I-NP")}


@pytest.mark.parametrize("columns, message", [
    ({"tag_column": 1}, r"train\.txt:3: tag 'NNP' is not a BIO tag \(O, B-TYPE or I-TYPE\)"),
    ({"tag_column": 4}, r"train\.txt:3: no column 4 \(tag_column\): the line has 4 columns"),
    ({"word_column": -1}, r"train\.txt:3: word and tag are the same column"),
])
def test_read_conll_checks_the_chosen_columns(tmp_path, columns, message):
    path = write(tmp_path, "train.txt", CONLL_2003)
    with pytest.raises(DataError, match=message):
        read_conll(path, **columns)


# --- read_texts: inputs to predict on ------------------------------------------------------------------------

def test_read_texts_reads_lines_json_lines_and_streams(tmp_path):
    assert read_texts(write(tmp_path, "in.txt", "Shares fell.\r\nU.S. won 3-0\n")) == ["Shares fell.", "U.S. won 3-0"]
    jsonl = write(tmp_path, "in.jsonl", '{"text": "Shares fell."}\n\n{"words": ["U.S.", "won"]}\n')
    assert read_texts(jsonl) == ["Shares fell.", ("U.S.", "won")]
    stream = io.BytesIO(b"one\ntwo\n")
    stream.name = "<stdin>"
    assert read_texts(stream) == ["one", "two"]


@pytest.mark.parametrize("name, content, message", [
    ("in.txt", "one\n\nthree\n", r"in\.txt:2: empty line \(one text per line\)"),
    ("in.txt", "", r"in\.txt: no texts"),
    ("in.txt", b"caf\xe9\n", r"in\.txt:1: not UTF-8"),
    ("in.jsonl", '{"text": "a", "words": ["a"]}\n', r'in\.jsonl:1: expected a field "text" or a field "words"'),
    ("in.jsonl", '{"text": ""}\n', r'in\.jsonl:1: field "text" must be a non-empty string'),
    ("in.jsonl", '{"text": "\\udc00"}\n', r"in\.jsonl:1: not valid Unicode"),
])
def test_read_texts_errors_name_the_file_and_line(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        read_texts(write(tmp_path, name, content))
