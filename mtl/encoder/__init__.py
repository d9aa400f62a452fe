"""Task 1, the sentence encoder: a transformer backbone (``backbones``), pooling (cls | mean | max), optional
projection, LayerNorm and L2 normalisation, composed from sentence-transformers modules (``encoder``); its precision
(``precision``); and the per-architecture access to its blocks (``architectures``) that layer-wise training and the
cache of a frozen bottom (``prefix_cache``) rely on."""
