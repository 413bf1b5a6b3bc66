/*
 * requester/prefetch.c - reading ahead of a backup's walk (prefetch_i.h).
 * The walk (backup_tree.c) is one thread of synchronous reads: on a
 * shadow's filesystem each directory block, inode block and file it meets
 * first is a round trip through the loop device, FUSE and vssd.  A few
 * threads walk the same tree ahead of it, listing every directory, looking
 * at every entry and asking the kernel for the bytes of the files the walk
 * will read, so that those round trips run side by side and the walk finds
 * what it needs in the caches.  Nothing here decides anything: a failure
 * is ignored, and the walk reads everything itself as before.
 *
 * Directories are queued by their path under the source and opened with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV), so no
 * symlink is followed, nothing outside the source's filesystem is read, and
 * the queue holds no descriptors however wide the tree.  The queue is a
 * heap in the walk's own order (depth first, names sorted), so the threads
 * read the directories the walk comes to next, not the last ones listed.
 * Until the walk can say which files it will read (prefetch_set_changed:
 * it loads its base meanwhile), the files met are kept, and asked about
 * then.  Of a tree that cannot change (a shadow's), each directory's
 * listing and its entries' lstat are kept for the walk to take
 * (prefetch_take_dir), so that it lists and looks at nothing twice.
 * Lock: p->lock protects the queue, files, listings, changed, busy and
 * stop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "requester/prefetch_i.h"

#define PREFETCH_THREADS 8
/* Files kept until the walk can say whether it reads them, and entries
 * of listings kept for the walk: beyond this many of each (some 40 MiB),
 * the rest are not read ahead, or are listed again by the walk. */
#define MAX_KEPT (1u << 18)

struct kept {
	char *rel;
	struct stat st;
};

/* One directory's entries, read whole. */
struct listing {
	struct listing *next;           /* in its bucket */
	char *rel;
	struct prefetch_dirent *v;
	size_t n;
};

struct prefetch {
	int root_fd;
	dev_t dev;
	prefetch_changed_fn changed;
	void *arg;
	pthread_t threads[PREFETCH_THREADS];
	int nthreads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char **queue;                   /* directories to read, by path under root: a heap */
	size_t n, cap;
	struct kept *files;             /* met before changed was set, not yet asked */
	size_t nfiles, files_cap, files_done;
	bool changed_set;               /* prefetch_start's or prefetch_set_changed's */
	bool keep_dirs;                 /* listings kept for prefetch_take_dir */
	struct listing **buckets;       /* by the hash of rel */
	size_t nbuckets, nlistings, listed; /* listed: entries kept in all */
	int busy;                       /* threads reading a directory */
	bool stop;
};

/* Whether path @a comes before @b in the walk: component by component,
 * each compared as strcmp does, a directory before what is under it. */
static bool walk_before(const char *a, const char *b)
{
	for (;; a++, b++) {
		int x = *a == '/' ? 1 : *a ? (unsigned char)*a + 1 : 0;
		int y = *b == '/' ? 1 : *b ? (unsigned char)*b + 1 : 0;

		if (x != y || !x)
			return x < y;
	}
}

static int open_beneath(int root_fd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};

	return (int)syscall(SYS_openat2, root_fd, *rel ? rel : ".", &how, sizeof(how));
}

/* Queues @rel (taken); with p->lock held. */
static void push(struct prefetch *p, char *rel)
{
	size_t i;

	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 256;
		char **bigger = realloc(p->queue, cap * sizeof(*bigger));

		if (!bigger) {
			free(rel);
			return;
		}
		p->queue = bigger;
		p->cap = cap;
	}
	for (i = p->n++; i > 0 && walk_before(rel, p->queue[(i - 1) / 2]); i = (i - 1) / 2)
		p->queue[i] = p->queue[(i - 1) / 2];
	p->queue[i] = rel;
	pthread_cond_signal(&p->cond);
}

/* The first directory in the walk's order, taken off the queue (not
 * empty); with p->lock held. */
static char *pop(struct prefetch *p)
{
	char *top = p->queue[0], *last = p->queue[--p->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= p->n)
			break;
		if (c + 1 < p->n && walk_before(p->queue[c + 1], p->queue[c]))
			c++;
		if (!walk_before(p->queue[c], last))
			break;
		p->queue[i] = p->queue[c];
		i = c;
	}
	if (p->n)
		p->queue[i] = last;
	return top;
}

/* Asks the kernel for the bytes of the file @rel, as @st describes it. */
static void read_file(struct prefetch *p, int dir_fd, const char *name, const char *rel,
		      const struct stat *st)
{
	int f;

	if (!p->changed(p->arg, rel, st))
		return;
	f = dir_fd >= 0 ? openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME |
				 O_NONBLOCK)
		       : open_beneath(p->root_fd, rel, O_RDONLY | O_NOATIME | O_NONBLOCK);
	if (f >= 0) {
		posix_fadvise(f, 0, st->st_size, POSIX_FADV_WILLNEED);
		close(f);
	}
}

/* The file @rel (taken) met before the walk could say whether it reads
 * it: kept for then. */
static void keep(struct prefetch *p, char *rel, const struct stat *st)
{
	pthread_mutex_lock(&p->lock);
	if (p->nfiles == p->files_cap && p->files_cap < MAX_KEPT) {
		size_t cap = p->files_cap ? 2 * p->files_cap : 1024;
		struct kept *bigger = realloc(p->files, cap * sizeof(*bigger));

		if (bigger) {
			p->files = bigger;
			p->files_cap = cap;
		}
	}
	if (p->nfiles < p->files_cap) {
		p->files[p->nfiles].rel = rel;
		p->files[p->nfiles++].st = *st;
		rel = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	free(rel);
}

static size_t bucket_of(const char *rel, size_t nbuckets)
{
	uint64_t h = 1469598103934665603ull;

	for (const unsigned char *c = (const unsigned char *)rel; *c; c++)
		h = (h ^ *c) * 1099511628211ull;
	h ^= h >> 29;
	return (size_t)(h * 0xbf58476d1ce4e5b9ull >> 17) & (nbuckets - 1);
}

void prefetch_dirents_free(struct prefetch_dirent *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* Keeps the listing @v (@n entries, taken) of directory @rel for the walk;
 * beyond MAX_KEPT entries kept, it is dropped (the walk lists it). */
static void keep_listing(struct prefetch *p, const char *rel, struct prefetch_dirent *v,
			 size_t n)
{
	struct listing *l = malloc(sizeof(*l));

	pthread_mutex_lock(&p->lock);
	if (p->nlistings >= p->nbuckets) {
		size_t nb = p->nbuckets ? 2 * p->nbuckets : 1024;
		struct listing **bigger = calloc(nb, sizeof(*bigger));

		for (size_t i = 0; bigger && i < p->nbuckets; i++)
			while (p->buckets[i]) {
				struct listing *m = p->buckets[i];
				size_t b = bucket_of(m->rel, nb);

				p->buckets[i] = m->next;
				m->next = bigger[b];
				bigger[b] = m;
			}
		if (bigger) {
			free(p->buckets);
			p->buckets = bigger;
			p->nbuckets = nb;
		}
	}
	if (l && p->nbuckets && p->listed + n <= MAX_KEPT && (l->rel = strdup(rel))) {
		size_t b = bucket_of(rel, p->nbuckets);

		l->v = v;
		l->n = n;
		l->next = p->buckets[b];
		p->buckets[b] = l;
		p->nlistings++;
		p->listed += n;
		l = NULL;
		v = NULL;
		n = 0;
	}
	pthread_mutex_unlock(&p->lock);
	free(l);
	prefetch_dirents_free(v, n);
}

struct prefetch_dirent *prefetch_take_dir(struct prefetch *p, const char *rel, size_t *n)
{
	struct prefetch_dirent *v = NULL;

	*n = 0;
	if (!p)
		return NULL;
	pthread_mutex_lock(&p->lock);
	if (p->nbuckets) {
		struct listing **at = &p->buckets[bucket_of(rel, p->nbuckets)];

		for (; *at && strcmp((*at)->rel, rel) != 0; at = &(*at)->next)
			;
		if (*at) {
			struct listing *l = *at;

			*at = l->next;
			v = l->v;
			*n = l->n;
			p->nlistings--;
			p->listed -= l->n;
			free(l->rel);
			free(l);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return v;
}

static bool stopping(struct prefetch *p)
{
	bool stop;

	pthread_mutex_lock(&p->lock);
	stop = p->stop;
	pthread_mutex_unlock(&p->lock);
	return stop;
}

/* Lists directory @rel, looks at each entry, queues its directories and
 * reads ahead the files the walk will read; keeps the listing if it is
 * wanted and whole. */
static void read_dir(struct prefetch *p, const char *rel)
{
	int fd = open_beneath(p->root_fd, rel, O_RDONLY | O_DIRECTORY), n = 0;
	struct prefetch_dirent *v = NULL;
	size_t nv = 0, cap = 0;
	bool whole = p->keep_dirs;
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if ((++n & 63) == 0 && stopping(p)) {
			whole = false;
			break;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			whole = false;
			continue;
		}
		if (whole && nv == cap) {
			struct prefetch_dirent *bigger = realloc(v, (cap = cap ? 2 * cap : 64) *
								 sizeof(*bigger));

			if (bigger)
				v = bigger;
			else
				whole = false;
		}
		if (whole && (v[nv].name = strdup(de->d_name))) {
			v[nv].st = st;
			nv++;
		} else {
			whole = false;
		}
		if (st.st_dev != p->dev)
			continue;       /* another filesystem: not read */
		if (!*rel)
			sub = strdup(de->d_name);
		else if (asprintf(&sub, "%s/%s", rel, de->d_name) < 0)
			sub = NULL;
		if (!sub)
			continue;
		if (S_ISDIR(st.st_mode)) {
			pthread_mutex_lock(&p->lock);
			push(p, sub);
			pthread_mutex_unlock(&p->lock);
			continue;
		}
		if (S_ISREG(st.st_mode) && st.st_size > 0) {
			bool now;

			pthread_mutex_lock(&p->lock);
			now = p->changed_set;
			pthread_mutex_unlock(&p->lock);
			if (!now) {
				keep(p, sub, &st);
				continue;
			}
			if (p->changed)
				read_file(p, dirfd(d), de->d_name, sub, &st);
		}
		free(sub);
	}
	closedir(d);
	if (whole)
		keep_listing(p, rel, v, nv);
	else
		prefetch_dirents_free(v, nv);
}

static void *worker(void *arg)
{
	struct prefetch *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		bool kept_left;
		char *rel;

		/* Kept files wait for changed; the threads end once the tree is
		 * read and no kept file is left. */
		for (;;) {
			kept_left = p->files_done < p->nfiles;
			if (p->stop || p->n > 0 || (kept_left && p->changed_set) ||
			    (p->busy == 0 && (!kept_left || p->changed_set)))
				break;
			pthread_cond_wait(&p->cond, &p->lock);
		}
		if (p->stop)
			break;
		if (kept_left && p->changed_set) {
			struct kept k = p->files[p->files_done];

			p->files[p->files_done++].rel = NULL;
			pthread_mutex_unlock(&p->lock);
			if (p->changed)
				read_file(p, -1, NULL, k.rel, &k.st);
			free(k.rel);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (p->n == 0)
			break;          /* the whole tree is read */
		rel = pop(p);
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		read_dir(p, rel);
		free(rel);
		pthread_mutex_lock(&p->lock);
		p->busy--;
		if (p->n == 0 && p->busy == 0)
			pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int prefetch_start(int dir_fd, dev_t dev, bool keep_dirs, prefetch_changed_fn changed,
		   void *arg, struct prefetch **out)
{
	struct prefetch *p = calloc(1, sizeof(*p));
	char *root = strdup("");

	*out = NULL;
	if (!p || !root) {
		free(p);
		free(root);
		return -ENOMEM;
	}
	p->dev = dev;
	p->changed = changed;
	p->arg = arg;
	p->changed_set = changed != NULL;
	p->keep_dirs = keep_dirs;
	if ((p->root_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(p);
		free(root);
		return -errno;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	push(p, root);
	for (int i = 0; i < PREFETCH_THREADS; i++)
		if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) == 0)
			p->nthreads++;
	*out = p;
	return 0;
}

void prefetch_set_changed(struct prefetch *p, prefetch_changed_fn changed, void *arg)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (!p->changed_set) {
		p->changed = changed;
		p->arg = arg;
		p->changed_set = true;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

void prefetch_stop(struct prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	for (size_t i = 0; i < p->n; i++)
		free(p->queue[i]);
	free(p->queue);
	for (size_t i = p->files_done; i < p->nfiles; i++)
		free(p->files[i].rel);
	free(p->files);
	for (size_t i = 0; i < p->nbuckets; i++)
		while (p->buckets[i]) {
			struct listing *l = p->buckets[i];

			p->buckets[i] = l->next;
			prefetch_dirents_free(l->v, l->n);
			free(l->rel);
			free(l);
		}
	free(p->buckets);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	close(p->root_fd);
	free(p);
}
