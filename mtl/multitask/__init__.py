"""Task 2, the multi-task model: one shared encoder and a head per task, each owning its kind (``heads``: sentence
heads on the pooled embedding, token heads (NER) on the token embeddings), the built-in tasks (``tasks``) and the model
that runs any subset of them (``model``)."""
