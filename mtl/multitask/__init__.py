"""Task 2, the multi-task model: one shared encoder and a head per task (``heads``), sentence heads on the pooled
embedding and token heads (NER) on the token embeddings (``task_kinds``), the built-in tasks (``tasks``) and the model
that runs any subset of them (``model``)."""
