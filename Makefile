# Entry points: setup, convert, serve, test, bench. Every target installs what it needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Debian's interpreter carries python3-torch, python3-torchvision, python3-onnx and Pillow.
PYTHON ?= /usr/bin/python3
CHECKPOINT ?= best.pth
ARCH ?= resnet18
LABELS ?=
MODEL_DIR ?= model_tfjs
IMAGE_SIZE ?= 64

STAMPS := .cache/stamps

.PHONY: setup setup-gpu deps-python build convert serve test bench clean

$(STAMPS):
	mkdir -p $@

# npm packages without their install scripts: tfjs-node's would download libtensorflow (see `setup`).
$(STAMPS)/npm: package.json package-lock.json | $(STAMPS)
	ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# Debian packages for the exporter and the Python reference pipelines.
$(STAMPS)/python: | $(STAMPS)
	@if ! $(PYTHON) -c 'import torch, torchvision, onnx, PIL, numpy' 2>/dev/null || [ ! -d /usr/share/libonnx-testdata ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    python3-torch python3-torchvision python3-onnx python3-pil python3-numpy libonnx-testdata; \
	fi
	touch $@
deps-python: $(STAMPS)/python

# What building the native addon needs: pip (only downloads the TensorFlow wheel), a C++ compiler and make.
$(STAMPS)/native-tools: | $(STAMPS)
	@if ! { $(PYTHON) -m pip --version && command -v g++ && command -v make; } >/dev/null 2>&1; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    python3-pip g++ make; \
	fi
	touch $@

# Native TensorFlow for tfjs-node(-gpu), built from a pinned PyPI wheel (docs/runtime.md). Always runs the script:
# it checks a marker inside node_modules, so it also notices a manual `npm ci`, and a second run does nothing.
setup: $(STAMPS)/npm $(STAMPS)/native-tools
	PYTHON=$(PYTHON) tools/native/setup-binding.sh cpu
# The CPU binding too: `auto` falls back to it, and tests run on it.
setup-gpu: setup
	PYTHON=$(PYTHON) tools/native/setup-binding.sh gpu

build: $(STAMPS)/npm
	npx tsc -p tsconfig.json

# Conversion: checkpoint -> .cache/convert/{model.onnx, export.json, reference} -> MODEL_DIR (docs/architecture.md).
# CLASS_TO_IDX=file.json maps class folders to indices for a cat_to_name.json LABELS; TRUST_CHECKPOINT=1 allows
# checkpoints that need full unpickling (pickled modules run code from the file).
CLASS_TO_IDX ?=
TRUST_CHECKPOINT ?=
CONVERT_DIR := .cache/convert
DEMO_CHECKPOINT := .cache/demo/best.pth
# With no CHECKPOINT given and no best.pth, convert the seeded untrained demo model so a fresh clone can serve.
ifeq ($(origin CHECKPOINT),file)
ifeq ($(wildcard $(CHECKPOINT)),)
CONVERT_DEMO := 1
endif
endif

$(DEMO_CHECKPOINT): tools/demo_checkpoint.py | $(STAMPS)/python
	$(PYTHON) tools/demo_checkpoint.py --out $@

convert: $(STAMPS)/python $(STAMPS)/npm setup $(if $(CONVERT_DEMO),$(DEMO_CHECKPOINT))
	$(PYTHON) tools/export_onnx.py --checkpoint '$(if $(CONVERT_DEMO),$(DEMO_CHECKPOINT),$(CHECKPOINT))' \
	  --arch '$(ARCH)' --image-size '$(IMAGE_SIZE)' $(if $(LABELS),--labels '$(LABELS)') \
	  $(if $(CLASS_TO_IDX),--class-to-idx '$(CLASS_TO_IDX)') $(if $(TRUST_CHECKPOINT),--trust-checkpoint) \
	  $(if $(CONVERT_DEMO),--demo) --out $(CONVERT_DIR)
	npx tsx tools/onnx2tfjs/cli.ts $(CONVERT_DIR)/model.onnx --export-info $(CONVERT_DIR)/export.json \
	  --reference $(CONVERT_DIR)/reference.json --out '$(MODEL_DIR)'

# The server on PORT (default 5012): builds, runs `make convert` first when MODEL_DIR holds no model yet (docs/config.md).
serve: setup build
	@if [ ! -f '$(MODEL_DIR)/model.json' ]; then $(MAKE) convert; fi
	MODEL_DIR='$(MODEL_DIR)' node dist/src/main.js

# The test command README gives: type-check, then every uvu suite on the native backend.
test: $(STAMPS)/npm $(STAMPS)/python $(STAMPS)/flask setup-gpu
	npx tsc -p tsconfig.json --noEmit
	npx uvu -r tsx/cjs test '\.test\.ts$$'

# Flask for the benchmark's replica of the original server (bench/flask_server.py).
$(STAMPS)/flask: | $(STAMPS)
	@if ! $(PYTHON) -c 'import flask' 2>/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-flask; \
	fi
	touch $@

# Side by side in one run: ours, the Flask original and plain onnxruntime-node; prints and writes docs/benchmark.md.
bench: convert build setup $(STAMPS)/python $(STAMPS)/flask
	npx tsx bench/run.ts --model-dir $(MODEL_DIR) --convert-dir $(CONVERT_DIR) --python $(PYTHON)

clean:
	rm -rf dist .cache
