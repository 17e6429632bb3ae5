/*
 * edu_outbox.c: module entry point.
 *
 * Settings are defined whenever the library is loaded; shared memory, the
 * launcher and its relay workers only when it is loaded through
 * shared_preload_libraries. Nothing includes a header of this file: it sits
 * on top of the others.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "drop_database.h"
#include "launcher.h"
#include "settings.h"
#include "shared_state.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	outbox_define_settings();

	if (!process_shared_preload_libraries_in_progress)
		return;

	outbox_shmem_init_hooks();
	outbox_register_launcher();
	outbox_drop_database_init();
}
