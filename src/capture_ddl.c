/*
 * capture_ddl.c: keeps capture triggers in step with ALTER TABLE, so that a
 * schema change never leaves a trigger that breaks every later write.
 *
 * outbox_capture_ddl() runs as an event trigger at the end of each ALTER
 * TABLE:
 *  - RENAME COLUMN: capture triggers of the table, and of its partitions and
 *    children renamed along, that name the column in key=, exclude= or
 *    include= are rewritten to the new name. An excluded column thus stays
 *    excluded under its new name.
 *  - any ALTER TABLE: every capture trigger of the table and of its
 *    partitions and children must still accept the table; if one does not
 *    (for example it names a dropped column), the ALTER TABLE is refused
 *    with an error that names the trigger.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "capture_trigger.h"

PG_FUNCTION_INFO_V1(outbox_capture_ddl);

/* Whether fnoid is this library's outbox_capture(), in whatever schema. */
static bool
is_capture_function(Oid fnoid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fnoid));
	bool		result = false;

	if (!HeapTupleIsValid(tup))
		return false;
	if (((Form_pg_proc) GETSTRUCT(tup))->prolang == ClanguageId)
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
		Datum		bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);

		result = !isnull &&
			strcmp(TextDatumGetCString(src), "outbox_capture") == 0 &&
			strstr(TextDatumGetCString(bin), "edu_outbox") != NULL;
	}
	ReleaseSysCache(tup);
	return result;
}

/* Replaces oldname by newname in the column lists of trigger arguments. */
static bool
rename_in_args(int nargs, char **args, const char *oldname, const char *newname)
{
	bool		changed = false;

	for (int i = 1; i < nargs; i++)
	{
		char	   *eq = strchr(args[i], '=');
		char	   *option;
		List	   *names;
		ListCell   *lc;
		bool		hit = false;

		if (eq == NULL)
			continue;
		option = pnstrdup(args[i], eq - args[i]);
		if (strcmp(option, "key") != 0 && strcmp(option, "exclude") != 0 &&
			strcmp(option, "include") != 0)
			continue;
		names = capture_split_columns(option, eq + 1);
		foreach(lc, names)
		{
			if (strcmp(lfirst(lc), oldname) == 0)
			{
				lfirst(lc) = pstrdup(newname);
				hit = true;
			}
		}
		if (hit)
		{
			args[i] = psprintf("%s=%s", option, capture_join_columns(names));
			changed = true;
		}
	}
	return changed;
}

/* Rewrites the capture triggers of relid that name column oldname. */
static void
rename_in_triggers(Oid relid, const char *oldname, const char *newname)
{
	Relation	tgrel = table_open(TriggerRelationId, RowExclusiveLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		any = false;

	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
		int			nargs = tg->tgnargs;
		char	  **args;
		bool		isnull;
		bytea	   *raw;
		char	   *p;
		StringInfoData buf;
		Datum		values[Natts_pg_trigger] = {0};
		bool		nulls[Natts_pg_trigger] = {0};
		bool		replace[Natts_pg_trigger] = {0};
		HeapTuple	newtup;

		if (nargs == 0 || !is_capture_function(tg->tgfoid))
			continue;
		raw = DatumGetByteaPP(heap_getattr(tup, Anum_pg_trigger_tgargs,
										   RelationGetDescr(tgrel), &isnull));
		if (isnull)
			continue;
		args = palloc(sizeof(char *) * nargs);
		p = VARDATA_ANY(raw);
		for (int i = 0; i < nargs; i++)
		{
			args[i] = pstrdup(p);
			p += strlen(p) + 1;
		}
		if (!rename_in_args(nargs, args, oldname, newname))
			continue;

		/* tgargs is each argument followed by a NUL byte */
		initStringInfo(&buf);
		for (int i = 0; i < nargs; i++)
			appendBinaryStringInfo(&buf, args[i], strlen(args[i]) + 1);
		values[Anum_pg_trigger_tgargs - 1] =
			PointerGetDatum(cstring_to_text_with_len(buf.data, buf.len));
		replace[Anum_pg_trigger_tgargs - 1] = true;
		newtup = heap_modify_tuple(tup, RelationGetDescr(tgrel), values, nulls, replace);
		CatalogTupleUpdate(tgrel, &newtup->t_self, newtup);
		any = true;
	}
	systable_endscan(scan);
	table_close(tgrel, RowExclusiveLock);
	if (any)
		CacheInvalidateRelcacheByRelid(relid);
}

/* Refuses the command if a capture trigger of relid no longer fits it. */
static void
check_triggers(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TriggerDesc *td = rel->trigdesc ? CopyTriggerDesc(rel->trigdesc) : NULL;

	for (int i = 0; td != NULL && i < td->numtriggers; i++)
	{
		Trigger    *trigger = &td->triggers[i];
		MemoryContext cxt = CurrentMemoryContext;

		if (!is_capture_function(trigger->tgfoid))
			continue;
		PG_TRY();
		{
			capture_check_trigger(rel, trigger);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("ALTER TABLE would break capture trigger \"%s\" on table \"%s\"",
							trigger->tgname, RelationGetRelationName(rel)),
					 errdetail("With this change the trigger would fail every write to the table: %s",
							   edata->message),
					 errhint("Capture the table again with options that fit the new definition (outbox_capture_table()), or remove the capture (outbox_uncapture_table()), then repeat the ALTER TABLE.")));
		}
		PG_END_TRY();
	}
	relation_close(rel, AccessShareLock);
}

Datum
outbox_capture_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *data;
	RangeVar   *rv = NULL;
	RenameStmt *rename = NULL;
	Oid			relid;
	List	   *rels;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox_capture_ddl() must be called as event trigger")));
	data = (EventTriggerData *) fcinfo->context;
	if (IsA(data->parsetree, AlterTableStmt))
		rv = ((AlterTableStmt *) data->parsetree)->relation;
	else if (IsA(data->parsetree, RenameStmt) &&
			 ((RenameStmt *) data->parsetree)->renameType == OBJECT_COLUMN)
	{
		rename = (RenameStmt *) data->parsetree;
		rv = rename->relation;
	}
	if (rv == NULL)
		PG_RETURN_VOID();
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (!OidIsValid(relid))
		PG_RETURN_VOID();

	/* the table first, then every partition and child the command reached */
	rels = find_all_inheritors(relid, AccessShareLock, NULL);
	if (rename != NULL)
	{
		foreach(lc, rels)
		{
			Oid			r = lfirst_oid(lc);

			/* a child left alone (ALTER TABLE ONLY) keeps the old name */
			if (get_attnum(r, rename->newname) != InvalidAttrNumber &&
				get_attnum(r, rename->subname) == InvalidAttrNumber)
				rename_in_triggers(r, rename->subname, rename->newname);
		}
		CommandCounterIncrement();
	}
	foreach(lc, rels)
		check_triggers(lfirst_oid(lc));
	PG_RETURN_VOID();
}
