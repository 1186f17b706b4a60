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
	@if ! $(PYTHON) -c 'import torch, torchvision, onnx, PIL, numpy' 2>/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    python3-torch python3-torchvision python3-onnx python3-pil python3-numpy libonnx-testdata; \
	fi
	touch $@
deps-python: $(STAMPS)/python

build: $(STAMPS)/npm
	npx tsc -p tsconfig.json

# The test command README gives: type-check, then every uvu suite on the native backend.
test: $(STAMPS)/npm $(STAMPS)/python setup
	npx tsc -p tsconfig.json --noEmit
	npx uvu -r tsx/cjs test '\.test\.ts$$'

clean:
	rm -rf dist .cache
