/*
 * outbox_insert.c: writes one outbox row without the executor.
 *
 * outbox_publish() and the capture trigger run once per event inside the
 * application's transaction, so the cost of the write is the cost of the
 * application's commit. An INSERT through SPI starts a whole executor for
 * one row: plan cache check, executor start and end, the partition
 * constraint and the restore trigger's WHEN clause rebuilt from their node
 * strings on every call. The outbox's layout is the extension's own, so the
 * row goes straight to heap_insert and index_insert instead, and the lookups
 * by name are done once per backend.
 *
 * The direct path is taken only while the partition looks exactly as the
 * install scripts made it (heap, the seven columns, plain btree-like indexes
 * on columns, no CHECK constraint, rule, row security or other trigger). For
 * anything else, and in a read-only transaction, the caller falls back to
 * the executor, which keeps every check and error of a real INSERT.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/heap.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "outbox_insert.h"
#include "outbox_table.h"

/* The outbox's columns, in table order, as sql/edu_outbox--0.1.sql makes them. */
#define OUTBOX_NATTS 7
static const struct
{
	const char *name;
	Oid			type;
}			outbox_columns[OUTBOX_NATTS] = {
	{"id", INT8OID}, {"xid", XID8OID}, {"topic", TEXTOID}, {"key", TEXTOID},
	{"payload", JSONBOID}, {"headers", JSONBOID}, {"created_at", TIMESTAMPTZOID}
};

/* The one trigger the outbox has (0.2): it fires only for rows with another xid. */
#define RESTAMP_TRIGGER "restamp_restored_row"

/*
 * Per-backend lookups, dropped by the relcache callback when any of these
 * relations changes (DROP EXTENSION, ALTER ... OWNER) or the whole relcache
 * is reset. generation tells a load that an invalidation ran during it.
 */
static struct
{
	bool		valid;
	Oid			parent;
	Oid			seq;
	Oid			owner;
	Oid			parts[OUTBOX_PARTITIONS];
}			rels;
static uint64 rels_generation;
static bool callback_registered = false;

static void
rels_invalidate(Datum arg, Oid relid)
{
	bool		ours = !OidIsValid(relid) || relid == rels.parent || relid == rels.seq;

	for (int i = 0; i < OUTBOX_PARTITIONS && !ours; i++)
		ours = relid == rels.parts[i];
	if (ours)
	{
		rels.valid = false;
		rels_generation++;
	}
}

static void
rels_load(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(rels_invalidate, (Datum) 0);
		callback_registered = true;
	}
	for (;;)
	{
		uint64		generation = rels_generation;
		Oid			nsp = get_namespace_oid(OUTBOX_SCHEMA, false);
		HeapTuple	tup;
		bool		missing;

		rels.parent = get_relname_relid("outbox", nsp);
		rels.seq = get_relname_relid("outbox_id_seq", nsp);
		missing = !OidIsValid(rels.parent) || !OidIsValid(rels.seq);
		for (int i = 0; i < OUTBOX_PARTITIONS; i++)
		{
			char		name[NAMEDATALEN];

			snprintf(name, sizeof(name), "outbox_p%d", i);
			rels.parts[i] = get_relname_relid(name, nsp);
			missing |= !OidIsValid(rels.parts[i]);
		}
		if (missing)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the edu_outbox outbox table is missing"),
					 errhint("Recreate the extension with DROP EXTENSION edu_outbox; CREATE EXTENSION edu_outbox;")));
		tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rels.parent));
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for relation %u", rels.parent);
		rels.owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
		if (generation == rels_generation)
			break;
	}
	rels.valid = true;
}

OutboxRels
outbox_rels(void)
{
	OutboxRels	r;

	if (!rels.valid)
		rels_load();
	r.seq = rels.seq;
	r.owner = rels.owner;
	return r;
}

/* Whether rel is still the plain partition the direct path knows how to write. */
static bool
partition_is_plain(Relation rel, Oid owner)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;

	if (rel->rd_rel->relam != HEAP_TABLE_AM_OID ||
		rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relrowsecurity || rel->rd_rules != NULL ||
		desc->natts != OUTBOX_NATTS)
		return false;
	if (desc->constr && (desc->constr->num_check > 0 || desc->constr->has_generated_stored))
		return false;
	for (int i = 0; i < OUTBOX_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != outbox_columns[i].type ||
			strcmp(NameStr(att->attname), outbox_columns[i].name) != 0)
			return false;
	}
	if (trig && (trig->numtriggers != 1 ||
				 strcmp(trig->triggers[0].tgname, RESTAMP_TRIGGER) != 0 ||
				 trig->triggers[0].tgqual == NULL))
		return false;
	return pg_class_aclcheck(RelationGetRelid(rel), owner, ACL_INSERT) == ACLCHECK_OK;
}

/*
 * Inserts the row into the partition of id, with xid and created_at as the
 * columns' defaults would set them (the restore trigger's WHEN is false for
 * such a row). Runs as the outbox's owner (the caller switched). Returns
 * false, having written nothing, where the executor must do it.
 */
bool
outbox_insert_direct(int64 id, Datum topic, Datum key, bool key_isnull,
					 Datum payload, Datum headers, bool headers_isnull,
					 TimestampTz *created_at)
{
	Oid			relid;
	Relation	rel;
	Datum		values[OUTBOX_NATTS];
	bool		nulls[OUTBOX_NATTS] = {false, false, false, false, false, false, false};
	HeapTuple	tup;
	List	   *indexes;
	ListCell   *lc;
	Relation   *index_rels;
	IndexInfo **index_infos;
	int			nindexes = 0;
	bool		plain = true;

	if (XactReadOnly || IsInParallelMode())
		return false;
	for (;;)
	{
		if (!rels.valid)
			rels_load();
		relid = rels.parts[OUTBOX_PARTITION_OF(id)];
		/* the lock runs pending invalidations: a dropped outbox shows here */
		LockRelationOid(relid, RowExclusiveLock);
		if (rels.valid)
			break;
	}
	rel = table_open(relid, NoLock);
	if (!partition_is_plain(rel, rels.owner))
	{
		table_close(rel, NoLock);
		return false;
	}

	indexes = RelationGetIndexList(rel);
	index_rels = palloc(sizeof(Relation) * Max(list_length(indexes), 1));
	index_infos = palloc(sizeof(IndexInfo *) * Max(list_length(indexes), 1));
	foreach(lc, indexes)
	{
		Relation	irel = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *info = BuildIndexInfo(irel);

		index_rels[nindexes] = irel;
		index_infos[nindexes++] = info;
		if (info->ii_Expressions != NIL || info->ii_Predicate != NIL ||
			info->ii_Unique || info->ii_ExclusionOps != NULL)
			plain = false;
	}
	if (!plain)
	{
		for (int i = 0; i < nindexes; i++)
			index_close(index_rels[i], NoLock);
		table_close(rel, NoLock);
		return false;
	}

	*created_at = GetCurrentTimestamp();	/* clock_timestamp(), the column default */
	values[0] = Int64GetDatum(id);
	values[1] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	values[2] = topic;
	values[3] = key;
	nulls[3] = key_isnull;
	values[4] = payload;
	values[5] = headers;
	nulls[5] = headers_isnull;
	values[6] = TimestampTzGetDatum(*created_at);

	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	heap_insert(rel, tup, GetCurrentCommandId(true), 0, NULL);

	for (int i = 0; i < nindexes; i++)
	{
		IndexInfo  *info = index_infos[i];
		Datum		ivalues[INDEX_MAX_KEYS];
		bool		inulls[INDEX_MAX_KEYS];

		if (info->ii_ReadyForInserts)
		{
			for (int k = 0; k < info->ii_NumIndexAttrs; k++)
			{
				AttrNumber	attnum = info->ii_IndexAttrNumbers[k];

				ivalues[k] = values[attnum - 1];
				inulls[k] = nulls[attnum - 1];
			}
			index_insert(index_rels[i], ivalues, inulls, &tup->t_self, rel,
						 UNIQUE_CHECK_NO, false, info);
		}
		index_close(index_rels[i], NoLock);
	}
	table_close(rel, NoLock);
	heap_freetuple(tup);
	return true;
}
