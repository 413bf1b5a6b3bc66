/*
 * vss/writer_state.h - the state vssd keeps for each writer, the kinds of
 * failure a writer reports (VSS_WRITER_STATE, VSS_E_WRITERERROR_*) and what
 * a restore did with a component's files (VSS_FILE_RESTORE_STATUS): what
 * a writer says (vss/writer.h) and what a requester reads
 * (vss/requester.h).  The numbers are the protocol's ("state" in
 * writers.list and in the backup replies; doc/writers.md), and never change.
 */
#ifndef VSS_WRITER_STATE_H
#define VSS_WRITER_STATE_H

#ifdef __cplusplus
extern "C" {
#endif

enum vss_writer_state {
	VSS_WS_UNKNOWN = 0,
	VSS_WS_STABLE = 1,
	VSS_WS_WAITING_FOR_FREEZE = 2,
	VSS_WS_WAITING_FOR_THAW = 3,
	VSS_WS_WAITING_FOR_POST_SNAPSHOT = 4,
	VSS_WS_WAITING_FOR_BACKUP_COMPLETE = 5,
	VSS_WS_FAILED_AT_IDENTIFY = 6,
	VSS_WS_FAILED_AT_PREPARE_BACKUP = 7,
	VSS_WS_FAILED_AT_PREPARE_SNAPSHOT = 8,
	VSS_WS_FAILED_AT_FREEZE = 9,
	VSS_WS_FAILED_AT_THAW = 10,
	VSS_WS_FAILED_AT_POST_SNAPSHOT = 11,
	VSS_WS_FAILED_AT_BACKUP_COMPLETE = 12,
	VSS_WS_FAILED_AT_PRE_RESTORE = 13,
	VSS_WS_FAILED_AT_POST_RESTORE = 14,
	VSS_WS_FAILED_AT_BACKUP_SHUTDOWN = 15,
};
#define VSS_WS_MAX VSS_WS_FAILED_AT_BACKUP_SHUTDOWN

/* What kind of failure a writer reported (VSS_E_WRITERERROR_*). */
enum vss_writer_failure {
	VSS_WF_NONE = 0,               /* none reported (a requester's view) */
	VSS_WF_RETRYABLE = 1,
	VSS_WF_NONRETRYABLE,
	VSS_WF_TIMEOUT,
	VSS_WF_INCONSISTENT_SNAPSHOT,
	VSS_WF_OUT_OF_RESOURCES,
	/* The restore side: the writer could not bring its data back into
	 * use after a restore (VSS_E_WRITERERROR_RECOVERY_FAILED), or only
	 * part of what it was asked (VSS_E_WRITERERROR_PARTIAL_FAILURE). */
	VSS_WF_RECOVERY_FAILED,
	VSS_WF_PARTIAL_FAILURE,
};
#define VSS_WF_MAX VSS_WF_PARTIAL_FAILURE

/*
 * What a restore did with the files of one component (VSS_FILE_RESTORE_STATUS,
 * same numbers, and one of ours): the requester tells each writer at
 * post_restore (vss/writer.h) and its caller (vss/requester.h).
 */
enum vss_file_restore_status {
	VSS_RS_UNDEFINED = 0,          /* not decided yet (pre_restore) */
	VSS_RS_NONE = 1,               /* none of its files was written */
	VSS_RS_ALL = 2,                /* every file it has in the backup is back */
	VSS_RS_FAILED = 3,             /* some were written, then the restore failed */
	VSS_RS_STAGED = 4,             /* written beside their places, put in place at the
					* next boot (restore at reboot) */
};
#define VSS_RS_MAX VSS_RS_STAGED

#pragma GCC visibility push(default)

/* The names the protocol and `vss list writers` use ("stable",
 * "failed_at_freeze"; "retryable", "timeout"; "" for VSS_WF_NONE), or
 * NULL for a value outside the enumeration. */
const char *vss_writer_state_name(enum vss_writer_state state);
const char *vss_writer_failure_name(enum vss_writer_failure kind);
/* The failure a name stands for ("" and NULL: VSS_WF_NONE), or -EINVAL. */
int vss_writer_failure_from_name(const char *name);
/* "undefined", "none", "all", "failed", "staged"; NULL outside the
 * enumeration.  And back: the status, or -EINVAL. */
const char *vss_file_restore_status_name(enum vss_file_restore_status status);
int vss_file_restore_status_from_name(const char *name);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
