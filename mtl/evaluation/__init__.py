"""Task 5, scores and comparisons: the model run over labelled examples (``predictions``), scores and calibration
(``metrics``), the paired comparisons (``compare``), baselines (``baselines``) and embeddings against human similarity (``similarity``)."""
