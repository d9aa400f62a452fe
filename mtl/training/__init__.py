"""Task 4, the multi-task training loop (``train``): task sampling (``sampling``), loss weighting (``losses``) and
resumable checkpoints (``checkpoint``), on Accelerate so that one process or several train to the same weights."""
