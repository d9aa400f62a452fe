"""Task 3, what trains: freezing by selectors (the whole encoder, its bottom or top k blocks, one block, the heads:
``freezing``), discriminative learning rates per block (``rates``) and LoRA adapters (``lora``). Gradual unfreezing
is a field of the training config; the frozen bottom is computed once by ``mtl.encoder.prefix_cache``."""
