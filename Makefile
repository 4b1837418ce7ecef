# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-matrix test-sources lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m porting.demo --fixtures tests/fixtures --out demo_out

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: $(STAMP)
	$(PY) -m pytest -q

# The suite must not depend on the machine's float32 kernels: run it with 1 and 2 threads and
# with oneDNN (mkldnn) disabled (tests/conftest.py reads REID_PORTING_MKLDNN).
test-matrix: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q
	OMP_NUM_THREADS=2 $(PY) -m pytest -q
	REID_PORTING_MKLDNN=0 $(PY) -m pytest -q

# The dump tools under the real source frameworks, read back by compare (slow; outside `make
# test`): GNU Octave + MatConvNet (MATCONVNET_SETUP: a .m that puts MatConvNet and its CPU mex
# files on the path) and pycaffe (PYCAFFE_PYTHON: a Python that imports caffe; export its
# PYTHONPATH). A test whose framework is missing is skipped and says why.
MATCONVNET_SETUP ?=
PYCAFFE_PYTHON ?= python3
test-sources: $(STAMP)
	REID_PORTING_SOURCES=1 MATCONVNET_SETUP="$(MATCONVNET_SETUP)" \
	PYCAFFE_PYTHON="$(PYCAFFE_PYTHON)" $(PY) -m pytest -q -rs -s tests/test_dump_tools.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info demo_out
