/*
 * vss/writer_doc.h - the two documents writers and requesters exchange: the
 * writer metadata document (vss_wmd_*: what a writer has, how to back it up)
 * and the backup components document (vss_bcd_*: one backup's choices).
 *
 * The semantics are those of Windows VSS (IVssCreateWriterMetadata,
 * IVssExamineWriterMetadata, IVssBackupComponents, IVssComponent); the
 * formats, every member and limit, are doc/writer-metadata.md and
 * doc/backup-components.md.  This layer does no I/O: documents go in and out
 * as bytes in memory.
 *
 * Errors: functions return 0 (or a count) on success and a negative errno:
 *   -EINVAL  a value or a document breaks the format (the message names the
 *            JSON path, e.g. "$.components[2].file_sets[0].path: ...")
 *   -EBADMSG the bytes are not JSON at all
 *   -EFBIG   the document is over the size limit
 *   -EEXIST  the builder was asked to add something already there
 *   -ENOENT  the builder was asked to add to a component that is not there
 *   -ERANGE  an accessor's index is out of range
 *   -ENOMEM  out of memory
 * and fill the optional struct vss_error with one readable line.
 *
 * Ownership: a handle owns everything in it.  Strings the accessors return
 * are borrowed and stay valid until the handle is freed; strings passed in
 * are copied.  Threads: a handle may be read from many threads at once, but
 * must not be changed while anything else uses it.
 *
 * Example (a writer describing itself):
 *
 *	struct vss_wmd *wmd;
 *	vss_wmd_new(&(struct vss_wmd_identity){
 *		.writer_name = "pg", .class_id = "…", .instance_id = "…",
 *		.usage = VSS_UT_USER_DATA, .source = VSS_ST_TRANSACTED_DB }, &wmd, &err);
 *	vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
 *		.type = VSS_CT_DATABASE, .name = "main", .selectable = true }, &err);
 *	vss_wmd_add_file_set(wmd, NULL, "main", &(struct vss_wmd_file_set){
 *		.kind = VSS_FSK_DATABASE, .path = "/var/lib/pg", .file_spec = "*",
 *		.recursive = true, .backup_type_mask = VSS_FSBT_DEFAULT }, &err);
 *	vss_wmd_serialize(wmd, &json, &len, &err);
 */
#ifndef VSS_WRITER_DOC_H
#define VSS_WRITER_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <vss/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* Limits, in bytes (strings: UTF-8 bytes, without the terminating NUL). */
#define VSS_DOC_SIZE_DEFAULT (1u << 20) /* parse refuses larger documents */
#define VSS_DOC_NAME_MAX     1024u      /* names, captions, logical paths */
#define VSS_DOC_PATH_MAX     4095u      /* absolute paths */
#define VSS_DOC_SPEC_MAX     255u       /* file specs and file names */
#define VSS_DOC_STAMP_MAX    4096u      /* backup stamps */
#define VSS_DOC_TEXT_MAX     65536u     /* options, messages, metadata, procedures */

/* The values of the enumerations start at 1: zero means "not set" and is
 * refused, so a forgotten member of a zero-initialised struct is caught. */

/* What kind of data a writer holds (VSS_USAGE_TYPE). */
enum vss_usage_type {
	VSS_UT_USER_DATA = 1,
	VSS_UT_BOOTABLE_SYSTEM_STATE,
	VSS_UT_SYSTEM_SERVICE,
	VSS_UT_OTHER,
};

/* How a writer's data is kept (VSS_SOURCE_TYPE). */
enum vss_source_type {
	VSS_ST_TRANSACTED_DB = 1,
	VSS_ST_NONTRANSACTED_DB,
	VSS_ST_OTHER,
};

/* How a requester restores the writer's files (VSS_RESTOREMETHOD_ENUM). */
enum vss_restore_method {
	VSS_RME_RESTORE_IF_NOT_THERE = 1,
	VSS_RME_RESTORE_IF_CAN_REPLACE,
	VSS_RME_STOP_RESTORE_START,         /* needs a service */
	VSS_RME_RESTORE_TO_ALTERNATE_LOCATION, /* needs alternate location mappings */
	VSS_RME_RESTORE_AT_REBOOT,
	VSS_RME_RESTORE_AT_REBOOT_IF_CANNOT_REPLACE,
	VSS_RME_CUSTOM,                     /* needs a user procedure */
	VSS_RME_RESTORE_STOP_START,         /* needs a service */
};

/* Whether the writer takes part in restores (VSS_WRITERRESTORE_ENUM). */
enum vss_writer_restore {
	VSS_WRE_NEVER = 1,
	VSS_WRE_IF_REPLACE_FAILS,
	VSS_WRE_ALWAYS,
};

enum vss_component_type {
	VSS_CT_DATABASE = 1,
	VSS_CT_FILE_GROUP,
};

/* How a file set was added: AddFilesToFileGroup (files, file groups only),
 * AddDatabaseFiles / AddDatabaseLogFiles (database, log: databases only). */
enum vss_file_set_kind {
	VSS_FSK_FILES = 1,
	VSS_FSK_DATABASE,
	VSS_FSK_LOG,
};

/* VSS_BACKUP_TYPE, without "undefined" and "other". */
enum vss_backup_type {
	VSS_BT_FULL = 1,
	VSS_BT_INCREMENTAL,
	VSS_BT_DIFFERENTIAL,
	VSS_BT_LOG,
	VSS_BT_COPY,
};

/* Backup schema: what a writer supports (VSS_BACKUP_SCHEMA, same values).
 * Full backups are always supported and have no bit. */
#define VSS_BS_DIFFERENTIAL                       0x0001u
#define VSS_BS_INCREMENTAL                        0x0002u
#define VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL 0x0004u /* needs incremental or differential */
#define VSS_BS_LOG                                0x0008u /* needs a "log" file set */
#define VSS_BS_COPY                               0x0010u
#define VSS_BS_TIMESTAMPED                        0x0020u /* needs incremental or differential */
#define VSS_BS_LAST_MODIFY                        0x0040u /* needs incremental or differential */
#define VSS_BS_LSN                                0x0080u
#define VSS_BS_WRITER_SUPPORTS_NEW_TARGET         0x0100u
#define VSS_BS_WRITER_SUPPORTS_RESTORE_WITH_MOVE  0x0200u
#define VSS_BS_INDEPENDENT_SYSTEM_STATE           0x0400u
#define VSS_BS_ROLLFORWARD_RESTORE                0x1000u
#define VSS_BS_RESTORE_RENAME                     0x2000u
#define VSS_BS_AUTHORITATIVE_RESTORE              0x4000u
#define VSS_BS_WRITER_SUPPORTS_PARALLEL_RESTORES  0x8000u
#define VSS_BS_ALL                                0xF7FFu

/* File-spec backup type mask of a file set (VSS_FILE_SPEC_BACKUP_TYPE, same
 * values): per backup type, must the whole file set be backed up (backup
 * required), and must it be read from a shadow (snapshot required). */
#define VSS_FSBT_FULL_BACKUP_REQUIRED           0x001u
#define VSS_FSBT_DIFFERENTIAL_BACKUP_REQUIRED   0x002u
#define VSS_FSBT_INCREMENTAL_BACKUP_REQUIRED    0x004u
#define VSS_FSBT_LOG_BACKUP_REQUIRED            0x008u
#define VSS_FSBT_FULL_SNAPSHOT_REQUIRED         0x100u
#define VSS_FSBT_DIFFERENTIAL_SNAPSHOT_REQUIRED 0x200u
#define VSS_FSBT_INCREMENTAL_SNAPSHOT_REQUIRED  0x400u
#define VSS_FSBT_LOG_SNAPSHOT_REQUIRED          0x800u
#define VSS_FSBT_ALL_BACKUP_REQUIRED            0x00Fu
#define VSS_FSBT_ALL_SNAPSHOT_REQUIRED          0xF00u
/* What Windows VSS assumes when a writer says nothing, and the JSON default. */
#define VSS_FSBT_DEFAULT (VSS_FSBT_ALL_BACKUP_REQUIRED | VSS_FSBT_ALL_SNAPSHOT_REQUIRED)

/* ------------------------------------------------------------------------
 * Writer metadata document
 * ------------------------------------------------------------------------ */

struct vss_wmd;

struct vss_wmd_identity {
	const char *writer_name;   /* non-empty */
	const char *class_id;      /* UUID text, not nil; the same for every instance */
	const char *instance_id;   /* UUID text, not nil; this instance */
	const char *instance_name; /* NULL or "" for none */
	enum vss_usage_type usage;
	enum vss_source_type source;
};

struct vss_wmd_restore_method {
	enum vss_restore_method method;
	const char *service;         /* NULL for none */
	const char *user_procedure;  /* NULL for none */
	enum vss_writer_restore writer_restore;
	bool reboot_required;
};

struct vss_wmd_component_info {
	enum vss_component_type type;
	const char *logical_path;  /* NULL or "" for top level; "a/b" otherwise */
	const char *name;          /* non-empty, no '/' */
	const char *caption;       /* NULL or "" for none */
	bool selectable;
	bool selectable_for_restore;
};

struct vss_wmd_file_set {
	enum vss_file_set_kind kind;
	const char *path;            /* absolute directory */
	const char *file_spec;       /* file name pattern ('*', '?'), no '/' */
	bool recursive;
	const char *alternate_path;  /* NULL for none; absolute */
	uint32_t backup_type_mask;   /* VSS_FSBT_* bits; VSS_FSBT_DEFAULT if unsure */
};

/* A component this one needs: in this writer (writer_class_id NULL or this
 * writer's) it must exist in the document; in another writer it cannot be
 * checked here. */
struct vss_wmd_dependency {
	const char *writer_class_id; /* NULL for this writer */
	const char *logical_path;    /* NULL or "" for top level */
	const char *name;
};

/* A set of files: excluded from every backup, or (with a destination)
 * where to restore them instead (alternate location mapping). */
struct vss_wmd_file_spec {
	const char *path;
	const char *file_spec;
	bool recursive;
	const char *destination;     /* mappings only, absolute; NULL in excludes */
};

/* Makes an empty document for one writer; restore method "restore if can
 * replace", writer restore "never", no schema bits, no components.
 * *out is owned by the caller (vss_wmd_free). */
int vss_wmd_new(const struct vss_wmd_identity *id, struct vss_wmd **out,
		struct vss_error *err);
void vss_wmd_free(struct vss_wmd *wmd);

/* Replaces the backup schema (VSS_BS_* bits).  Refuses unknown bits and the
 * contradictions that need no other member (see VSS_BS_*). */
int vss_wmd_set_backup_schema(struct vss_wmd *wmd, uint32_t schema,
			      struct vss_error *err);
int vss_wmd_set_restore_method(struct vss_wmd *wmd,
			       const struct vss_wmd_restore_method *rm,
			       struct vss_error *err);
/* -EEXIST if a component with the same logical path and name exists. */
int vss_wmd_add_component(struct vss_wmd *wmd,
			  const struct vss_wmd_component_info *ci,
			  struct vss_error *err);
/* Adds a file set to the component (logical_path, name); -ENOENT if there
 * is none.  Database and log file sets belong to database components, files
 * to file groups. */
int vss_wmd_add_file_set(struct vss_wmd *wmd, const char *logical_path,
			 const char *name, const struct vss_wmd_file_set *fs,
			 struct vss_error *err);
int vss_wmd_add_dependency(struct vss_wmd *wmd, const char *logical_path,
			   const char *name, const struct vss_wmd_dependency *dep,
			   struct vss_error *err);
/* Excludes a file set from every backup (destination must be NULL). */
int vss_wmd_add_exclude_files(struct vss_wmd *wmd,
			      const struct vss_wmd_file_spec *spec,
			      struct vss_error *err);
int vss_wmd_add_alternate_location_mapping(struct vss_wmd *wmd,
					   const struct vss_wmd_file_spec *map,
					   struct vss_error *err);

/* The checks that span members: dependencies resolve and are not circular,
 * the "log" schema has a log file set, the restore method has what it needs.
 * Serialize and parse run it; a builder may run it earlier. */
int vss_wmd_validate(const struct vss_wmd *wmd, struct vss_error *err);

/* Validates, then writes the document as JSON.  *json is NUL-terminated,
 * *len (if not NULL) excludes the NUL; the caller frees *json with free(). */
int vss_wmd_serialize(const struct vss_wmd *wmd, char **json, size_t *len,
		      struct vss_error *err);
/* Parses and validates @len bytes (need not be NUL-terminated).  max_size 0
 * means VSS_DOC_SIZE_DEFAULT.  *out is owned by the caller. */
int vss_wmd_parse(const char *buf, size_t len, size_t max_size,
		  struct vss_wmd **out, struct vss_error *err);

/* Examining a document (IVssExamineWriterMetadata). */
void vss_wmd_identity(const struct vss_wmd *wmd, struct vss_wmd_identity *out);
uint32_t vss_wmd_backup_schema(const struct vss_wmd *wmd);
void vss_wmd_restore_method(const struct vss_wmd *wmd,
			    struct vss_wmd_restore_method *out);
size_t vss_wmd_component_count(const struct vss_wmd *wmd);
int vss_wmd_component(const struct vss_wmd *wmd, size_t comp,
		      struct vss_wmd_component_info *out);
/* The index of component (logical_path, name), or -ENOENT. */
int vss_wmd_find_component(const struct vss_wmd *wmd, const char *logical_path,
			   const char *name);
size_t vss_wmd_file_set_count(const struct vss_wmd *wmd, size_t comp);
int vss_wmd_file_set(const struct vss_wmd *wmd, size_t comp, size_t i,
		     struct vss_wmd_file_set *out);
size_t vss_wmd_dependency_count(const struct vss_wmd *wmd, size_t comp);
int vss_wmd_dependency(const struct vss_wmd *wmd, size_t comp, size_t i,
		       struct vss_wmd_dependency *out);
size_t vss_wmd_exclude_count(const struct vss_wmd *wmd);
int vss_wmd_exclude(const struct vss_wmd *wmd, size_t i,
		    struct vss_wmd_file_spec *out);
size_t vss_wmd_alternate_location_count(const struct vss_wmd *wmd);
int vss_wmd_alternate_location(const struct vss_wmd *wmd, size_t i,
			       struct vss_wmd_file_spec *out);

/*
 * What a requester must do with one file set in a backup of a given type.
 *
 * First the type is reduced to what the writer supports: incremental,
 * differential, log and copy backups of a writer whose schema lacks
 * VSS_BS_INCREMENTAL, _DIFFERENTIAL, _LOG or _COPY are full backups of that
 * writer.  Then, with that effective type T (copy reads the "full" bits):
 *   - a log backup takes only "log" file sets; others are VSS_SEL_NONE;
 *   - if the mask has T's backup-required bit, VSS_SEL_ALL: every file of
 *     the set, whatever changed;
 *   - otherwise a full or copy backup need not take the set (VSS_SEL_NONE:
 *     the writer does not need it restored), and an incremental,
 *     differential or log backup takes what changed since the base backup
 *     (VSS_SEL_CHANGED: the writer's differenced and partial files in the
 *     backup components document, else the requester's own change tracking);
 *   - a selected set must be read from a shadow if the mask has T's
 *     snapshot-required bit, and may be read from the live volume otherwise.
 */
enum vss_selection {
	VSS_SEL_NONE = 0,
	VSS_SEL_CHANGED,
	VSS_SEL_ALL,
};

struct vss_wmd_plan {
	enum vss_backup_type effective_type;
	enum vss_selection selection;
	bool snapshot_required;
};

/* The rules above, on bare values (-EINVAL for an unknown type or kind, or
 * mask bits outside VSS_FSBT_ALL_*). */
int vss_wmd_plan_values(uint32_t schema, enum vss_file_set_kind kind,
			uint32_t mask, enum vss_backup_type type,
			struct vss_wmd_plan *out, struct vss_error *err);
/* The rules above for file set @i of component @comp of @wmd. */
int vss_wmd_plan(const struct vss_wmd *wmd, enum vss_backup_type type,
		 size_t comp, size_t i, struct vss_wmd_plan *out,
		 struct vss_error *err);

/* ------------------------------------------------------------------------
 * Backup components document
 * ------------------------------------------------------------------------ */

struct vss_bcd;
/* One selected component (IVssComponent); owned by its document, the
 * pointer stays valid until the document is freed. */
struct vss_bcd_component;

struct vss_bcd_component_info {
	const char *class_id;      /* of the writer, UUID text */
	const char *instance_id;   /* of the writer instance, UUID text */
	const char *logical_path;  /* NULL or "" for top level */
	const char *name;
};

/* Bytes [offset, offset + length) of a partial file; length > 0. */
struct vss_bcd_range {
	int64_t offset;
	int64_t length;
};

struct vss_bcd_partial_file {
	const char *path;      /* absolute directory */
	const char *filename;  /* no '/' */
	const struct vss_bcd_range *ranges; /* at least one, none overlapping */
	size_t range_count;
	const char *metadata;  /* NULL for none */
};

/* Files changed since a time (AddDifferencedFilesByLastModifyTime).  A
 * last_modify of { 0, 0 } (the epoch; null in the document) is no time:
 * the writer names the files, the requester finds which of them changed by
 * its own record of the previous backup. */
struct vss_bcd_differenced_files {
	const char *path;      /* absolute directory */
	const char *file_spec;
	bool recursive;
	struct timespec last_modify; /* UTC, 1970-01-01 to 9999-12-31; { 0, 0 }: none */
};

/* Makes an empty document (IVssBackupComponents::SetBackupState). */
int vss_bcd_new(enum vss_backup_type type, bool partial_file_support,
		struct vss_bcd **out, struct vss_error *err);
void vss_bcd_free(struct vss_bcd *bcd);

enum vss_backup_type vss_bcd_backup_type(const struct vss_bcd *bcd);
bool vss_bcd_partial_file_support(const struct vss_bcd *bcd);

/* Selects a component for the backup; -EEXIST if already selected.  *out
 * (may be NULL) receives the component. */
int vss_bcd_add_component(struct vss_bcd *bcd,
			  const struct vss_bcd_component_info *ci,
			  struct vss_bcd_component **out, struct vss_error *err);
/* The selected component, or NULL. */
struct vss_bcd_component *vss_bcd_find_component(const struct vss_bcd *bcd,
						 const struct vss_bcd_component_info *ci);
/* All selected components, grouped by writer in the order first added. */
size_t vss_bcd_component_count(const struct vss_bcd *bcd);
struct vss_bcd_component *vss_bcd_component_at(const struct vss_bcd *bcd,
					       size_t i);
void vss_bcd_component_info(const struct vss_bcd_component *c,
			    struct vss_bcd_component_info *out);

/* What writers and requesters set during a backup.  NULL clears a string;
 * a string that is set is non-empty and within its limit. */
int vss_bcd_set_backup_stamp(struct vss_bcd_component *c, const char *stamp,
			     struct vss_error *err);
int vss_bcd_set_previous_backup_stamp(struct vss_bcd_component *c,
				      const char *stamp, struct vss_error *err);
void vss_bcd_set_backup_succeeded(struct vss_bcd_component *c, bool succeeded);
int vss_bcd_set_backup_options(struct vss_bcd_component *c, const char *options,
			       struct vss_error *err);
/* What the writer needs at restore, kept with the backup and handed back
 * at PreRestore and PostRestore (SetBackupMetadata): set by the writer at
 * prepare_backup or post_snapshot; its format is the writer's own. */
int vss_bcd_set_backup_metadata(struct vss_bcd_component *c, const char *metadata,
				struct vss_error *err);
int vss_bcd_set_pre_restore_failure_msg(struct vss_bcd_component *c,
					const char *msg, struct vss_error *err);
int vss_bcd_set_post_restore_failure_msg(struct vss_bcd_component *c,
					 const char *msg, struct vss_error *err);
/* Refused unless the document has partial file support. */
int vss_bcd_add_partial_file(struct vss_bcd_component *c,
			     const struct vss_bcd_partial_file *pf,
			     struct vss_error *err);
int vss_bcd_add_differenced_files(struct vss_bcd_component *c,
				  const struct vss_bcd_differenced_files *df,
				  struct vss_error *err);

/* Getters: NULL for a string that is not set. */
const char *vss_bcd_backup_stamp(const struct vss_bcd_component *c);
const char *vss_bcd_previous_backup_stamp(const struct vss_bcd_component *c);
bool vss_bcd_backup_succeeded(const struct vss_bcd_component *c);
const char *vss_bcd_backup_options(const struct vss_bcd_component *c);
const char *vss_bcd_backup_metadata(const struct vss_bcd_component *c);
const char *vss_bcd_pre_restore_failure_msg(const struct vss_bcd_component *c);
const char *vss_bcd_post_restore_failure_msg(const struct vss_bcd_component *c);
size_t vss_bcd_partial_file_count(const struct vss_bcd_component *c);
int vss_bcd_partial_file(const struct vss_bcd_component *c, size_t i,
			 struct vss_bcd_partial_file *out);
size_t vss_bcd_differenced_files_count(const struct vss_bcd_component *c);
int vss_bcd_differenced_files(const struct vss_bcd_component *c, size_t i,
			      struct vss_bcd_differenced_files *out);

int vss_bcd_validate(const struct vss_bcd *bcd, struct vss_error *err);
/* As vss_wmd_serialize and vss_wmd_parse. */
int vss_bcd_serialize(const struct vss_bcd *bcd, char **json, size_t *len,
		      struct vss_error *err);
int vss_bcd_parse(const char *buf, size_t len, size_t max_size,
		  struct vss_bcd **out, struct vss_error *err);

/* Checks the components @bcd selected from @wmd's writer instance against
 * @wmd: each exists, backup stamps only if the writer is timestamped,
 * differenced files only if it declares last-modify.  Components of other
 * writers are ignored. */
int vss_bcd_check_writer(const struct vss_bcd *bcd, const struct vss_wmd *wmd,
			 struct vss_error *err);

/* RFC 3339 UTC times as the documents write them ("2024-05-01T12:00:00Z",
 * optional fraction of up to 9 digits).  Format needs 31 bytes. */
#define VSS_BCD_TIME_BUF 31
int vss_bcd_time_parse(const char *text, struct timespec *out);
int vss_bcd_time_format(const struct timespec *t, char buf[VSS_BCD_TIME_BUF]);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
