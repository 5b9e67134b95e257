# Everything a fresh Debian machine needs: `make demo` and `make test` set up the rest.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The CPU build of TensorFlow is a quarter of the size; a GPU machine installs
# `pip install -e '.[tensorflow]' 'tensorflow[and-cuda]'` instead (see the README).
TF_EXTRA ?= tensorflow-cpu

.PHONY: demo test lint bench catalog schema graphviz clean demo-pythons check-upgrade

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[$(TF_EXTRA),test]'
	touch $(STAMP)

# Graphviz's `dot` renders plots. Installed with apt-get where we are root on Debian; elsewhere
# `graphspec plot` says how to install it, and .dot output needs none.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "note: could not install graphviz"; \
	  else echo "note: Graphviz's dot is not installed; plots to .png/.svg/.pdf need it"; fi; }

# The whole path on the book's three-headed model: check, build, draw, train briefly on
# synthetic data whose targets come from a fixed random copy of the network.
demo: $(STAMP) graphviz
	$(BIN)/graphspec validate specs/*.yaml
	$(BIN)/graphspec build specs/book_social_media.yaml
	$(BIN)/graphspec plot specs/book_social_media.yaml --show-shapes -o runs/demo/social_media.png
	$(BIN)/graphspec train specs/book_social_media.yaml --synthetic --kind teacher --samples 256 \
	  --epochs 2 --runs-dir runs/demo

test: $(STAMP) graphviz
	$(BIN)/ruff check graphspec tests bench
	$(BIN)/ruff format --check graphspec tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check graphspec tests bench
	$(BIN)/ruff format --check graphspec tests bench

bench: $(STAMP) graphviz
	$(BIN)/python bench/run.py

# Regenerate the Keras catalog and the JSON Schema after upgrading Keras or changing the format.
catalog: $(STAMP)
	$(BIN)/python -m graphspec.keras.catalog_gen

schema: $(STAMP)
	$(BIN)/graphspec schema > schemas/graphspec.schema.json

# `make demo` on the lowest and the highest Python that pyproject.toml claims, each in a
# virtualenv of its own: the claim is what installs and runs.
demo-pythons:
	$(MAKE) demo PYTHON=python3.11 VENV=.venv-3.11
	$(MAKE) demo PYTHON=python3.13 VENV=.venv-3.13

# The newest Keras and TensorFlow in a throwaway virtualenv: what their catalog changes against
# the committed one (a new Keras needs `make catalog` and a new pin in constraints.txt).
check-upgrade:
	rm -rf .venv-upgrade
	$(PYTHON) -m venv .venv-upgrade
	.venv-upgrade/bin/pip install -q --upgrade pip
	.venv-upgrade/bin/pip install -q --upgrade -e . keras tensorflow-cpu tensorboard
	.venv-upgrade/bin/python -m graphspec.keras.catalog_gen --compare

clean:
	rm -rf $(VENV) .venv-3.11 .venv-3.13 .venv-upgrade .pytest_cache .ruff_cache runs
