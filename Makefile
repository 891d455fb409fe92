# Thin wrapper over CMake so a newcomer types `make demo` or `make check`.
# Every target first runs scripts/deps.sh, which installs missing Debian
# packages and does nothing when all are present.
BUILD       ?= build
CHECK_BUILD ?= build-check
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps deps-all build check demo clean format

all: build

deps:
	@bash scripts/deps.sh

# The test suite also needs PostgreSQL (a throwaway cluster per run) and
# Chromium (browser tests).
deps-all:
	@bash scripts/deps.sh --all

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
check: deps-all
	@cmake -S . -B $(CHECK_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTH_SANITIZE=ON >/dev/null
	@cmake --build $(CHECK_BUILD) -j $(JOBS)
	@cd $(CHECK_BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD) $(DEMO_ARGS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(CHECK_BUILD)
