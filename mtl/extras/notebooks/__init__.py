"""What only the notebooks use: the training recipe (``recipe``), scenario runs (``experiments``), the sharing study
(``sharing``), evaluation reports (``reports``), recorded results (``results``) and plots (``plots``)."""
