# Set-up and everyday commands. `make demo` and `make test` each build .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

DEMO_RUN := --dataset synthetic --root demo-data --detector none --metrics psnr,ssim,lmd

demo: $(STAMP)
	$(BIN)/tfbench synth demo-data --layout lrs2 --speakers 2 --clips 2 --seconds 3 --seed 0
	$(BIN)/tfbench probe demo-data/main/*/*.mp4
	$(BIN)/tfbench run --model gt $(DEMO_RUN) --out runs/demo-gt
	$(BIN)/tfbench run --model static $(DEMO_RUN) --out runs/demo-static
	$(BIN)/tfbench compare runs/demo-gt runs/demo-static

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) demo-data runs/demo-gt runs/demo-static .pytest_cache .mypy_cache .ruff_cache
