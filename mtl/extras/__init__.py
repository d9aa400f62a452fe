"""What the core does not need, each part importing the core and never imported by it: the command line and users'
file formats (``cli``), inference speed-ups (``inference``), what only the notebooks use (``notebooks``) and the
full-scale studies with the README tables they feed (``studies``)."""
