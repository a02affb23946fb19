# One entry point. Targets build their own virtual environment when it is missing.
#   make book   run every notebook (PROFILE=small, DEVICE=auto), write figures/ and claims, build the book
#   make test   unit tests, notebooks on the tiny profile (nbval), book build + browser check
#               (installs Debian's chromium for the browser check when it is missing: make browser)
#   make bench  benchmarks that print their figures
#   make readme README.md from book/README.template.md and the run (claims, wall times, last make test)
#   make gpu-book  on a GPU machine without network: install what is missing from WHEELS, run the gpu
#               profile (GPU_PROFILE=small: the committed book), pack its notebooks and figures into
#               p2n-<profile>.tar.gz (p2nlib/book/offline.py)
PROFILE ?= small
DEVICE  ?= auto
ONLY    ?=
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
SCRATCH := .scratch
export HF_HUB_OFFLINE := 1

.PHONY: book notebooks book-html test test-unit bench venv browser clean gpu-book readme

venv: $(VENV)/.installed

# torch and torchvision first (the pinned pair), then the project, or pip may swap torch.
# On x86_64 pip takes torch's CUDA build: about 7 GB in .venv, with its downloads unpacked beside
# it while it installs. A new venv is refused up front when the disk has less than VENV_GB free,
# rather than dying half-installed with "No space left on device".
VENV_GB ?= 9
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || { free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free" -lt $(VENV_GB) ]; then \
	    echo "make: creating $(VENV) needs about $(VENV_GB) GB free on this disk (torch's CUDA build and" \
	         "its downloads); $$free GB are free. Free some space (another clone's .venv, old artifacts/)" \
	         "and run make again, or set VENV_GB=N to try with less." >&2; exit 1; fi; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	$(PY) -m pip install -q --no-cache-dir torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --no-cache-dir -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

notebooks: venv
	$(PY) -m p2nlib.book.runner --profile $(PROFILE) --device $(DEVICE) $(if $(ONLY),--only $(ONLY))

book-html: venv
	$(PY) -m p2nlib.book.build

book: notebooks book-html
	@echo "open book/_build/html/index.html"

# The browser check opens every built page in Debian's headless chromium (through Playwright, which
# needs no chromium-driver). Installed here when missing: as root directly, otherwise the exact
# command is printed and make stops.
CHROMIUM_INSTALL := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
browser:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
	  echo "make: chromium (Debian package) is needed for the browser check of the book and is not installed." >&2; \
	  echo "      Install it, then run make test again:  sudo sh -c '$(CHROMIUM_INSTALL)'" >&2; \
	  exit 1; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make: chromium is needed for the browser check and this system has no apt-get; install chromium" \
	       "so that 'chromium' is on PATH, then run make test again." >&2; \
	  exit 1; \
	fi; \
	echo "installing Debian's chromium for the browser check (about a minute): $(CHROMIUM_INSTALL)"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	command -v chromium >/dev/null 2>&1 || { echo "make: chromium is still not on PATH after apt-get install" >&2; exit 1; }

# Two pytest workers (pytest-xdist, --dist loadgroup): one runs the notebooks in order (their cells are one
# xdist group, notebooks/conftest.py), the other the tests; each computes on TEST_THREADS threads.
# TEST_WORKERS=0 runs everything in one process. pytest stays below 9.2 (pyproject.toml): from 9.2 on,
# xdist's loadgroup no longer groups (pytest-dev/pytest-xdist#1386) and the notebooks' cells would be
# spread over both workers.
TEST_WORKERS ?= 2
TEST_THREADS ?= 1
# Tests never touch figures/ or the committed notebooks: outputs go to $(SCRATCH). The tiny renders are
# too small for compiling the world's SDFs to pay (about 15 s per process); tests/test_world.py checks the
# compiled path against the eager one explicitly.
test: venv browser
	rm -rf $(SCRATCH) && mkdir -p $(SCRATCH) && date +%s > $(SCRATCH)/started
	P2N_PROFILE=tiny P2N_DEVICE=cpu P2N_FIGURES=$(CURDIR)/$(SCRATCH)/figures \
	P2N_ARTIFACTS=$(CURDIR)/$(SCRATCH)/artifacts P2N_NOTEBOOK=nbval P2N_COMPILE=0 P2N_FIGCHECK=strict \
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q notebooks tests --nbval-lax -p no:cacheprovider \
	  --ignore-glob='notebooks/*/*' -n $(TEST_WORKERS) --dist loadgroup --junitxml=$(SCRATCH)/junit.xml; rc=$$?; \
	if [ $$rc -eq 0 ]; then $(PY) -m p2nlib.book.readme record-test --junit $(SCRATCH)/junit.xml \
	  --seconds $$(( $$(date +%s) - $$(cat $(SCRATCH)/started) )) || true; fi; exit $$rc

# README.md is book/README.template.md rendered from the run (claims, wall times, the last `make test`)
readme: venv
	$(PY) -m p2nlib.book.readme

test-unit: venv
	P2N_FIGURES=$(CURDIR)/$(SCRATCH)/figures P2N_ARTIFACTS=$(CURDIR)/$(SCRATCH)/artifacts \
	$(PY) -m pytest -q tests -m "not slow and not browser"

bench: venv
	MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 $(PY) -m p2nlib.book.bench --profile $(PROFILE)

clean:
	rm -rf $(SCRATCH) book/_build book/chapters book/figures book/claims.md book/running.md book/_static/plotly.min.js

# A profile (gpu by default; small rebuilds the committed book in place) on a machine with torch and CUDA
# but no network and no venv: the machine's python.
WHEELS ?= wheels
GPU_PROFILE ?= gpu
gpu-book:
	PYTHONPATH=$(CURDIR)/.site:$(CURDIR) $(PYTHON) -m p2nlib.book.offline install --wheels $(WHEELS) \
	  --target $(CURDIR)/.site
	PYTHONPATH=$(CURDIR)/.site:$(CURDIR) $(PYTHON) -m p2nlib.book.offline check
	PYTHONPATH=$(CURDIR)/.site:$(CURDIR) $(PYTHON) -m p2nlib.book.runner --profile $(GPU_PROFILE) --device cuda --keep-going \
	  $(if $(ONLY),--only $(ONLY)); status=$$?; \
	PYTHONPATH=$(CURDIR)/.site:$(CURDIR) $(PYTHON) -m p2nlib.book.offline pack --profile $(GPU_PROFILE) && exit $$status
