"""``python -m mtl train | evaluate | predict``: the command line (``mtl.extras.cli.main``)."""
from mtl.extras.cli.main import main

if __name__ == "__main__":
    main()
