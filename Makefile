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

# avsync scores with the packaged synthetic-data demo AVSyncNet (tfbench/models/demo/README.md).
DEMO_RUN := --dataset synthetic --root demo-data --detector none --metrics psnr,ssim,lmd,avsync \
	--weights avsyncnet=$$($(BIN)/tfbench weights path avsyncnet_demo)

demo: $(STAMP)
	$(BIN)/tfbench synth demo-data --layout lrs2 --speakers 2 --clips 2 --seconds 3 --seed 0
	$(BIN)/tfbench probe demo-data/main/*/*.mp4
	$(BIN)/tfbench run --model gt $(DEMO_RUN) --out runs/demo-gt
	$(BIN)/tfbench run --model static $(DEMO_RUN) --out runs/demo-static
	$(BIN)/tfbench run --model ours_demo $(DEMO_RUN) --out runs/demo-ours_demo
	$(BIN)/tfbench compare runs/demo-gt runs/demo-static
	$(BIN)/tfbench compare runs/demo-static runs/demo-ours_demo
	$(BIN)/tfbench report runs/demo-gt runs/demo-static runs/demo-ours_demo --format html --out runs/demo-report.html

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# tests/test_html_chromium.py opens the HTML report in headless Chromium: installed here through apt-get when
# missing, best effort (it needs root and the package lists); without it that one test is skipped.
test: $(STAMP) lint typecheck
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		(export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq chromium >/dev/null 2>&1 || \
		(apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) || \
		echo "Chromium could not be installed: the HTML screenshot test will be skipped"
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) demo-data runs/demo-gt runs/demo-static runs/demo-ours_demo runs/demo-report.html .pytest_cache .mypy_cache .ruff_cache
