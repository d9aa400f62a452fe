"""Faster CPU inference: int8 dynamic quantisation (``quantize``) and ONNX Runtime (``onnx_encoder``)."""
