# Two entry points (see README): `make all` runs the main job, `make test` runs every test.
# Both create the virtual environment and prepare the data first when needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout=1200

.PHONY: all setup data notebooks test unit nbval bench results clean

all: notebooks                       ## the main job: set up, prepare data, execute every notebook, regenerate figures/

setup: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

data: setup                          ## download (pinned, checksummed) and prepare the data; a no-op when up to date
	$(PY) -m mtl.data.prepare --mpnet

notebooks: data
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 notebooks/0*.ipynb

# Under test the notebooks check their numbers against results/*.json (mtl.extras.notebooks.results) and draw their figures into a
# temporary folder: the test command leaves the work tree as it found it.
CHECKED := MTL_CHECK_RESULTS=1 MTL_FIGURES_DIR=$$(mktemp -d)

test: data                           ## unit tests, then every notebook re-executed and compared by nbval
	$(CHECKED) $(PY) -m pytest tests notebooks $(NBVAL) -q

unit: data
	$(PY) -m pytest tests -q

nbval: data
	$(CHECKED) $(PY) -m pytest notebooks $(NBVAL) -q

results: data                        ## the full-scale studies (hours; resumable: skips runs already in results/studies/)
	$(PY) -m mtl.extras.studies

bench: data                          ## time every notebook and list the slowest cells
	$(PY) benchmarks/notebook_times.py

clean:
	rm -rf $(VENV) data/raw data/models data/cache
