"""The full-scale studies (``full_scale``; ``python -m mtl.extras.studies``), their resumable runner (``runner``) and
the README tables generated from their records (``readme``)."""
