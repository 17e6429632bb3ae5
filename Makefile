# edu_outbox: PGXS build. `make && make install` against PostgreSQL 15.
MODULE_big = edu_outbox
OBJS = \
	src/edu_outbox.o \
	src/settings.o \
	src/shared_state.o \
	src/publish.o \
	src/outbox_insert.o \
	src/capture_trigger.o \
	src/capture_ddl.o \
	src/batch.o \
	src/cleanup.o \
	src/relay_worker.o \
	src/launcher.o \
	src/drop_database.o \
	src/status.o \
	src/dead_letter.o \
	src/durability.o \
	src/coalesce.o \
	src/relay_control.o \
	src/drop_guard.o \
	src/exactly_once.o \
	relay/topic.o \
	relay/properties.o \
	relay/headers.o \
	relay/producer.o \
	relay/delivery.o \
	relay/errors.o \
	relay/decide.o \
	relay/limits.o \
	relay/transaction.o \
	relay/position.o

EXTENSION = edu_outbox
DATA = sql/edu_outbox--0.1.sql sql/edu_outbox--0.1--0.2.sql sql/edu_outbox--0.2--0.3.sql
PGFILEDESC = "edu_outbox - transactional outbox relayed to Kafka"

SHLIB_LINK = -lrdkafka -ljansson
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror=implicit-function-declaration

# pg_regress: sql/NAME.sql against expected/NAME.out, on the running test cluster.
REGRESS = publish capture operations roles
REGRESS_OPTS = --inputdir=. --load-extension=edu_outbox

# `make SANITIZE=1`: an AddressSanitizer + UndefinedBehaviorSanitizer build,
# run by test/sanitize.sh with the runtimes preloaded into the server. No
# LLVM bitcode: the JIT would inline uninstrumented copies.
ifdef SANITIZE
PG_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -g
SHLIB_LINK += -fsanitize=address,undefined
override with_llvm = no
endif

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild everything when a header changes.
$(OBJS): $(wildcard src/*.h relay/*.h)
