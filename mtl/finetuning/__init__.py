"""Task 3, what trains: freezing by selectors (the whole encoder, its bottom or top k blocks, one block, the heads:
``freezing``) and LoRA adapters (``lora``). Layer-wise rates and gradual unfreezing are fields of the training config;
the frozen bottom is computed once by ``mtl.encoder.prefix_cache``."""
