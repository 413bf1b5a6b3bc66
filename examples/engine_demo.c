/*
 * examples/engine_demo.c - the engine on its own: a live volume kept busy by
 * writer threads, a shadow taken in the middle of it, and a backup read from
 * the shadow while the writers go on.  The backup is then compared byte for
 * byte with what the volume held at the shadow's instant.
 *
 * Usage: vss-engine-demo DIR [SIZE_MIB]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vss/cow.h>

#define WRITERS 2
#define IO      4096u

static struct vss_cow_volume *vol;
static unsigned char *reference;       /* what the volume holds, kept by the writers */
static uint64_t vol_size;
static pthread_rwlock_t instant = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int stop;
static atomic_ullong writes;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *writer(void *arg)
{
	long id = (long)arg;
	uint64_t region = vol_size / WRITERS, base = region * (uint64_t)id;
	unsigned int seed = (unsigned int)id * 7919u + 1;
	unsigned char buf[IO];

	while (!atomic_load(&stop)) {
		uint64_t off = base + (uint64_t)(rand_r(&seed) % (region / IO)) * IO;
		memset(buf, rand_r(&seed), sizeof(buf));
		snprintf((char *)buf, 32, "writer %ld write %llu", id,
			 (unsigned long long)atomic_load(&writes));
		/* The demo's own bookkeeping: the writer and its reference copy
		 * move together, so the copy taken with the shadow is exact. */
		pthread_rwlock_rdlock(&instant);
		if (vss_cow_write(vol, buf, IO, off) != IO) {
			fprintf(stderr, "write failed\n");
			exit(1);
		}
		memcpy(reference + off, buf, IO);
		pthread_rwlock_unlock(&instant);
		atomic_fetch_add(&writes, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	char origin[4096], diff[4096], backup[4096];
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 256;
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_shadow_params p = { .flags = 0 };
	struct vss_cow_shadow *sh;
	struct vss_cow_usage u;
	struct vss_error err;
	pthread_t th[WRITERS];
	unsigned char *at_instant, *buf;
	int fd, bfd;

	if (argc < 2) {
		fprintf(stderr, "usage: vss-engine-demo DIR [SIZE_MIB]\n");
		return 2;
	}
	vol_size = mib << 20;
	snprintf(origin, sizeof(origin), "%s/volume.img", argv[1]);
	snprintf(diff, sizeof(diff), "%s/volume.diff", argv[1]);
	snprintf(backup, sizeof(backup), "%s/backup.img", argv[1]);
	fd = open(origin, O_CREAT | O_TRUNC | O_RDWR, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)vol_size) < 0) {
		perror(origin);
		return 1;
	}
	close(fd);
	unlink(diff);
	if (vss_cow_open(origin, diff, &cfg, VSS_COW_CREATE, &vol, &err)) {
		fprintf(stderr, "vss-engine-demo: %s\n", err.msg);
		return 1;
	}
	reference = calloc(1, vol_size);
	at_instant = malloc(vol_size);
	buf = malloc(1 << 20);
	if (!reference || !at_instant || !buf)
		return 1;

	printf("volume: %llu MiB, block %u KiB; %d writer threads start\n",
	       (unsigned long long)mib, vss_cow_block_size(vol) / 1024, WRITERS);
	for (long i = 0; i < WRITERS; i++)
		pthread_create(&th[i], NULL, writer, (void *)i);
	sleep(1);

	/* The instant. */
	memcpy(p.id, "demo-shadow-0001", 16);
	pthread_rwlock_wrlock(&instant);
	double t0 = now();
	int r = vss_cow_shadow_create(vol, &p, &err);
	double t1 = now();
	memcpy(at_instant, reference, vol_size);
	pthread_rwlock_unlock(&instant);
	if (r) {
		fprintf(stderr, "vss-engine-demo: %s\n", err.msg);
		return 1;
	}
	printf("shadow taken after %llu writes, in %.1f us\n",
	       (unsigned long long)atomic_load(&writes), (t1 - t0) * 1e6);

	/* The backup: read the shadow while the writers keep going. */
	vss_cow_shadow_open(vol, p.id, &sh);
	bfd = open(backup, O_CREAT | O_TRUNC | O_RDWR, 0600);
	double b0 = now();
	unsigned long long w0 = atomic_load(&writes);
	for (uint64_t off = 0; off < vol_size; off += 1 << 20) {
		if (vss_cow_shadow_read(sh, buf, 1 << 20, off) != 1 << 20 ||
		    pwrite(bfd, buf, 1 << 20, (off_t)off) != 1 << 20) {
			fprintf(stderr, "backup failed\n");
			return 1;
		}
	}
	double b1 = now();
	unsigned long long during = atomic_load(&writes) - w0;
	atomic_store(&stop, 1);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(th[i], NULL);
	vss_cow_usage(vol, &u);
	printf("backup of %llu MiB read from the shadow in %.2f s (%.0f MiB/s) while %llu writes went on\n",
	       (unsigned long long)mib, b1 - b0, mib / (b1 - b0), during);
	printf("diff area: %llu blocks copied, %llu KiB used\n",
	       (unsigned long long)u.copied_blocks, (unsigned long long)(u.used_bytes >> 10));

	/* The proof: the backup is the volume at the instant, not now. */
	size_t mismatch = 0, differs_now = 0;
	for (uint64_t off = 0; off < vol_size; off += 1 << 20) {
		if (pread(bfd, buf, 1 << 20, (off_t)off) != 1 << 20)
			return 1;
		mismatch += memcmp(buf, at_instant + off, 1 << 20) != 0;
		differs_now += memcmp(buf, reference + off, 1 << 20) != 0;
	}
	close(bfd);
	vss_cow_shadow_close(sh);
	vss_cow_close(vol);
	printf("backup equals the volume at the shadow's instant: %s (%zu of its 1 MiB pieces differ from the live volume by now)\n",
	       mismatch ? "NO" : "yes", differs_now);
	free(reference);
	free(at_instant);
	free(buf);
	return mismatch ? 1 : 0;
}
