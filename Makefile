# tlsgate: the two commands a user needs are `make run` and `make test`.
BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
JOBS        ?= $(shell nproc)
CMAKE_FLAGS ?=
ARGS        ?=
FUZZ_SECONDS ?= 10

.PHONY: all deps build asan run test unit integration test-asan bench bench-lab lock-census fuzz fuzz-smoke format clean install soak

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTLSGATE_SANITIZE=ON \
	  -DTLSGATE_BENCH=OFF $(CMAKE_FLAGS)

asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# Starts the gateway with embedded defaults: explicit proxy on 127.0.0.1:8080, CA created in
# ~/.local/share/tlsgate on first start. Extra flags: make run ARGS="--workers 1".
run: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target tlsgate
	./$(BUILD)/tlsgate run $(ARGS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

integration: build
	TLSGATE_BIN=$(CURDIR)/$(BUILD)/tlsgate /usr/bin/python3 -m unittest discover -s tests/integration -p 'test_*.py' -v

# The sanitizer build runs the unit tests and the integration suite against the ASan binary.
test-asan: asan
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)
	TLSGATE_BIN=$(CURDIR)/$(ASAN_BUILD)/tlsgate /usr/bin/python3 -m unittest discover -s tests/integration -p 'test_*.py'

test: unit integration test-asan fuzz-smoke

$(FUZZ_BUILD)/build.ninja:
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DTLSGATE_FUZZ=ON -DTLSGATE_TESTS=OFF -DTLSGATE_BENCH=OFF $(CMAKE_FLAGS)

# Every fuzz target for FUZZ_SECONDS, starting from its seed corpus (copied: the tree stays clean).
fuzz-smoke fuzz: deps $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $$(cd fuzz && ls -d */ | tr -d / | sed 's/^/fuzz_/')
	@for dir in fuzz/*/; do \
	  name=$$(basename $$dir); work=$(FUZZ_BUILD)/corpus-$$name; mkdir -p $$work; \
	  cp -n $$dir/corpus/* $$work/ 2>/dev/null || true; \
	  echo "fuzz_$$name for $(FUZZ_SECONDS) s"; \
	  ./$(FUZZ_BUILD)/fuzz_$$name -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
	    -artifact_prefix=$(FUZZ_BUILD)/ $$work > $(FUZZ_BUILD)/fuzz_$$name.log 2>&1 \
	    || { tail -40 $(FUZZ_BUILD)/fuzz_$$name.log; exit 1; }; \
	  tail -1 $(FUZZ_BUILD)/fuzz_$$name.log; \
	done

bench: build
	@for b in $(BUILD)/bench_*; do echo "== $$b"; $$b --benchmark_min_time=0.2 || exit 1; done
	TLSGATE_BIN=$(CURDIR)/$(BUILD)/tlsgate /usr/bin/python3 bench/recording_bench.py

# Which locks do the gateway's threads share under load (two workers)? See bench/lock_census.py.
lock-census: build
	TLSGATE_BIN=$(CURDIR)/$(BUILD)/tlsgate /usr/bin/python3 bench/lock_census.py

SOAK_SECONDS ?= 1800
# Outside `make test`: the resilience soak alone (mixed load, RSS every 10 s, zero errors).
soak: build
	cd tests/integration && TLSGATE_BIN=$(CURDIR)/$(BUILD)/tlsgate \
	  TLSGATE_SOAK_SECONDS=$(SOAK_SECONDS) /usr/bin/python3 -m unittest -v test_resilience.Soak

bench-lab: build
	TLSGATE_BIN=$(CURDIR)/$(BUILD)/tlsgate ../shared/bench/run.sh -g direct,nginx-term,tlsgate,sslsplit,mitmproxy,squid

PREFIX  ?= /usr/local
DESTDIR ?=
# The binary, the systemd unit and an example config (an existing config is never overwritten).
install: build
	install -D -m 0755 $(BUILD)/tlsgate $(DESTDIR)$(PREFIX)/bin/tlsgate
	install -D -m 0644 packaging/tlsgate.service $(DESTDIR)/etc/systemd/system/tlsgate.service
	install -d -m 0755 $(DESTDIR)/etc/tlsgate
	[ -e $(DESTDIR)/etc/tlsgate/config.toml ] || \
	  install -m 0644 packaging/config.toml $(DESTDIR)/etc/tlsgate/config.toml
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/tlsgate/README.md

format:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
