# kvduel: the two commands in README.md are `make run` and `make test`.
SWIFT ?= swift
BIN := .build/release/kvduel
ARGS ?=

.PHONY: run test setup build bench reference clean

run: setup build
	$(BIN) $(ARGS)

setup:
	@bash scripts/setup.sh

build:
	$(SWIFT) build -c release --product kvduel

# Tests run optimised: the golden tests run the real model, which is too slow unoptimised.
# They build in their own scratch path: a testable build in .build would make the next
# `make run` recompile everything.
TEST_SCRATCH := .build-tests
test: setup build
	$(SWIFT) build -c release --build-tests --scratch-path $(TEST_SCRATCH)
	KVDUEL_REQUIRE_MODEL=$${KVDUEL_REQUIRE_MODEL:-1} $(SWIFT) test -c release --skip-build --scratch-path $(TEST_SCRATCH)
	bash Tests/ckernels/run.sh
	bash Tests/e2e/duel-tmux.sh

bench: setup build
	$(BIN) bench engine

# Optional: llama.cpp (from PyPI's llama-cpp-python sdist, sha256-pinned) as the reference that
# `bench engine` (llama-bench) and `bench --scenario F --llama-server default` (llama-server)
# measure in the same run, and the tool that made the france-chat golden logits.
reference:
	@bash scripts/reference-llama-cpp.sh

clean:
	rm -rf .build $(TEST_SCRATCH)
