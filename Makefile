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

.PHONY: setup setup-gpu deps-python build native convert serve test page-screenshot fuzz bench soak clean

$(STAMPS):
	mkdir -p $@

# npm packages without their install scripts: tfjs-node's would download libtensorflow (see `setup`).
$(STAMPS)/npm: package.json package-lock.json | $(STAMPS)
	ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# Root installs Debian packages directly, anyone else through sudo; each install says what it adds and why first.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# $(call apt_install,PACKAGES,WHY)
define apt_install
echo "Installing Debian packages: $(1)" && echo "  why: $(2)$(if $(SUDO), (through sudo))" && \
$(SUDO) apt-get update -q && \
$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(1)
endef

# Debian's PyTorch stack for the exporter (`make convert`, and `make serve` when there is no model yet).
$(STAMPS)/python: | $(STAMPS)
	@if ! $(PYTHON) -c 'import torch, torchvision, onnx, PIL, numpy' 2>/dev/null; then \
	  $(call apt_install,python3-torch python3-torchvision python3-onnx python3-pil python3-numpy,make convert exports the checkpoint to ONNX with PyTorch); \
	fi
	touch $@
deps-python: $(STAMPS)/python

# Test-only: ONNX's official operator test cases (the converter's conformance suite).
$(STAMPS)/onnx-testdata: | $(STAMPS)
	@if [ ! -d /usr/share/libonnx-testdata ]; then \
	  $(call apt_install,libonnx-testdata,make test runs ONNX's official operator cases against the converter); \
	fi
	touch $@

# Test-only: Debian's nginx. test/deploy/nginx.test.ts runs its own nginx with deploy/nginx/nginx.conf in front of
# two service processes (where systemd runs, installing the package also starts Debian's nginx service on port 80).
$(STAMPS)/nginx: | $(STAMPS)
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then \
	  $(call apt_install,nginx,make test runs deploy/nginx/nginx.conf in front of two service processes); \
	fi
	touch $@

# Test-only: Debian's Chromium (and a font for its text), the headless browser that test/web/ drives with
# playwright-core; Playwright's own browser download cannot run here.
$(STAMPS)/chromium: | $(STAMPS)
	@if [ ! -x /usr/bin/chromium ] || [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then \
	  $(call apt_install,chromium fonts-dejavu-core,make test opens the web page in a headless browser); \
	fi
	touch $@

# What building the native addon needs: pip (only downloads the TensorFlow wheel), a C++ compiler and make.
$(STAMPS)/native-tools: | $(STAMPS)
	@if ! { $(PYTHON) -m pip --version && command -v g++ && command -v cc && command -v make; } >/dev/null 2>&1; then \
	  $(call apt_install,python3-pip g++ make,make setup downloads the TensorFlow wheel with pip and compiles the native addons); \
	fi
	touch $@

# Native TensorFlow for tfjs-node(-gpu), built from a pinned PyPI wheel (docs/runtime.md). Always runs the script:
# it checks a marker inside node_modules, so it also notices a manual `npm ci`, and a second run does nothing.
setup: $(STAMPS)/npm $(STAMPS)/native-tools
	PYTHON=$(PYTHON) tools/native/setup-binding.sh cpu
# The CPU binding too: `auto` falls back to it, and tests run on it.
setup-gpu: setup
	PYTHON=$(PYTHON) tools/native/setup-binding.sh gpu

# The server (dist/src/), the web page it serves at / (src/web/, its own tsconfig for the browser -> dist/web/) and
# its small native addons (src/native/*.c -> dist/native/, compiled with Node's headers): the resize and
# convolution ops, and malloc_trim.
build: $(STAMPS)/npm $(STAMPS)/native-tools
	npm run --silent build

# The native addons alone: the converter's parity gate runs the model as the server does, with the convolution op.
native: $(STAMPS)/npm $(STAMPS)/native-tools
	npm run --silent build:native

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

convert: $(STAMPS)/python $(STAMPS)/npm setup native $(if $(CONVERT_DEMO),$(DEMO_CHECKPOINT))
	$(PYTHON) tools/export_onnx.py --checkpoint '$(if $(CONVERT_DEMO),$(DEMO_CHECKPOINT),$(CHECKPOINT))' \
	  --arch '$(ARCH)' --image-size '$(IMAGE_SIZE)' $(if $(LABELS),--labels '$(LABELS)') \
	  $(if $(CLASS_TO_IDX),--class-to-idx '$(CLASS_TO_IDX)') $(if $(TRUST_CHECKPOINT),--trust-checkpoint) \
	  $(if $(CONVERT_DEMO),--demo) --out $(CONVERT_DIR)
	npx tsx tools/onnx2tfjs/cli.ts $(CONVERT_DIR)/model.onnx --export-info $(CONVERT_DIR)/export.json \
	  --reference $(CONVERT_DIR)/reference.json --out '$(MODEL_DIR)'

# The server on PORT (default 5012): builds, runs `make convert` first when MODEL_DIR holds no model yet (docs/config.md).
# Every option is an env variable, also given on make's command line: `make serve WORKERS=2` runs two processes.
# glibc maps buffers of 32 MiB and more on their own (a decoded 36-megapixel image goes back at once), keeps one
# arena for every thread, so what one thread frees another reuses, and keeps freed pages for the next request's
# decode instead of faulting them in again: the server gives them back itself; and asks the kernel for 2 MiB pages
# for its heap, a fault for 512 ordinary ones (docs/runtime.md, "Memory").
SERVE_MALLOC_ENV := MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456 GLIBC_TUNABLES=glibc.malloc.hugetlb=1
# V8 starts each heap's old generation at 128 MiB: the service's heaps hold about 20 MiB alive, and below that start
# V8 marks them almost without pause under load. And it keeps its heaps' sizes when the service pauses, rather than
# shrinking them to grow them again at the next request (docs/runtime.md, "Garbage collection"). Not settable in
# NODE_OPTIONS.
SERVE_NODE_FLAGS := --initial-old-space-size=128 --no-memory-reducer

serve: setup build
	@if [ ! -f '$(MODEL_DIR)/model.json' ]; then $(MAKE) convert; fi
	MODEL_DIR='$(MODEL_DIR)' $(SERVE_MALLOC_ENV) node $(SERVE_NODE_FLAGS) dist/src/main.js

# The test command README gives: type-check (the server, the page and its browser tests each with their own
# libraries), then every uvu suite on the native backend. Tests that serve the page build it first (`build:web`).
test: build $(STAMPS)/python $(STAMPS)/onnx-testdata $(STAMPS)/flask $(STAMPS)/nginx $(STAMPS)/podman $(STAMPS)/chromium setup-gpu
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p src/web/tsconfig.json --noEmit
	npx tsc -p test/web/tsconfig.json --noEmit
	node -r tsx/cjs test/run.ts

# docs/page.png, README's picture of the page: the demo model's answers in Chromium (test/web/screenshot.ts).
page-screenshot: $(STAMPS)/npm $(STAMPS)/python $(STAMPS)/chromium setup
	node -r tsx/cjs test/web/screenshot.ts docs/page.png

# Fuzzing of the upload entry points (docs/fuzzing.md): FUZZ_SECONDS in all, a random seed unless FUZZ_SEED, a
# report per target, failing inputs under .cache/fuzz/. `make test` runs a bounded, fixed-seed pass (test/fuzz/).
FUZZ_SECONDS ?= 600
fuzz: $(STAMPS)/npm setup
	FUZZ_SECONDS='$(FUZZ_SECONDS)' node -r tsx/cjs test/fuzz/fuzz.ts

# Flask for the benchmark's replica of the original server (bench/flask_server.py) and its smoke test.
$(STAMPS)/flask: | $(STAMPS)
	@if ! $(PYTHON) -c 'import flask' 2>/dev/null; then \
	  $(call apt_install,python3-flask,the benchmark and its test run a replica of the original Flask server); \
	fi
	touch $@

# The original as production runs it: gunicorn, and PyTorch on OpenBLAS (Debian's default reference BLAS is several
# times slower, which would flatter us).
$(STAMPS)/bench-baselines: $(STAMPS)/flask | $(STAMPS)
	@if ! $(PYTHON) -c 'import gunicorn' 2>/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ]; then \
	  $(call apt_install,python3-gunicorn libopenblas0-pthread,make bench runs the original under gunicorn with PyTorch on OpenBLAS); \
	fi
	touch $@

# Side by side in one run: ours, the Flask original and plain onnxruntime-node; prints and writes docs/benchmark.md.
# It converts CHECKPOINT (or the demo model) into a folder of its own, so MODEL_DIR is never touched.
BENCH_DIR := .cache/bench
bench: build setup $(STAMPS)/python $(STAMPS)/bench-baselines
	$(MAKE) --no-print-directory convert MODEL_DIR=$(BENCH_DIR)/model_tfjs CONVERT_DIR=$(BENCH_DIR)/convert
	npx tsx bench/run.ts --model-dir $(BENCH_DIR)/model_tfjs --convert-dir $(BENCH_DIR)/convert --python $(PYTHON)

# Soak: SOAK_REQUESTS requests at concurrency 32 against the built server on the bench's model; RSS and the engine's
# tensors sampled, flat within 10% or it fails.
SOAK_REQUESTS ?= 100000
soak: build setup $(STAMPS)/python
	$(MAKE) --no-print-directory convert MODEL_DIR=$(BENCH_DIR)/model_tfjs CONVERT_DIR=$(BENCH_DIR)/convert
	npx tsx bench/soak.ts --model-dir $(BENCH_DIR)/model_tfjs --requests $(SOAK_REQUESTS) --concurrency 32

# Container image (Dockerfile, docs/deploy.md), built with podman. No image registry is reachable here, so the base
# (Debian bookworm and Node 20) is built locally first, unless NODE_IMAGE names another (e.g. node:20-bookworm-slim).
.PHONY: image image-vars
IMAGE ?= localhost/torch-serve-node:$(shell node -p 'require("./package.json").version')
LOCAL_NODE_IMAGE := localhost/node:20-bookworm-local
NODE_IMAGE ?= $(LOCAL_NODE_IMAGE)
# runc: crun fails on cgroup v1 kernels. podman's default open-file limit (1048576) is above some machines' hard limit
# (runc then fails with EPERM): containers get limits any machine allows.
PODMAN ?= podman --runtime runc
PODMAN_ULIMITS := --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
# The machine's CA bundle, trusted by the build's downloads only (a build secret): a TLS-inspecting proxy's CA works.
BUILD_CA ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
build_ca_secret = --secret id=build_ca,src='$(BUILD_CA)'

$(STAMPS)/podman: | $(STAMPS)
	@if ! { command -v podman && command -v runc && command -v debootstrap; } >/dev/null 2>&1; then \
	  $(call apt_install,podman runc debootstrap,make image builds the container image with podman on a Debian base made by debootstrap); \
	fi
	touch $@

# --format docker keeps HEALTHCHECK (OCI images have none); --network host: the build downloads as the machine does.
image: $(STAMPS)/podman
ifeq ($(NODE_IMAGE),$(LOCAL_NODE_IMAGE))
	PODMAN='$(PODMAN)' SUDO='$(SUDO)' deploy/container/base-image.sh '$(NODE_IMAGE)'
endif
	$(PODMAN) build --format docker --network host $(PODMAN_ULIMITS) --build-arg NODE_IMAGE='$(NODE_IMAGE)' \
	  $(if $(BUILD_CA),$(build_ca_secret)) --tag '$(IMAGE)' .

# What test/deploy/ reads: the image's name, and podman and its run options as used here.
image-vars:
	@echo 'IMAGE=$(IMAGE)'; echo 'PODMAN=$(PODMAN)'; echo 'PODMAN_ULIMITS=$(PODMAN_ULIMITS)'

clean:
	rm -rf dist .cache
