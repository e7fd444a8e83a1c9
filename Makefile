# husk: one non-recursive build for every daemon, the CLI, the guest agent and the tests.
#
#   make                 build everything into build/
#   make guest           build the guest kit (kernel, initramfs, demo rootfs) into build/kit
#   make check           unit tests (ASan+UBSan) and integration tests (real daemons, real VMs)
#   make san-daemons     the daemons built with ASan+UBSan into build/san/bin (integration needs them)
#   make bench           benchmarks, printed as ratios against a bare baseline
#   make demo            install dependencies, build, start a stack and apply the hello example
#   make install DESTDIR=... PREFIX=...

PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
BUILD      ?= build
CC         ?= gcc
PYTHON     ?= /usr/bin/python3

PKGS     := libczmq libzmq msgpack yaml-0.1 sqlite3 jansson libcurl libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -lcivetweb -lpthread

WARN     := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 -Wvla
CFLAGS   ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -DHUSK_KITDIR=\"$(PREFIX)/share/husk/kit\" -I. $(WARN) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Objects of the normal build land in $(BUILD)/obj, those of the sanitized test build in $(BUILD)/san.
obj     = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
sanobj  = $(patsubst %.c,$(BUILD)/san/%.o,$(1))

LIB_SRCS   := $(wildcard lib/*.c) $(wildcard proto/*.c)
SERVICES   := apiserver scheduler vmm-driver netd logd
# Libraries only one component links (its daemon and its unit tests).
LIBS_netd  := $(shell pkg-config --libs libnftables)
# Each component's sources except main.c: the part unit tests link against.
comp_dir    = $(if $(filter cli,$(1)),cli,$(if $(filter lib proto,$(1)),,services/$(1)))
comp_srcs   = $(filter-out %/main.c,$(if $(call comp_dir,$(1)),$(wildcard $(call comp_dir,$(1))/*.c)))

BINS := $(foreach s,$(SERVICES),$(BUILD)/bin/husk-$(s)) $(BUILD)/bin/husk $(BUILD)/bin/husk-agent

all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

define service_rule
$(BUILD)/bin/husk-$(1): $(call obj,$(wildcard services/$(1)/*.c) $(LIB_SRCS))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(LIBS_$(1)) $$(LDFLAGS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

$(BUILD)/bin/husk: $(call obj,$(wildcard cli/*.c) $(LIB_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

# The agent runs as PID 1 of an initramfs with no libc: it is linked statically and
# only against what it needs (msgpack-c and the agent codec), never czmq.
AGENT_SRCS := $(wildcard services/agent/*.c) proto/agent_frame.c lib/mp.c lib/nesting.c lib/util.c
$(BUILD)/bin/husk-agent: $(call obj,$(AGENT_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -o $@ $^ -lmsgpackc -ljansson $(LDFLAGS)

# ---- guest kit ---------------------------------------------------------------------------
KIT := $(BUILD)/kit
guest: $(KIT)/.stamp
$(KIT)/.stamp: $(BUILD)/bin/husk-agent deploy/guest/build-kit.sh
	deploy/guest/build-kit.sh --out $(KIT) --agent $(BUILD)/bin/husk-agent
	@touch $@

# ---- unit tests ----------------------------------------------------------------------------
# tests/unit/<component>/test_*.c links the sanitized library plus the component's sources.
UNIT_SRCS  := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/san/tests/%,$(UNIT_SRCS))
unit_comp   = $(word 1,$(subst /, ,$(patsubst tests/unit/%,%,$(1))))

define unit_rule
$(patsubst tests/unit/%.c,$(BUILD)/san/tests/%,$(1)): $(call sanobj,$(1) $(LIB_SRCS) $(call comp_srcs,$(call unit_comp,$(1))))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(SAN_FLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(LIBS_$(call unit_comp,$(1))) -lcmocka $$(LDFLAGS)
endef
$(foreach t,$(UNIT_SRCS),$(eval $(call unit_rule,$(t))))

# Every test binary runs even when one fails, so one failure does not hide the others'.
unit: $(UNIT_BINS)
	@failed=; for t in $(UNIT_BINS); do echo "== $$t"; \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $$t || failed="$$failed $$t"; done; \
	  if [ -n "$$failed" ]; then echo "unit tests failed:$$failed"; exit 1; fi

# ---- sanitized daemons ------------------------------------------------------------------------
# The daemons built with ASan+UBSan into build/san/bin, for the integration tests that hunt
# memory errors in a live stack (test_reload.py). They share build/san objects with the unit
# tests, so they cost little more than linking.
SAN_DAEMONS := $(foreach s,$(SERVICES),$(BUILD)/san/bin/husk-$(s))
define san_service_rule
$(BUILD)/san/bin/husk-$(1): $(call sanobj,$(wildcard services/$(1)/*.c) $(LIB_SRCS))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(SAN_FLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(LIBS_$(1)) $$(LDFLAGS)
endef
$(foreach s,$(SERVICES),$(eval $(call san_service_rule,$(s))))
san-daemons: $(SAN_DAEMONS)

# ---- fuzzers (libFuzzer, bounded) ---------------------------------------------------------------
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_SECONDS ?= 20
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) \
	  -o $@ $(filter %.c,$^) $(PKG_LIBS)
# A fuzzer of a component's code links the component's sources as well.
$(BUILD)/fuzz/fuzz_manifest_parse: $(call comp_srcs,apiserver)
fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do echo "== $$f ($(FUZZ_SECONDS)s)"; \
	  mkdir -p $(BUILD)/fuzz/corpus-$$(basename $$f); \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)/fuzz/corpus-$$(basename $$f) \
	    $$(ls -d tests/fuzz/seeds-$$(basename $$f) 2>/dev/null) 2>&1 | tail -3; done

# ---- integration tests -----------------------------------------------------------------------
integration: all guest san-daemons
	HUSK_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

check: unit fuzz integration

bench: all guest
	HUSK_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/bench/run.py

# The chaos test again and again with random seeds (make check runs it once, seed fixed).
SOAK_RUNS ?= 5
soak: all guest
	@set -e; for i in $$(seq $(SOAK_RUNS)); do seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	  echo "== soak run $$i of $(SOAK_RUNS), HUSK_CHAOS_SEED=$$seed"; \
	  HUSK_CHAOS_SEED=$$seed HUSK_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -s -p no:cacheprovider \
	    tests/integration/test_chaos.py; done

demo:
	deploy/demo.sh

# ---- install ------------------------------------------------------------------------------------
install: all guest
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/husk/kit \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(SYSCONFDIR)/husk
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(KIT)/vmlinux $(KIT)/initrd.gz $(DESTDIR)$(PREFIX)/share/husk/kit/
	for u in deploy/systemd/*.service deploy/systemd/*.target; do \
	  sed 's|@BINDIR@|$(PREFIX)/bin|g' $$u > $(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u); done
	test -e $(DESTDIR)$(SYSCONFDIR)/husk/config.yaml || \
	  sed 's|@KITDIR@|$(PREFIX)/share/husk/kit|g' deploy/config.example.yaml > $(DESTDIR)$(SYSCONFDIR)/husk/config.yaml

clean:
	rm -rf $(BUILD)/obj $(BUILD)/san $(BUILD)/bin $(BUILD)/fuzz

.PHONY: all guest san-daemons unit fuzz integration check bench soak demo install clean
.DELETE_ON_ERROR:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
