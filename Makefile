# Every target creates .venv and installs the project when needed, so
# `make demo` and `make test` work alone on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-output

.PHONY: test demo bench lint clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -c "import torch, torchvision, decord, av, apache_beam, ray.data, pyarrow, cv2, pycocoevalcap"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# The shipped job pipelines/jobs/demo.toml; a second `make demo` skips the stages up to date.
demo: $(STAMP)
	$(VENV)/bin/vidpipe run --demo --root $(DEMO_DIR)

bench: $(STAMP)
	$(PY) -m benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
