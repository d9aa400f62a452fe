"""The command line (``python -m mtl train | evaluate | predict``) and the file formats users bring (``file_tasks``)."""
