/*
 * compat.h - the few places where PostgreSQL's internal API differs between
 * the supported major versions (15 to 18). Each helper names the behaviour
 * the callers want, so they need no version checks of their own.
 */
#ifndef EDU_OUTBOX_COMPAT_H
#define EDU_OUTBOX_COMPAT_H

#include "catalog/pg_database.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/relcache.h"

/*
 * The table's primary key index, or InvalidOid. 18 added the deferrable_ok
 * argument; false keeps what earlier versions return (a deferrable primary
 * key does not count).
 */
#if PG_VERSION_NUM >= 180000
#define compat_primary_key_index(rel) RelationGetPrimaryKeyIndex((rel), false)
#else
#define compat_primary_key_index(rel) RelationGetPrimaryKeyIndex(rel)
#endif

/*
 * Whether roleid owns (or is a superuser acting on) the database. 16 folded
 * the per-catalog owner checks into object_ownercheck().
 */
#if PG_VERSION_NUM >= 160000
#define compat_database_ownercheck(dboid, roleid) \
	object_ownercheck(DatabaseRelationId, (dboid), (roleid))
#else
#define compat_database_ownercheck(dboid, roleid) \
	pg_database_ownercheck((dboid), (roleid))
#endif

/*
 * Memory for a GUC check hook's *extra: PostgreSQL frees it with free() up to
 * 15 and with guc_free() (pfree of its own context) from 16 on.
 */
#if PG_VERSION_NUM >= 160000
#define compat_guc_extra_malloc(size) guc_malloc(LOG, (size))
#else
#define compat_guc_extra_malloc(size) malloc(size)
#endif

#endif							/* EDU_OUTBOX_COMPAT_H */
