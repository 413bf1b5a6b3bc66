/*
 * tests/writer/fuzz_writer_doc.c - libFuzzer target: the input is parsed as
 * both documents; a refusal must carry its one-line message, and whatever
 * parses must serialize, parse again and serialize to the same text.
 *
 * Built with -DVSS_WRITER_DOC_SEEDS the file is instead the seed maker that
 * tests/fuzz/run-fuzz.sh runs first: it writes into the corpus directory the
 * JSON examples of doc/ (VSS_DOC_DIR) and documents made with the builders.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/writer_doc.h>

#define CLS "6f1c2a9e-3b7d-4e5f-9a8b-0c1d2e3f4a5b"
#define INST "b2c3d4e5-f607-4819-a2b3-c4d5e6f70819"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A writer for vss_bcd_check_writer: the one of doc/writer-metadata.md. */
static struct vss_wmd *make_wmd(void)
{
	struct vss_wmd *wmd;

	if (vss_wmd_new(&(struct vss_wmd_identity){ .writer_name = "PostgreSQL",
		.class_id = CLS, .instance_id = INST, .usage = VSS_UT_USER_DATA,
		.source = VSS_ST_TRANSACTED_DB }, &wmd, NULL) < 0 ||
	    vss_wmd_set_backup_schema(wmd, VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL |
				      VSS_BS_TIMESTAMPED | VSS_BS_LAST_MODIFY, NULL) < 0 ||
	    vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_DATABASE, .logical_path = "clusters/15-main",
		.name = "base", .selectable = true }, NULL) < 0 ||
	    vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .logical_path = "config",
		.name = "settings" }, NULL) < 0 ||
	    vss_wmd_add_file_set(wmd, "clusters/15-main", "base", &(struct vss_wmd_file_set){
		.kind = VSS_FSK_LOG, .path = "/var/lib/pg/wal", .file_spec = "0*",
		.backup_type_mask = VSS_FSBT_ALL_BACKUP_REQUIRED }, NULL) < 0 ||
	    vss_wmd_add_file_set(wmd, "config", "settings", &(struct vss_wmd_file_set){
		.kind = VSS_FSK_FILES, .path = "/etc/pg", .file_spec = "*.conf",
		.recursive = true, .backup_type_mask = VSS_FSBT_DEFAULT }, NULL) < 0)
		abort();
	return wmd;
}

/* A refusal says what and where, on one line, with the code returned. */
static void check_refusal(int r, const struct vss_error *err)
{
	if (r < 0 && (err->code != r || !err->msg[0] || err->msg[0] != '$' ||
		      strchr(err->msg, '\n')))
		abort();
}

static void wmd_stable(const struct vss_wmd *wmd)
{
	struct vss_error err;
	struct vss_wmd *back;
	struct vss_wmd_plan p;
	char *a, *b;
	size_t la, lb;

	if (vss_wmd_serialize(wmd, &a, &la, &err) < 0 ||
	    vss_wmd_parse(a, la, la, &back, &err) < 0 ||
	    vss_wmd_serialize(back, &b, &lb, &err) < 0 || la != lb || memcmp(a, b, la))
		abort();
	for (size_t c = 0; c < vss_wmd_component_count(back); c++)
		for (size_t i = 0; i < vss_wmd_file_set_count(back, c); i++)
			for (int t = VSS_BT_FULL; t <= VSS_BT_COPY; t++)
				if (vss_wmd_plan(back, t, c, i, &p, &err) < 0 ||
				    p.selection > VSS_SEL_ALL ||
				    (p.selection == VSS_SEL_NONE && p.snapshot_required))
					abort();
	vss_wmd_free(back);
	free(a);
	free(b);
}

static void bcd_stable(const struct vss_bcd *bcd)
{
	static struct vss_wmd *writer;
	struct vss_error err;
	struct vss_bcd *back;
	char *a, *b;
	size_t la, lb;

	if (vss_bcd_serialize(bcd, &a, &la, &err) < 0 ||
	    vss_bcd_parse(a, la, la, &back, &err) < 0 ||
	    vss_bcd_serialize(back, &b, &lb, &err) < 0 || la != lb || memcmp(a, b, la))
		abort();
	if (!writer)
		writer = make_wmd();
	check_refusal(vss_bcd_check_writer(back, writer, &err), &err);
	vss_bcd_free(back);
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vss_error err;
	struct vss_wmd *wmd;
	struct vss_bcd *bcd;
	int r;

	r = vss_wmd_parse((const char *)data, size, 0, &wmd, &err);
	check_refusal(r, &err);
	if (r == 0) {
		wmd_stable(wmd);
		vss_wmd_free(wmd);
	}
	r = vss_bcd_parse((const char *)data, size, 0, &bcd, &err);
	check_refusal(r, &err);
	if (r == 0) {
		bcd_stable(bcd);
		vss_bcd_free(bcd);
	}
	return 0;
}

#ifdef VSS_WRITER_DOC_SEEDS

static void write_seed(const char *dir, const char *name, const char *text, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(text, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* Every ```json block of doc/@file. */
static void doc_seeds(const char *dir, const char *file)
{
	char path[4096], name[256], *text, *p;
	long n;
	FILE *f;
	int k = 0;

	snprintf(path, sizeof(path), "%s/%s", VSS_DOC_DIR, file);
	if (!(f = fopen(path, "rb")) || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0) {
		perror(path);
		exit(1);
	}
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	if (!text || fread(text, 1, (size_t)n, f) != (size_t)n)
		exit(1);
	fclose(f);
	for (p = text; (p = strstr(p, "```json\n")); k++) {
		char *end = strstr(p += 8, "```");
		if (!end)
			break;
		snprintf(name, sizeof(name), "doc-%s-%d.json", file, k);
		write_seed(dir, name, p, (size_t)(end - p));
		p = end + 3;
	}
	free(text);
}

int main(int argc, char **argv)
{
	struct vss_bcd_range ranges[] = { { 0, 4096 }, { 8192, 512 } };
	struct vss_bcd_component *c;
	struct vss_wmd *wmd;
	struct vss_bcd *bcd;
	char *json;
	size_t len;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	doc_seeds(argv[1], "writer-metadata.md");
	doc_seeds(argv[1], "backup-components.md");

	wmd = make_wmd();
	if (vss_wmd_add_dependency(wmd, "config", "settings", &(struct vss_wmd_dependency){
		.logical_path = "clusters/15-main", .name = "base" }, NULL) < 0 ||
	    vss_wmd_add_exclude_files(wmd, &(struct vss_wmd_file_spec){
		.path = "/etc/pg", .file_spec = "*.bak" }, NULL) < 0 ||
	    vss_wmd_serialize(wmd, &json, &len, NULL) < 0)
		return 1;
	write_seed(argv[1], "built-wmd.json", json, len);
	free(json);
	vss_wmd_free(wmd);

	if (vss_bcd_new(VSS_BT_DIFFERENTIAL, true, &bcd, NULL) < 0 ||
	    vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .logical_path = "config",
		.name = "settings" }, &c, NULL) < 0 ||
	    vss_bcd_set_backup_stamp(c, "stamp", NULL) < 0 ||
	    vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
		.path = "/etc/pg", .filename = "pg.conf", .ranges = ranges,
		.range_count = 2, .metadata = "m" }, NULL) < 0 ||
	    vss_bcd_add_differenced_files(c, &(struct vss_bcd_differenced_files){
		.path = "/etc/pg", .file_spec = "*", .last_modify = { 1714528800, 5 } }, NULL) < 0 ||
	    vss_bcd_serialize(bcd, &json, &len, NULL) < 0)
		return 1;
	write_seed(argv[1], "built-bcd.json", json, len);
	free(json);
	vss_bcd_free(bcd);
	return 0;
}

#endif
