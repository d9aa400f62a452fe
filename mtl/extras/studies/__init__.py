"""The full-scale studies (``full_scale``; ``python -m mtl.extras.studies``), what they train (``setups``), their
resumable runner (``runner``) and the README tables generated from their records (``readme``)."""
