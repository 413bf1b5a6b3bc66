/*
 * writer/writer_state.c - the names of writer states, failure kinds and
 * file restore statuses (vss/writer_state.h), as the protocol carries them.
 */
#include <errno.h>
#include <string.h>

#include <vss/writer_state.h>

static const char *const state_names[] = {
	"unknown", "stable", "waiting_for_freeze", "waiting_for_thaw",
	"waiting_for_post_snapshot", "waiting_for_backup_complete",
	"failed_at_identify", "failed_at_prepare_backup", "failed_at_prepare_snapshot",
	"failed_at_freeze", "failed_at_thaw", "failed_at_post_snapshot",
	"failed_at_backup_complete", "failed_at_pre_restore", "failed_at_post_restore",
	"failed_at_backup_shutdown",
};

static const char *const failure_names[] = {
	[VSS_WF_NONE] = "",
	[VSS_WF_RETRYABLE] = "retryable",
	[VSS_WF_NONRETRYABLE] = "nonretryable",
	[VSS_WF_TIMEOUT] = "timeout",
	[VSS_WF_INCONSISTENT_SNAPSHOT] = "inconsistent_snapshot",
	[VSS_WF_OUT_OF_RESOURCES] = "out_of_resources",
	[VSS_WF_RECOVERY_FAILED] = "recovery_failed",
	[VSS_WF_PARTIAL_FAILURE] = "partial_failure",
};

static const char *const restore_status_names[] = {
	[VSS_RS_UNDEFINED] = "undefined",
	[VSS_RS_NONE] = "none",
	[VSS_RS_ALL] = "all",
	[VSS_RS_FAILED] = "failed",
	[VSS_RS_STAGED] = "staged",
};

_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == VSS_WS_MAX + 1,
	       "a name for every writer state");
_Static_assert(sizeof(failure_names) / sizeof(failure_names[0]) == VSS_WF_MAX + 1,
	       "a name for every failure kind");
_Static_assert(sizeof(restore_status_names) / sizeof(restore_status_names[0]) == VSS_RS_MAX + 1,
	       "a name for every file restore status");

const char *vss_writer_state_name(enum vss_writer_state state)
{
	return (unsigned int)state <= VSS_WS_MAX ? state_names[state] : NULL;
}

const char *vss_writer_failure_name(enum vss_writer_failure kind)
{
	return (unsigned int)kind <= VSS_WF_MAX ? failure_names[kind] : NULL;
}

int vss_writer_failure_from_name(const char *name)
{
	if (!name)
		return VSS_WF_NONE;
	for (int k = VSS_WF_NONE; k <= VSS_WF_MAX; k++)
		if (strcmp(name, failure_names[k]) == 0)
			return k;
	return -EINVAL;
}

const char *vss_file_restore_status_name(enum vss_file_restore_status status)
{
	return (unsigned int)status <= VSS_RS_MAX ? restore_status_names[status] : NULL;
}

int vss_file_restore_status_from_name(const char *name)
{
	for (int k = VSS_RS_UNDEFINED; name && k <= VSS_RS_MAX; k++)
		if (strcmp(name, restore_status_names[k]) == 0)
			return k;
	return -EINVAL;
}
