# Thin wrapper over CMake for the README's commands.
#   make deps   install the Debian packages needed to build and run (idempotent; deps-test adds the test references)
#   make        build build/adeptlua, build/adept.so and libadept (release, tuned for this machine)
#   make test   build and run every test, then the unit tests and Lua specs under ASan/UBSan
#   make run    install dependencies, build, run the quickstart recipe
#   make fuzz-long  every fuzz target for FUZZ_SECONDS (1800) each; FUZZ_TARGETS="jsonl ..." picks some
# PORTABLE=1 builds binaries without -march=native.

BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(PORTABLE),1)
CMAKE_FLAGS += -DADEPT_NATIVE=OFF
endif

.PHONY: all build deps deps-test test test-fast test-asan fuzz fuzz-long run bench clean install

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh

deps-test:
	@scripts/deps.sh test

test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900
	$(MAKE) test-asan

# The fast path while developing: no sanitizer pass.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

test-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DADEPT_SANITIZE=ON -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DADEPT_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -L 'unit|lua|fuzz' --timeout 900

fuzz:
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DADEPT_FUZZ=ON -DADEPT_SANITIZE=ON -DCMAKE_C_COMPILER=clang \
	  -DADEPT_TESTS=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

# Every fuzz target for FUZZ_SECONDS each from its kept corpus; findings become regression inputs (scripts/fuzz_long.sh).
FUZZ_SECONDS ?= 1800
fuzz-long: fuzz
	@scripts/fuzz_long.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

run: deps build
	$(BUILD)/adeptlua recipes/quickstart.lua

bench: build
	@for b in tests/bench/*/run; do echo "== $$b"; $$b || exit 1; done

install: build
	cmake --install $(BUILD) --prefix $(or $(PREFIX),/usr/local)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
