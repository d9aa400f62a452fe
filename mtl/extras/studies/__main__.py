"""``python -m mtl.extras.studies``: run the full-scale studies (``mtl.extras.studies.full_scale``)."""
from mtl.extras.studies.full_scale import main

if __name__ == "__main__":
    main()
