"""What only the notebooks use: the training recipe (``recipe``), evaluation reports (``reports``), recorded results
(``results``) and plots (``plots``)."""
