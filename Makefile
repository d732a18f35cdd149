# Two commands do everything on a fresh machine (Python 3.11+, no Docker):
#   make demo   - run the whole flow locally and print the XNAT URLs of the uploaded files
#   make test   - install everything and run every test (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench faults serve openapi clean

$(STAMP): requirements-dev.txt layers/xnat_upload/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m devserver.demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# Both sections: the upload figures (bench.run), then the queue flow's (bench.queue); non-zero when a queue target is missed.
bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.queue

faults: $(STAMP)
	$(BIN)/python -m bench.faults

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

serve: $(STAMP)
	$(BIN)/python -m devserver.serve

openapi: $(STAMP)
	$(BIN)/python -m devserver.openapi
