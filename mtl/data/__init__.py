"""The data: built-in corpora prepared from PyPI archives (``prepare``), examples, their loaders and checks
(``examples``), and the word splitting that token tasks share (``words``). Everything above reads examples from
here; users' file formats are read by the command line (``mtl.extras.cli.readers``)."""
