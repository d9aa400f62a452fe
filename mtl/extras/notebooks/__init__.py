"""What only the notebooks use: the training recipe (``recipe``), the freezing study's scenarios (``experiments``), the sharing study
(``sharing``), evaluation reports (``reports``), recorded results (``results``) and plots (``plots``)."""
