# SPDX-License-Identifier: Apache-2.0
# A thin layer over CMake: the two commands the README names, and a few conveniences.
#   make run    install dependencies, build a release binary, fetch the default model, answer a
#               sample prompt with it, then start the daemon and its dashboard (Ctrl-C stops it)
#   make test   install dependencies, build with warnings as errors under ASan+UBSan, run the tests
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
RELEASE_DIR ?= build/release
TEST_DIR ?= build/test
FUZZ_DIR ?= build/fuzz
PROMPT ?= What is the capital of France? Answer in one sentence.
# The daemon of `make run` serves the network, as DESIGN.md's first command does; LISTEN=127.0.0.1
# keeps it to this machine.
LISTEN ?= 0.0.0.0
API_PORT ?= 52415

.PHONY: all deps test-deps release run test test-unit test-integration fuzz bench format clean

all: release

deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps --test

release: deps
	@cmake -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=Release -DEXO_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS)

run: release
	@model=$$(scripts/fetch-model) && \
	$(RELEASE_DIR)/exo run -m "$$model" --chat -p "$(PROMPT)" -n 96 && \
	echo && echo "Starting the daemon: open http://localhost:$(API_PORT)/ for the dashboard" \
		"(the API is under /v1; Ctrl-C stops it)." && echo && \
	exec $(RELEASE_DIR)/exo --listen $(LISTEN) --api-port $(API_PORT) -m "$$model"

$(TEST_DIR)/CMakeCache.txt:
	@cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEXO_WERROR=ON \
		-DEXO_SANITIZE=address,undefined >/dev/null

test: test-deps $(TEST_DIR)/CMakeCache.txt
	@cmake --build $(TEST_DIR) -j $(JOBS)
	@EXO_MODEL=$$(scripts/fetch-model --quiet) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(TEST_DIR) --output-on-failure -j $(JOBS)

fuzz: test-deps
	@CC=clang cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEXO_BUILD_FUZZ=ON \
		-DEXO_SANITIZE=address,undefined -DEXO_BUILD_BENCH=OFF >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS)
	@echo "fuzz targets are in $(FUZZ_DIR)/tests; e.g. $(FUZZ_DIR)/tests/fuzz-gguf tests/fuzz/corpus/gguf"

bench: release
	@cmake -S . -B $(RELEASE_DIR) -DEXO_BUILD_BENCH=ON >/dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build
