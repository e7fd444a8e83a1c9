# husk: one non-recursive build for every daemon, the CLI, the guest agent and the tests.
#
#   make                 build everything into build/
#   make guest           build the guest kit (kernel, initramfs, demo rootfs) into build/kit
#   make image           build the Debian disk image the disk-mode tests boot (build/image/debian-12.raw)
#   make check           unit tests (ASan+UBSan) and integration tests (real daemons, real VMs)
#   make san-daemons     the daemons built with ASan+UBSan into build/san/bin (integration needs them)
#   make bench           benchmarks, printed as ratios against a bare baseline
#   make demo            install dependencies, build, start a stack and apply the hello example
#   make install DESTDIR=... PREFIX=...

PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
BUILD      ?= build
GEN        := $(BUILD)/gen
CC         ?= gcc
PYTHON     ?= /usr/bin/python3

# One version for every binary's --version, the CLI's User-Agent and the agent's hello.
HUSK_VERSION := $(shell cat VERSION)

# Each binary links only the libraries its own code and the lib/ and proto/ objects it pulls
# from libhusk.a use; --as-needed drops the rest. The CLI loads neither civetweb, sqlite nor
# libsystemd (sd_notify lives in lib/daemon.c, which only daemons pull); of the daemons
# vmm-driver (cloud-hypervisor's API) and apiserver (webhook deliveries) load curl.
PKGS_core      := libczmq libzmq msgpack yaml-0.1 jansson
PKGS_daemon    := $(PKGS_core) libsystemd
PKGS_cli       := $(PKGS_core) libcurl
PKGS_apiserver := $(PKGS_daemon) sqlite3 libsodium openssl libcurl
PKGS_netd      := $(PKGS_daemon) libnftables
# vmm-driver speaks cloud-hypervisor's REST API through libcurl's multi interface.
PKGS_vmm-driver := $(PKGS_daemon) libcurl
PKGS_ALL       := $(sort $(PKGS_cli) $(PKGS_apiserver) $(PKGS_netd) $(PKGS_vmm-driver))
pkg_libs        = $(shell pkg-config --libs $(1))
PKG_CFLAGS     := $(shell pkg-config --cflags $(PKGS_ALL))

WARN     := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 -Wvla
CFLAGS   ?= -O2 -g
# Hardening for every binary: stack protector, FORTIFY (it needs an optimizing build: without
# -O it is left out rather than warned about under -Werror), PIE and full RELRO.
FORTIFY  := $(if $(filter -O1 -O2 -O3 -Os -Og -Ofast,$(CFLAGS)),-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)
HARDEN_CFLAGS  := -fstack-protector-strong $(FORTIFY) -fPIE
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now
AS_NEEDED := -Wl,--as-needed
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -DHUSK_VERSION=\"$(HUSK_VERSION)\" -DHUSK_KITDIR=\"$(PREFIX)/share/husk/kit\" \
	-I. -I$(GEN) $(WARN) $(PKG_CFLAGS) $(HARDEN_CFLAGS) $(CFLAGS) -MMD -MP
ALL_LDFLAGS := $(AS_NEEDED) $(HARDEN_LDFLAGS) $(LDFLAGS)
# Where make install puts the web dashboard (ui/), apiserver.ui_dir's default.
ALL_CFLAGS += -DHUSK_UIDIR=\"$(PREFIX)/share/husk/ui\"
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Objects of the normal build land in $(BUILD)/obj, those of the sanitized test build in $(BUILD)/san.
# A generated source's object is named after its path under $(GEN), never after $(GEN) itself:
# `make BUILD=$PWD/build` (test_systemd's make install) must find the objects `make` made, not
# compile new ones under build/obj/<absolute path> and relink every binary while tests run them.
obj_of  = $(patsubst %.c,$(2)/%.o,$(patsubst $(GEN)/%,gen/%,$(1)))
obj     = $(call obj_of,$(1),$(BUILD)/obj)
sanobj  = $(call obj_of,$(1),$(BUILD)/san)

# ---- generated from proto/schema.yaml ------------------------------------------------------------
# The names (proto/names.h) and field tables (proto/schema.h) of every message, and the tests'
# Python tables, made by proto/schema_gen.py whenever the schema changes. Every object waits for
# the headers (order-only: the first build has no .d files yet); after that its .d file names the
# ones it includes, so a schema change rebuilds exactly what uses it, fuzzers and tests included.
GEN_HDRS   := $(GEN)/proto/names_gen.h $(GEN)/proto/tables_gen.h
GEN_SRCS   := $(GEN)/proto/tables_gen.c
GEN_PY     := $(GEN)/husk_schema.py
$(GEN_HDRS) $(GEN_SRCS) $(GEN_PY) &: proto/schema.yaml proto/schema_gen.py
	$(PYTHON) proto/schema_gen.py proto/schema.yaml $(GEN)
schema: $(GEN_HDRS) $(GEN_SRCS) $(GEN_PY)

# lib/ and proto/ as a static archive: a binary gets only the objects it references.
LIB_SRCS   := $(wildcard lib/*.c) $(wildcard proto/*.c) $(GEN_SRCS)
LIBHUSK    := $(BUILD)/obj/libhusk.a
SAN_LIBHUSK := $(BUILD)/san/libhusk.a
SERVICES   := apiserver scheduler vmm-driver netd logd
# A component's libraries: the daemon list unless it has its own (the CLI, apiserver, netd).
comp_libs   = $(call pkg_libs,$(if $(PKGS_$(1)),$(PKGS_$(1)),$(PKGS_daemon))) $(if $(filter apiserver,$(1)),-lcivetweb -lpthread)
# Each component's sources except main.c: the part unit tests link against.
comp_dir    = $(if $(filter cli,$(1)),cli,$(if $(filter oci,$(1)),cli/oci,$(if $(filter lib proto,$(1)),,services/$(1))))
comp_srcs   = $(filter-out %/main.c,$(if $(call comp_dir,$(1)),$(wildcard $(call comp_dir,$(1))/*.c))) $(if $(filter oci,$(1)),$(OCI_VMM_SRCS))

BINS := $(foreach s,$(SERVICES),$(BUILD)/bin/husk-$(s)) $(BUILD)/bin/husk $(BUILD)/bin/husk-agent $(BUILD)/bin/husk-oci
# lib/bus for the CLI: `husk tap`, its only user, opens it (cli/cli_tap_bus.c), so that czmq,
# libzmq and the ~18 shared objects behind them are not loaded by every other verb.
BUSMOD := $(BUILD)/lib/husk/husk-bus.so

all: $(BINS) $(BUSMOD) $(GEN_PY)

$(BUILD)/obj/%.o: %.c VERSION | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c VERSION | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(BUILD)/obj/gen/%.o: $(GEN)/%.c VERSION
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/san/gen/%.o: $(GEN)/%.c VERSION
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(LIBHUSK): $(call obj,$(LIB_SRCS))
	@rm -f $@
	$(AR) rcs $@ $^

$(SAN_LIBHUSK): $(call sanobj,$(LIB_SRCS))
	@rm -f $@
	$(AR) rcs $@ $^

define service_rule
$(BUILD)/bin/husk-$(1): $(call obj,$(wildcard services/$(1)/*.c)) $(LIBHUSK)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(ALL_LDFLAGS) -o $$@ $$^ $$(call comp_libs,$(1))
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))
# apiserver reads manifests with the CLI's reader (POST /manifests/parse): one YAML reading.
MANIFEST_SRCS := cli/cli_yaml.c cli/cli_expand.c cli/cli_manifest.c
$(BUILD)/bin/husk-apiserver: $(call obj,$(MANIFEST_SRCS))

$(BUILD)/bin/husk: $(call obj,$(wildcard cli/*.c)) $(LIBHUSK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(call comp_libs,cli)

# husk-oci, the OCI runtime (cli/oci/): standalone, no daemon; it runs QEMU and virtiofsd itself
# with vmm-driver's own code for them (the qemu runtime's command line, the spawners), linked in.
PKGS_oci := $(PKGS_core)
OCI_VMM_SRCS := services/vmm-driver/vmm_qemu.c services/vmm-driver/vmm_fs.c services/vmm-driver/vmm_proc.c \
                services/vmm-driver/vmm_qemu_template.c
$(BUILD)/bin/husk-oci: $(call obj,$(wildcard cli/oci/*.c) $(OCI_VMM_SRCS)) $(LIBHUSK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(call comp_libs,oci)

picobj = $(patsubst %.c,$(BUILD)/pic/%.o,$(1))
$(BUILD)/pic/%.o: %.c VERSION | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -c $< -o $@

BUSMOD_SRCS := lib/bus.c lib/log.c lib/mp.c lib/stats.c lib/util.c
$(BUSMOD): $(call picobj,$(BUSMOD_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -Wl,-z,defs $(AS_NEEDED) -Wl,-z,relro,-z,now $(LDFLAGS) -o $@ $^ \
	  $(call pkg_libs,libczmq libzmq msgpack jansson)

# The agent runs as PID 1 of an initramfs with no libc: it is linked statically and
# only against what it needs (msgpack-c and the agent codec), never czmq. static-pie keeps
# ASLR for it (its objects are PIE like every other's).
AGENT_SRCS := $(wildcard services/agent/*.c) proto/agent_frame.c proto/agent_proc.c lib/child.c lib/mp.c lib/nesting.c lib/util.c
$(BUILD)/bin/husk-agent: $(call obj,$(AGENT_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static-pie -Wl,-z,relro,-z,now $(LDFLAGS) -o $@ $^ -lmsgpackc -ljansson

# ---- guest kit ---------------------------------------------------------------------------
KIT := $(BUILD)/kit
guest: $(KIT)/.stamp
$(KIT)/.stamp: $(BUILD)/bin/husk-agent deploy/guest/build-kit.sh
	deploy/guest/build-kit.sh --out $(KIT) --agent $(BUILD)/bin/husk-agent
	@touch $@

# ---- disk image ------------------------------------------------------------------------
# A bootable raw GPT image (UEFI, cloud-init NoCloud, husk-agent, a page on :8080) from Debian
# packages; rebuilt only when one of its inputs changes. The .debs stay in $(IMAGE_DIR)/cache.
IMAGE_DIR := $(BUILD)/image
IMAGE     := $(IMAGE_DIR)/debian-12.raw
IMAGE_INPUTS := deploy/image/build-image.sh deploy/image/cloud.cfg deploy/image/husk-envpage.py \
	deploy/image/husk-envpage.service deploy/systemd/husk-agent.service $(BUILD)/bin/husk-agent
image: $(IMAGE)
$(IMAGE): $(IMAGE_INPUTS)
	deploy/image/build-image.sh --out $@ --agent $(BUILD)/bin/husk-agent

# ---- unit tests ----------------------------------------------------------------------------
# tests/unit/<component>/test_*.c links the sanitized library plus the component's sources,
# the component's libraries and what tests use besides (cmocka; curl as an HTTP client).
UNIT_LIBS  := $(call pkg_libs,libcurl) -lcmocka
UNIT_SRCS  := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/san/tests/%,$(UNIT_SRCS))
unit_comp   = $(word 1,$(subst /, ,$(patsubst tests/unit/%,%,$(1))))

define unit_rule
$(patsubst tests/unit/%.c,$(BUILD)/san/tests/%,$(1)): $(call sanobj,$(1) $(call comp_srcs,$(call unit_comp,$(1)))) $(SAN_LIBHUSK)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(SAN_FLAGS) $$(ALL_LDFLAGS) -o $$@ $$^ $$(call comp_libs,$(call unit_comp,$(1))) $$(UNIT_LIBS)
endef
$(foreach t,$(UNIT_SRCS),$(eval $(call unit_rule,$(t))))
$(patsubst tests/unit/%.c,$(BUILD)/san/tests/%,$(wildcard tests/unit/apiserver/test_*.c)): $(call sanobj,$(MANIFEST_SRCS))

# Every test binary runs even when one fails, so one failure does not hide the others'.
unit: $(UNIT_BINS)
	@failed=; for t in $(UNIT_BINS); do echo "== $$t"; \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $$t || failed="$$failed $$t"; done; \
	  if [ -n "$$failed" ]; then echo "unit tests failed:$$failed"; exit 1; fi

# The dashboard's client code (ui/*.js), with node's own test runner (nodejs, install-deps.sh).
ui-unit:
	node --test tests/ui/test_client.mjs
unit: ui-unit

# ---- sanitized daemons ------------------------------------------------------------------------
# The daemons built with ASan+UBSan into build/san/bin, for the integration tests that hunt
# memory errors in a live stack (test_reload.py). They share build/san objects with the unit
# tests, so they cost little more than linking.
SAN_DAEMONS := $(foreach s,$(SERVICES),$(BUILD)/san/bin/husk-$(s))
define san_service_rule
$(BUILD)/san/bin/husk-$(1): $(call sanobj,$(wildcard services/$(1)/*.c)) $(SAN_LIBHUSK)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(SAN_FLAGS) $$(ALL_LDFLAGS) -o $$@ $$^ $$(call comp_libs,$(1))
endef
$(foreach s,$(SERVICES),$(eval $(call san_service_rule,$(s))))
$(BUILD)/san/bin/husk-apiserver: $(call sanobj,$(MANIFEST_SRCS))
san-daemons: $(SAN_DAEMONS)

# ---- fuzzers (libFuzzer, bounded) ---------------------------------------------------------------
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_SECONDS ?= 20
# Compiled like the other objects, with -MMD: a fuzzer is rebuilt when any file it includes
# (the fuzzers #include service sources) changes, not only its own .c.
# clang, not gcc: the warnings that mean a wrong call (a fuzzer left behind by an API change)
# stop the build.
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -DHUSK_VERSION=\"$(HUSK_VERSION)\" -I. -I$(GEN) -g -O1 $(PKG_CFLAGS) -MMD -MP \
               -Werror=incompatible-pointer-types -Werror=implicit-function-declaration -Werror=int-conversion
fuzzobj = $(call obj_of,$(1),$(BUILD)/fuzz-obj)
FUZZ_LIBHUSK := $(BUILD)/fuzz-obj/libhusk.a
$(BUILD)/fuzz-obj/tests/fuzz/%.o: tests/fuzz/%.c VERSION | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -c $< -o $@
$(BUILD)/fuzz-obj/%.o: %.c VERSION | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
$(BUILD)/fuzz-obj/gen/%.o: $(GEN)/%.c VERSION
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
$(FUZZ_LIBHUSK): $(call fuzzobj,$(LIB_SRCS))
	@rm -f $@
	$(AR) rcs $@ $^
.SECONDARY: $(call fuzzobj,$(FUZZ_SRCS))
$(BUILD)/fuzz/%: $(BUILD)/fuzz-obj/tests/fuzz/%.o $(FUZZ_LIBHUSK)
	@mkdir -p $(dir $@)
	clang -fsanitize=fuzzer,address,undefined -o $@ $(filter %.o,$^) $(filter %.a,$^) \
	  $(call pkg_libs,$(PKGS_apiserver)) -lcivetweb -lpthread
# A fuzzer of a component's code links the component's objects as well.
$(BUILD)/fuzz/fuzz_manifest_parse: $(call fuzzobj,$(call comp_srcs,apiserver))
$(BUILD)/fuzz/fuzz_config_body: $(call fuzzobj,$(call comp_srcs,apiserver))
$(BUILD)/fuzz/fuzz_manifest_parse $(BUILD)/fuzz/fuzz_config_body: $(call fuzzobj,$(MANIFEST_SRCS))
$(BUILD)/fuzz/fuzz_cli_manifest: $(call fuzzobj,cli/cli_yaml.c cli/cli_expand.c cli/cli_manifest.c)
$(BUILD)/fuzz/fuzz_oci_spec: $(call fuzzobj,cli/oci/oci_spec.c)
# One target per fuzzer, so that `make -j` runs them side by side. Each writes a log next to it;
# a crash fails its target and shows the log's end (the input is saved as <fuzzer>-crash-*).
# Its status is the fuzzer's own: piping it into tail used to hide every crash.
FUZZ_RUNS := $(addsuffix .run,$(FUZZ_BINS))
$(FUZZ_RUNS): %.run: %
	@mkdir -p $(dir $*)corpus-$(notdir $*)
	@if $* -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -artifact_prefix=$*- $(dir $*)corpus-$(notdir $*) \
	    $$(ls -d tests/fuzz/seeds-$(notdir $*) 2>/dev/null) > $*.log 2>&1; \
	  then echo "== $(notdir $*) ($(FUZZ_SECONDS)s): $$(tail -n 1 $*.log)"; \
	  else echo "== $(notdir $*): FAILED, the end of $*.log:"; tail -n 40 $*.log; exit 1; fi
fuzz: $(FUZZ_RUNS)

# ---- integration tests -----------------------------------------------------------------------
# test_seed and test_disk double as the image boot test's seed and disk makers (write/create).
FIXTURES := all guest san-daemons image $(BUILD)/san/tests/vmm-driver/test_seed $(BUILD)/san/tests/vmm-driver/test_disk
fixtures: $(FIXTURES)
# Each test has its own stack, temp dir and network namespace, so tests run side by side
# (pytest-xdist). Two passes, both run whatever the first gives: the tests marked long (a disk
# image's boot, a minute or more of TCG each) on LONG_TEST_JOBS workers, as many as cores, then
# the others on TEST_JOBS: they mostly wait (for a daemon, a kit guest, a deadline they test),
# and on two workers left a third of both cores idle. loadgroup: a worker is given a few tests at
# a time as it runs out, and a module sharing one VM among its tests stays on one worker.
LONG_TEST_JOBS ?= 2
TEST_JOBS ?= 4
PYTEST_INTEGRATION = HUSK_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -rfEs -p no:cacheprovider --dist loadgroup \
  --durations=15 tests/integration
integration: fixtures
	@status=0; \
	  $(PYTEST_INTEGRATION) -n $(LONG_TEST_JOBS) -m long || status=1; \
	  $(PYTEST_INTEGRATION) -n $(TEST_JOBS) -m "not long" || status=1; \
	  exit $$status

# The disk image, the longest fixture (minutes, most of them debootstrap), starts first; the unit
# tests and the fuzzers run meanwhile. (Beside the integration tests, the fuzzers got a seventh to
# a fortieth of their runs in the same time: the tests' guests keep both cores busy.)
check: format-check
	$(MAKE) -j2 image unit fuzz fixtures
	$(MAKE) integration

# ---- format: one .clang-format at the root ----------------------------------------------------
C_SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find lib proto services cli tests -name '*.[ch]')
format:
	clang-format -i $(C_SOURCES)
format-check:
	@clang-format --dry-run --Werror $(C_SOURCES) || { echo "format-check: run make format"; exit 1; }

bench: all guest
	HUSK_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/bench/run.py

# The chaos test again and again with random seeds (make check runs it once, seed fixed).
SOAK_RUNS ?= 5
soak: all guest
	@set -e; for i in $$(seq $(SOAK_RUNS)); do seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	  echo "== soak run $$i of $(SOAK_RUNS), HUSK_CHAOS_SEED=$$seed"; \
	  HUSK_CHAOS_SEED=$$seed HUSK_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -s -rfEs -p no:cacheprovider \
	    tests/integration/test_chaos.py; done

demo:
	deploy/demo.sh

# ---- install ------------------------------------------------------------------------------------
# The web dashboard: plain files, served by apiserver at /ui/ (apiserver_ui.c); nothing to build.
UI_FILES := $(wildcard ui/*.html ui/*.css ui/*.js ui/*.svg)
install: all guest
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/husk/kit \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(SYSCONFDIR)/husk
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/husk
	install -m 0755 $(BUSMOD) $(DESTDIR)$(PREFIX)/lib/husk/
	install -m 0644 $(KIT)/vmlinux $(KIT)/initrd.gz $(DESTDIR)$(PREFIX)/share/husk/kit/
	for u in deploy/systemd/*.service deploy/systemd/*.target; do \
	  sed 's|@BINDIR@|$(PREFIX)/bin|g' $$u > $(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u); done
	test -e $(DESTDIR)$(SYSCONFDIR)/husk/config.yaml || \
	  sed 's|@KITDIR@|$(PREFIX)/share/husk/kit|g' deploy/config.example.yaml > $(DESTDIR)$(SYSCONFDIR)/husk/config.yaml
	install -d $(DESTDIR)$(PREFIX)/share/husk/ui
	install -m 0644 $(UI_FILES) $(DESTDIR)$(PREFIX)/share/husk/ui/

clean:
	rm -rf $(BUILD)/gen $(BUILD)/obj $(BUILD)/san $(BUILD)/pic $(BUILD)/lib $(BUILD)/bin $(BUILD)/fuzz $(BUILD)/fuzz-obj

.PHONY: all schema guest image san-daemons unit ui-unit fuzz $(FUZZ_RUNS) fixtures integration check format format-check bench soak demo install clean
.DELETE_ON_ERROR:
# Dependency files only: not build/image, whose root file system tree has directories named *.d.
-include $(shell find $(BUILD) -path $(BUILD)/image -prune -o -name '*.d' -type f -print 2>/dev/null)
