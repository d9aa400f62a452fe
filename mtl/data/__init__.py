"""The data: built-in corpora prepared from PyPI archives (``prepare``), examples and their readers (``examples``),
and the word splitting token tasks share (``words``). Everything above reads examples from here."""
