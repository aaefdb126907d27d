# Two commands for users:  `make book`  and  `make test`.  Each sets up .venv on its own.
# Helpers: make setup | unit | sync | student | bench | lint | clean
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := msa-course
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
export PYTHONHASHSEED := 0
# Never export MPLBACKEND: a kernel that inherits MPLBACKEND=Agg draws no inline figure, and the
# book silently loses every matplotlib figure (scripts without a display fall back to Agg anyway).
unexport MPLBACKEND

.PHONY: help setup book book-ru test unit ddp-check sync student bench evidence sweeps lint clean

help:
	@echo "make book   - set up .venv, execute every notebook, build the HTML book into _build/html"
	@echo "              and its Russian edition (ru/) into _build/html/ru from the same execution"
	@echo "make book-ru - after make book: rebuild only the Russian edition (e.g. after editing its prose)"
	@echo "make test   - set up .venv, run unit tests, nbval on every notebook, pairing check,"
	@echo "              build the book and check the rendered pages in headless Chromium"
	@echo "make sync   - re-pair notebooks/*.md <-> notebooks/*.ipynb (the newer one wins)"
	@echo "make student - student copies of the notebooks (solutions removed) in _build/student"
	@echo "make ddp-check - train one network in 1 process and in 2 (torchrun, gloo): same losses?"
	@echo "make bench   - benchmarks against the straightforward implementations (ratios)"
	@echo "make evidence - every model and ablation over five seeds -> evidence/results.json (~20 min)"
	@echo "make sweeps  - the chapter's best practices, each swept over three seeds -> evidence/sweeps.json"
	@echo "              (~1 h on 2 free cores; reuses the networks make evidence cached)"
	@echo "make lint | clean"

# ---- set-up: virtual environment, pinned requirements, msa_lib (editable), Jupyter kernel ------
setup: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	@[ -x $(BIN)/python ] || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (msa-course)" >/dev/null
	@touch $@

# ---- the book -----------------------------------------------------------------------------------
# --all rebuilds every page, so every notebook is executed afresh (the cache cannot see msa_lib edits).
# The English book executes every notebook into an emptied execution cache; the Russian edition
# (ru/, same pages, same code cells) is built next and takes every output from that cache. Should a
# Russian page execute anything, its code differs from its English twin: the build fails and
# tests/test_editions.py says where. The Russian book lands in _build/html/ru/.
EXEC_CACHE := _build/.jupyter_cache
RU_BUILD := _build/ru-edition
book: $(STAMP)
	rm -rf $(EXEC_CACHE)
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	touch $(EXEC_CACHE)/english-build
	$(MAKE) --no-print-directory book-ru
	@echo "Book built: open _build/html/index.html (Russian edition: _build/html/ru/index.html)"

# The Russian edition alone, after `make book` (for instance after editing only Russian prose).
book-ru: $(STAMP)
	@[ -f $(EXEC_CACHE)/english-build ] || { echo "build the English book first: make book"; exit 1; }
	@changed=$$(find book notebooks -name '*.md' -newer $(EXEC_CACHE)/english-build); \
	[ -z "$$changed" ] || { echo "English pages changed since the English build ($$changed):" \
	  "run make book"; exit 1; }
	@$(BIN)/python ru/copy_code.py --check || { echo "Russian pages whose code differs from" \
	  "their English twins (above): edit code in English, then make sync"; exit 1; }
	executed=$$(ls $(EXEC_CACHE)/executed | wc -l); \
	$(BIN)/jupyter-book build ru --path-output $(RU_BUILD) --all -W -n --keep-going; \
	now=$$(ls $(EXEC_CACHE)/executed | wc -l); \
	[ $$now -eq $$executed ] || { echo "the Russian build executed $$((now - executed)) notebook(s):" \
	  "their code differs from the English twins (run pytest tests/test_editions.py)"; exit 1; }
	rm -rf _build/html/ru
	cp -r $(RU_BUILD)/_build/html _build/html/ru

# ---- tests --------------------------------------------------------------------------------------
# 1. unit, property, pairing and exercise tests, and the 1-vs-2-process training check
# 2. nbval executes every notebook
# 3. the student copies (solutions removed) run end to end under nbval   4. build the book
# 5. check the rendered HTML (pages, downloads, figures drawn, no outside requests; headless Chromium)
# Trained networks are cached in _build/cache (keyed by data, settings and msa_lib's source), so
# chapters after the training chapter, and later passes, reuse what the first pass trained.
NBVAL := -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=600
# Steps 3 and 4 only read the network cache that step 2 filled, so they run side by side (one core
# each; every chapter trains on one thread); the student run's log is printed when both are done.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not book" tests
	$(MAKE) --no-print-directory ddp-check
	$(BIN)/python -m pytest $(NBVAL) $(NOTEBOOKS)
	$(MAKE) --no-print-directory student
	( cd _build/student && ../../$(BIN)/python -m pytest $(NBVAL) [0-9][0-9]_*.ipynb ) \
	  > _build/student-nbval.log 2>&1 & student=$$!; \
	if $(MAKE) --no-print-directory book; then book=0; else book=1; fi; \
	if wait $$student; then students=0; else students=1; fi; \
	echo "--- nbval on the student copies (_build/student-nbval.log):"; cat _build/student-nbval.log; \
	[ $$book -eq 0 ] || { echo "make book failed"; exit 1; }; \
	[ $$students -eq 0 ] || { echo "the student copies failed under nbval"; exit 1; }
	$(BIN)/python -m pytest -m book tests

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not book" tests

# The same training in one process and in two (torchrun, gloo on the CPU): one line with the largest
# loss difference; exit status 1 when the trajectories disagree (see msa_lib/distributed.py).
ddp-check: $(STAMP)
	$(BIN)/python -m msa_lib.distributed check --nproc 2

# Code is edited in the English pages only: ru/copy_code.py first copies it into the Russian twins.
sync: $(STAMP)
	$(BIN)/python ru/copy_code.py
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.md ru/notebooks/[0-9][0-9]_*.md
	$(BIN)/jupyter nbconvert --log-level=WARN --ClearOutputPreprocessor.enabled=True --inplace \
	  $(NOTEBOOKS) ru/notebooks/[0-9][0-9]_*.ipynb

# Speed and memory against the straightforward implementations (prints ratios; see book/performance).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The central claim over five seeds (chapter 06 displays the file; a test fails when it is stale).
evidence: $(STAMP)
	$(BIN)/python -m evidence

# The "Best Practices" recommendations, each checked by a sweep over seeds 0-2 (a test fails when
# evidence/sweeps.json is stale). Run it after `make evidence`: the course's points load its networks.
sweeps: $(STAMP)
	$(BIN)/python -m evidence.sweeps

# Student copies: solution code between `# BEGIN SOLUTION` and `# END SOLUTION` replaced by stubs
# (the Russian edition's in _build/student/ru; their checkers answer in Russian).
student: $(STAMP)
	rm -rf _build/student
	$(BIN)/python -m msa_lib.exercises make-student-copies notebooks _build/student
	$(BIN)/python -m msa_lib.exercises make-student-copies ru/notebooks _build/student/ru

lint: $(STAMP)
	$(BIN)/ruff check msa_lib tests benchmarks evidence notebooks

clean:
	rm -rf _build .pytest_cache
