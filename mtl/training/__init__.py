"""Task 4, the multi-task training loop (``train``): task sampling and batches (``sampling``), the weighted objective
(``losses``) and resumable checkpoints (``checkpoint``), on Accelerate so that 1 or N processes train alike."""
