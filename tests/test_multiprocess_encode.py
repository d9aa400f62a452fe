"""Scaling out inference: sentence-transformers' multi-process pool on the project's encoder (docs/performance.md)."""
import numpy as np

from mtl.encoder.encoder import SentenceEncoder


def test_two_process_pool_gives_the_single_process_embeddings_in_input_order():
    encoder = SentenceEncoder.build("scratch", pooling="mean", normalize=True, max_seq_length=32, device="cpu")
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(40)]  # mixed lengths: order is tested
    expected = encoder.encode(texts, show_progress_bar=False)
    pool = encoder.model.start_multi_process_pool(["cpu", "cpu"])
    try:
        assert len(pool["processes"]) == 2
        pooled = encoder.model.encode(texts, pool=pool, batch_size=8, chunk_size=10)
    finally:
        encoder.model.stop_multi_process_pool(pool)
    assert pooled.shape == expected.shape == (40, encoder.dim)
    np.testing.assert_allclose(pooled, expected, atol=1e-5)
