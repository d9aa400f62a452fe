"""The command line (``python -m mtl train | evaluate | predict``), tasks from users' own files (``file_tasks``) and
the readers of their formats (``readers``)."""
