"""Task 5, scores and comparisons: the model run over labelled examples (``predictions``), metrics and the paired
comparison (``metrics``), baselines (``baselines``) and embeddings against human similarity (``similarity``)."""
