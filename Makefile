# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(PY) -m aioforest.master --seed 7 --oob --out out/iris-forest.aiof

test: $(STAMP_TEST)
	bash .ci/install-chromium  # the dashboard's browser test (Debian chromium; as root)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP_TEST)
	$(PY) -m ruff check aioforest tests benchmarks examples
	$(PY) -m mypy

bench: $(STAMP_TEST)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_channels.py
	$(PY) benchmarks/bench_forest.py --no-lightgbm
	$(PY) benchmarks/bench_predict.py
	$(PY) benchmarks/bench_cluster.py
	$(PY) benchmarks/bench_faults.py
	$(PY) benchmarks/bench_data_parallel.py
	$(PY) benchmarks/bench_dask.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
