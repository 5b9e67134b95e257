# Everything a fresh Debian machine needs: `make demo` and `make test` set up the rest.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The CPU build of TensorFlow is a quarter of the size; a GPU machine installs
# `pip install -e '.[tensorflow]' 'tensorflow[and-cuda]'` instead (see the README).
TF_EXTRA ?= tensorflow-cpu

.PHONY: yaml-ls demo hub test test-torch test-backends lint bench catalog schema graphviz chromium postgresql clean demo-pythons check-upgrade

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[$(TF_EXTRA),jax,lsp,test,hub-layers,serve]'
	$(HUB_NO_DEPS)
	touch $(STAMP)

# KerasHub's layers, for specs that use keras_hub.layers.NAME and for their tests. keras-hub's own
# requirements bring tensorflow-text and with it the full tensorflow package, 3 minutes and 0.9 GB
# more, installed over tensorflow-cpu's files (BENCHMARKS.md); its layers need neither, so it is
# installed without them, with the two modules `import keras_hub` needs (36 s, 61 MB). pip then
# reports keras-hub's missing requirements after later installs: expected, see the README.
# The stamp installs hub-layers in its one resolve with the rest, then keras-hub alone, rather
# than resolving and rebuilding graphspec a second time for two packages (about 5 s; BENCHMARKS.md).
HUB_NO_DEPS = $(BIN)/pip install -q -c constraints.txt --no-deps keras-hub
HUB_INSTALL = $(BIN)/pip install -q -c constraints.txt -e '.[$(TF_EXTRA),hub-layers]' && $(HUB_NO_DEPS)

hub: $(STAMP)
	$(HUB_INSTALL)

# Graphviz's `dot` renders plots. Installed with apt-get where we are root on Debian; elsewhere
# `graphspec plot` says how to install it, and .dot output needs none.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "note: could not install graphviz"; \
	  else echo "note: Graphviz's dot is not installed; plots to .png/.svg/.pdf need it"; fi; }

# Chromium opens the pages `graphspec view` writes in the tests (headless). Installed with apt-get
# where we are root on Debian; elsewhere those tests are skipped, saying why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "note: could not install chromium"; \
	  else echo "note: Chromium is not installed; the tests of model pages in a browser will be skipped"; fi; }

# PostgreSQL, for the test of `graphspec tune` workers sharing a database (the test starts its
# own server in a temporary folder). Installed with apt-get where we are root on Debian;
# elsewhere that test is skipped, saying why.
postgresql:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || echo "note: could not install postgresql"; \
	  else echo "note: PostgreSQL is not installed; the test of tune on PostgreSQL will be skipped"; fi; }

# yaml-language-server, the YAML language server editors run, for tests/test_yaml_ls.py: the
# version pinned in tests/yaml-ls/package-lock.json, installed with npm into .cache/yaml-ls
# (again only when the lock changes). Without Node.js and npm those tests are skipped, saying why.
YAML_LS = .cache/yaml-ls
yaml-ls:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "note: Node.js and npm are not installed; the yaml-language-server tests will be skipped"; \
	elif ! cmp -s tests/yaml-ls/package-lock.json $(YAML_LS)/package-lock.json || \
	     [ ! -f $(YAML_LS)/node_modules/yaml-language-server/package.json ]; then \
	  mkdir -p $(YAML_LS) && cp tests/yaml-ls/package.json tests/yaml-ls/package-lock.json $(YAML_LS)/ && \
	  npm ci --prefix $(YAML_LS) --no-audit --no-fund --loglevel=error >/dev/null || \
	  { rm -f $(YAML_LS)/package-lock.json; echo "note: could not install yaml-language-server"; }; fi

# The whole path on the book's three-headed model: check, build, draw, train briefly on
# synthetic data whose targets come from a fixed random copy of the network.
demo: $(STAMP) graphviz
	$(BIN)/graphspec validate specs/*.yaml
	$(BIN)/graphspec build specs/book_social_media.yaml
	$(BIN)/graphspec plot specs/book_social_media.yaml --show-shapes -o runs/demo/social_media.png
	$(BIN)/graphspec train specs/book_social_media.yaml --synthetic --kind teacher --samples 256 \
	  --epochs 2 --runs-dir runs/demo

test: $(STAMP) graphviz chromium postgresql yaml-ls
	$(BIN)/ruff check graphspec tests bench
	$(BIN)/ruff format --check graphspec tests bench
	$(BIN)/python -m pytest -n 2 --dist loadfile

# `make test` installs JAX beside TensorFlow and runs the backend subset, the data parallel and
# the multi-process tests on it; PyTorch's subset runs here, after it, in the same .venv: PyPI's
# torch wheel brings 3 GB of CUDA libraries (about 5 minutes to install on 2 cores), which would
# take `make test` past 15 minutes. .ci/run runs both.
test-torch: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[$(TF_EXTRA),jax,torch,lsp,test]'
	$(BIN)/python -m pytest -n 2 --dist loadfile tests/test_backends.py tests/test_distributed.py tests/test_losses.py -k torch

# The old name of test-torch.
test-backends: test-torch

lint: $(STAMP)
	$(BIN)/ruff check graphspec tests bench
	$(BIN)/ruff format --check graphspec tests bench

bench: $(STAMP) graphviz
	$(BIN)/python bench/run.py

# Regenerate the Keras catalog, its docs (Keras's docstrings, the schema's descriptions) and the
# JSON Schema after upgrading Keras or changing the format.
catalog: $(STAMP)
	$(BIN)/python -m graphspec.keras.catalog_gen
	$(BIN)/python -m graphspec.keras.hub_catalog_gen
	$(BIN)/python -m graphspec.keras.catalog_docs_gen
	$(BIN)/graphspec schema > schemas/graphspec.schema.json

schema: $(STAMP)
	$(BIN)/graphspec schema > schemas/graphspec.schema.json

# `make demo` on the lowest and the highest Python that pyproject.toml claims, each in a
# virtualenv of its own: the claim is what installs and runs.
# With pyenv, make both visible: PYENV_VERSION=3.11.7:3.13.0 make demo-pythons
PYTHON_LOWEST  ?= python3.11
PYTHON_HIGHEST ?= python3.13
demo-pythons:
	$(MAKE) demo PYTHON=$(PYTHON_LOWEST) VENV=.venv-3.11
	$(MAKE) demo PYTHON=$(PYTHON_HIGHEST) VENV=.venv-3.13

# The newest Keras and TensorFlow in a throwaway virtualenv: what their catalog changes against
# the committed one (a new Keras needs `make catalog` and a new pin in constraints.txt).
check-upgrade:
	rm -rf .venv-upgrade
	$(PYTHON) -m venv .venv-upgrade
	.venv-upgrade/bin/pip install -q --upgrade pip
	.venv-upgrade/bin/pip install -q --upgrade -e . keras tensorflow-cpu tensorboard
	.venv-upgrade/bin/python -m graphspec.keras.catalog_gen --compare

clean:
	rm -rf $(VENV) .venv-3.11 .venv-3.13 .venv-upgrade .pytest_cache .ruff_cache runs .cache
