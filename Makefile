# One entry point. Targets build their own virtual environment when it is missing.
#   make book   run every notebook (PROFILE=small, DEVICE=auto), write figures/ and claims, build the book
#   make test   unit tests, notebooks on the tiny profile (nbval), book build + browser check
#   make bench  benchmarks that print their figures
PROFILE ?= small
DEVICE  ?= auto
ONLY    ?=
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
SCRATCH := .scratch
export HF_HUB_OFFLINE := 1

.PHONY: book notebooks book-html test test-unit bench venv clean

venv: $(VENV)/.installed

# torch and torchvision first (the pinned pair), then the project, or pip may swap torch.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

notebooks: venv
	$(PY) -m p2nlib.book.runner --profile $(PROFILE) --device $(DEVICE) $(if $(ONLY),--only $(ONLY))

book-html: venv
	$(PY) -m p2nlib.book.build

book: notebooks book-html
	@echo "open book/_build/html/index.html"

# Tests never touch figures/ or the committed notebooks: outputs go to $(SCRATCH).
test: venv
	rm -rf $(SCRATCH) && mkdir -p $(SCRATCH)
	P2N_PROFILE=tiny P2N_DEVICE=cpu P2N_FIGURES=$(CURDIR)/$(SCRATCH)/figures \
	P2N_ARTIFACTS=$(CURDIR)/$(SCRATCH)/artifacts P2N_NOTEBOOK=nbval \
	$(PY) -m pytest -q tests notebooks --nbval-lax -p no:cacheprovider

test-unit: venv
	P2N_FIGURES=$(CURDIR)/$(SCRATCH)/figures P2N_ARTIFACTS=$(CURDIR)/$(SCRATCH)/artifacts \
	$(PY) -m pytest -q tests -m "not slow and not browser"

bench: venv
	MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 $(PY) -m p2nlib.book.bench --profile $(PROFILE)

clean:
	rm -rf $(SCRATCH) book/_build book/chapters book/figures book/claims.md
