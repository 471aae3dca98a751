# ami-publisher: every target installs what it needs (a project-local Python
# virtual environment for the EC2 emulator, cfn-lint, SAM CLI and
# cargo-lambda). Nothing here talks to AWS except `make deploy`.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
# cargo-lambda (and the zig it cross-compiles with) come from the venv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Dummy credentials and a fixed region for everything local; the emulator
# listens on 127.0.0.1 and tests point the SDK at it with AWS_ENDPOINT_URL.
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_DEFAULT_REGION ?= us-east-1
# The tests start the emulator with this interpreter.
export EMULATOR_PYTHON := $(CURDIR)/$(PY)
# SAM CLI: no telemetry (it would post to an AWS endpoint).
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv build test test-rust test-python lint demo bench deploy clean images-tools fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV_STAMP): tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: $(VENV_STAMP) ## create the Python environment (emulator, linters, cargo-lambda)

build: venv ## build the Lambda package: target/lambda/ami-publisher/bootstrap (arm64)
	rustup target add aarch64-unknown-linux-gnu
	cargo lambda build --release --arm64

test: lint test-rust test-python ## run every test (what CI runs)

# The disk-image tests build real file systems without root: e2fsprogs
# (mke2fs -d), xfsprogs (mkfs.xfs -p), gdisk (sgdisk) and dosfstools (the
# EFI partition's FAT). Installed from Debian's archive when a tool is
# missing (the machine is root); `apt-get update` runs only then.
IMAGE_TOOLS := mke2fs:e2fsprogs mkfs.xfs:xfsprogs sgdisk:gdisk mkfs.vfat:dosfstools
images-tools: ## install the tools the disk-image tests build images with (apt-get, when missing)
	@missing=""; for t in $(IMAGE_TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || PATH=$$PATH:/usr/sbin:/sbin command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Where tests/images/build.py keeps the images it builds (sparse files,
# rebuilt only when missing); tests/disk_images.rs reads them from here.
export DISK_IMAGES_DIR ?= $(CURDIR)/target/disk-images

# One cargo profile (dev) for unit, mocked, emulator and end-to-end tests:
# the binary the end-to-end tests run is the one `cargo test` built.
test-rust: venv images-tools
	cargo test --all-targets

test-python: venv test-rust
	$(PY) -m pytest -q tests/lint tests/emulator tests/template tests/e2e

# A longer pass of the deterministic mutation fuzzer over the real images
# (make test runs a short one): FUZZ_ITERATIONS mutated images per layout.
FUZZ_ITERATIONS ?= 5000
fuzz: images-tools ## fuzz the partition and file-system readers longer than make test does
	DISK_FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) cargo test --test disk_images -- --nocapture fuzz

# `sam validate --lint` runs in tests/template, offline (telemetry and the
# version check off, every AWS endpoint pointed at a closed local port).
lint: venv ## rustfmt, clippy (-D warnings), no import cycle in src/, cfn-lint, parliament and the SAR check on the role's policies
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	$(PY) tests/lint/module_cycles.py
	cfn-lint template.yaml
	$(PY) tests/template/lint_iam.py
	$(PY) tests/template/sar.py

demo: venv images-tools ## run the function end to end against the local EC2 emulator (and the content check over real disk images)
	cargo build
	$(PY) tests/e2e/demo.py

bench: venv ## measure size, cold start, memory, AWS calls, scale, throttling, fan-out and TLS
	rustup target add aarch64-unknown-linux-gnu
	$(PY) bench/run.py

deploy: build ## deploy with SAM (asks for stack name, region, parameters)
	sam build && sam deploy --guided

clean: ## remove build outputs and the Python environment
	cargo clean
	rm -rf $(VENV) .aws-sam bench/work
