// SPDX-License-Identifier: GPL-2.0
/*
 * Race stress of the vfio-pci dma-buf exporter over two exporting devices:
 * threads create and close buffers of both, import, map, unmap and detach
 * them through the test importer, map them for the CPU and read them,
 * reset each device, toggle each one's memory decode and close and reopen
 * the devices (one, or both together), all at once, for
 * VFIO_DMABUF_STRESS_SECONDS (default 10).
 *
 * Checked while it runs: no map and no CPU access succeeds while its
 * device's memory decode is off (the buffer is revoked: the access gets
 * SIGBUS); every CPU mapping is allowed or refused as the contract says
 * (ENODEV once the buffer's device was closed); every segment a map returns lies inside
 * the requested ranges of the right device's BAR (through the IOMMU where
 * there is one); every failure is one the contract allows (ENODEV while
 * revoked, EOPNOTSUPP with no P2P path).  Checked at the end: both devices
 * were exercised, open fds and vfio-pci-core's module references are back
 * where they started.  The guest then fails the run on any lockdep, KASAN
 * or kmemleak report.
 */

#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include "vfio_dmabuf_util.h"
#include "../kselftest.h"

#define NDEV 2
#define POOL 16
#define MAXR 8

struct buf {
	int fd;			/* -1: free slot */
	int dev;		/* index in devs[] */
	int n;
	struct vfio_region_dma_range r[MAXR];
};

struct sdev {
	struct vdev d;
	const char *bdf;
	uint64_t bar_size, phys;
	int off_gen;		/* odd while its toggler holds decode off */
	int creates, maps_ok, resets, toggles;
};

static struct sdev devs[NDEV];
/* Readers use the devices' fds; the reopener writes them. */
static pthread_rwlock_t dev_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct buf pool[POOL];
static const char *importer, *path;
static int stop;
static int errors, maps_revoked, maps_in_window, reopens;
static int cpu_ok, cpu_sigbus, cpu_in_window;

static void fail(const char *what, int err)
{
	if (__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED) < 10)
		ksft_print_msg("unexpected: %s: %s\n", what, strerror(err));
}

static void count(int *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static int stopping(void)
{
	return __atomic_load_n(&stop, __ATOMIC_RELAXED);
}

static unsigned int seedp(void)
{
	return (unsigned int)pthread_self() ^ (unsigned int)time(NULL);
}

static void *creator(void *arg)
{
	unsigned int seed = seedp();

	while (!stopping()) {
		int slot = rand_r(&seed) % POOL;
		struct buf b = { .dev = rand_r(&seed) % NDEV,
				 .n = rand_r(&seed) % MAXR + 1 };
		struct sdev *s = &devs[b.dev];

		pthread_mutex_lock(&pool_lock);
		if (pool[slot].fd >= 0) {
			close(pool[slot].fd);
			pool[slot].fd = -1;
			pthread_mutex_unlock(&pool_lock);
			continue;
		}
		pthread_mutex_unlock(&pool_lock);
		for (int i = 0; i < b.n; i++) {
			b.r[i].length = (rand_r(&seed) % 4 + 1) * PAGE;
			b.r[i].offset = (rand_r(&seed) % (s->bar_size / PAGE - 4)) * PAGE;
		}
		pthread_rwlock_rdlock(&dev_lock);
		b.fd = dmabuf_create(s->d.fd, 2, b.n, b.r);
		pthread_rwlock_unlock(&dev_lock);
		if (b.fd < 0) {
			fail("create", -b.fd);
			continue;
		}
		count(&s->creates);
		pthread_mutex_lock(&pool_lock);
		if (pool[slot].fd < 0)
			pool[slot] = b;
		else
			close(b.fd);
		pthread_mutex_unlock(&pool_lock);
	}
	return arg;
}

/* A random buffer of the pool, with its own fd: 0, or -1 for a free slot. */
static int pool_take(unsigned int *seed, struct buf *b)
{
	pthread_mutex_lock(&pool_lock);
	*b = pool[rand_r(seed) % POOL];
	if (b->fd >= 0)
		b->fd = dup(b->fd);
	pthread_mutex_unlock(&pool_lock);
	return b->fd < 0 ? -1 : 0;
}

/*
 * Is every byte of [p, p + len) inside @b's ranges of its device's BAR?  A
 * segment may span several ranges: ranges that follow each other in the
 * BAR are merged.
 */
static int inside(const struct buf *b, uint64_t p, uint64_t len)
{
	uint64_t phys = devs[b->dev].phys, end = p + len;

	if (end < p)
		return 0;
	while (p < end) {
		int i;

		for (i = 0; i < b->n; i++)
			if (p >= phys + b->r[i].offset &&
			    p < phys + b->r[i].offset + b->r[i].length)
				break;
		if (i == b->n)
			return 0;
		p = phys + b->r[i].offset + b->r[i].length;
	}
	return 1;
}

static void *importer_thread(void *arg)
{
	struct vdi_segment segs[64];
	uint64_t pages[1024];
	unsigned int seed = seedp();
	int np;

	while (!stopping()) {
		struct sdev *s;
		struct buf b;
		int imp, n;

		if (pool_take(&seed, &b))
			continue;
		s = &devs[b.dev];
		imp = importer_attach(b.fd, importer, 0);
		if (imp < 0) {
			if (imp != -ENODEV && !(imp == -EOPNOTSUPP && !strcmp(path, "none")))
				fail("attach", -imp);
			close(b.fd);
			continue;
		}
		for (int k = 0; k < 4; k++) {
			int g0 = __atomic_load_n(&s->off_gen, __ATOMIC_SEQ_CST);

			n = importer_map(imp, segs, 64);
			if (n >= 0 && (g0 & 1) &&
			    g0 == __atomic_load_n(&s->off_gen, __ATOMIC_SEQ_CST)) {
				count(&maps_in_window);
				fail("map succeeded while decode was off", EBUSY);
			}
			if (n == -ENODEV) {
				count(&maps_revoked);
				continue;
			}
			if (n < 0) {
				fail("map", -n);
				break;
			}
			count(&s->maps_ok);
			/* every page of the mapping, wherever the segments cut it */
			np = importer_pages(imp, pages, ARRAY_SIZE(pages));
			if (np < 0 && np != -ENXIO)
				fail("pages", -np);
			for (int i = 0; i < np && i < (int)ARRAY_SIZE(pages); i++) {
				if (inside(&b, pages[i], PAGE))
					continue;
				fail("page outside the ranges", EFAULT);
				ksft_print_msg("%s page %d/%d of %d segments: phys 0x%llx\n",
					       s->bdf, i, np, n,
					       (unsigned long long)pages[i]);
				break;
			}
			if (importer_unmap(imp) && errno != ENOENT)
				fail("unmap", errno);
		}
		close(imp);
		close(b.fd);
	}
	return arg;
}

/*
 * Maps a buffer for the CPU and reads some of its pages, each read
 * bracketed by the toggler's window as the importer's maps are.
 */
static void *cpu_thread(void *arg)
{
	unsigned int seed = seedp();

	probe_init();
	while (!stopping()) {
		uint64_t total = 0;
		struct sdev *s;
		struct buf b;
		uint8_t *map;

		if (pool_take(&seed, &b))
			continue;
		s = &devs[b.dev];
		for (int i = 0; i < b.n; i++)
			total += b.r[i].length;
		map = mmap(NULL, total, PROT_READ, MAP_SHARED, b.fd, 0);
		if (map == MAP_FAILED) {
			if (errno != ENODEV)
				fail("CPU mapping", errno);
			close(b.fd);
			continue;
		}
		for (int k = 0; k < 16; k++) {
			uint64_t off = rand_r(&seed) % (total / PAGE) * PAGE;
			int g0 = __atomic_load_n(&s->off_gen, __ATOMIC_SEQ_CST);
			int sig = probe(map + off, 0, 0, NULL);

			if (!sig && (g0 & 1) &&
			    g0 == __atomic_load_n(&s->off_gen, __ATOMIC_SEQ_CST)) {
				count(&cpu_in_window);
				fail("CPU access succeeded while decode was off", EBUSY);
			}
			if (sig == SIGBUS)
				count(&cpu_sigbus);
			else if (!sig)
				count(&cpu_ok);
			else
				fail("CPU access", EFAULT);
		}
		munmap(map, total);
		close(b.fd);
	}
	return arg;
}

static void *resetter(void *arg)
{
	struct sdev *s = arg;

	while (!stopping()) {
		pthread_rwlock_rdlock(&dev_lock);
		if (ioctl(s->d.fd, VFIO_DEVICE_RESET))
			fail("reset", errno);
		pthread_rwlock_unlock(&dev_lock);
		count(&s->resets);
		usleep(20000);
	}
	return NULL;
}

/*
 * Memory decode off for a while, then on.  The window in which off_gen is
 * odd lies inside the time decode is off, so a map of this device's
 * buffers that starts and ends in it must fail.  The read lock keeps the
 * reopener out of the window.
 */
static void *toggler(void *arg)
{
	struct sdev *s = arg;

	while (!stopping()) {
		pthread_rwlock_rdlock(&dev_lock);
		if (vdev_set_memory(&s->d, 0))
			fail("decode off", errno);
		__atomic_fetch_add(&s->off_gen, 1, __ATOMIC_SEQ_CST);
		usleep(2000);
		__atomic_fetch_add(&s->off_gen, 1, __ATOMIC_SEQ_CST);
		if (vdev_set_memory(&s->d, 1))
			fail("decode on", errno);
		pthread_rwlock_unlock(&dev_lock);
		count(&s->toggles);
		usleep(5000);
	}
	return NULL;
}

static void reopen(struct sdev *s)
{
	int e;

	vdev_close(&s->d);
	e = vdev_open(&s->d, s->bdf);
	if (!e)
		e = vdev_set_memory(&s->d, 1);
	if (e)
		fail("reopen", -e);
}

/*
 * Closes and reopens the first device, the second, then both at once (in
 * the switch scenarios both share one VFIO group: the group stays open
 * while either device is).
 */
static void *reopener(void *arg)
{
	for (int round = 0; !stopping(); round++) {
		usleep(500000);
		pthread_rwlock_wrlock(&dev_lock);
		if (round % 3 == 2) {
			vdev_close(&devs[0].d);
			reopen(&devs[1]);
			reopen(&devs[0]);
		} else {
			reopen(&devs[round % 3]);
		}
		pthread_rwlock_unlock(&dev_lock);
		count(&reopens);
	}
	return arg;
}

int main(void)
{
	static const char *const need[] = {
		"VFIO_DMABUF_EXPORTER",
		"VFIO_DMABUF_EXPORTER2",
		"VFIO_DMABUF_IMPORTER", NULL
	};
	int secs = atoi(env_or("VFIO_DMABUF_STRESS_SECONDS", "10"));
	const char *bdfs[NDEV] = { getenv("VFIO_DMABUF_EXPORTER"),
				   getenv("VFIO_DMABUF_EXPORTER2") };
	struct {
		void *(*fn)(void *arg);
		void *arg;
	} th[] = {
		{ creator }, { creator },
		{ importer_thread }, { importer_thread }, { importer_thread },
		{ cpu_thread }, { cpu_thread },
		{ resetter, &devs[0] }, { resetter, &devs[1] },
		{ toggler, &devs[0] }, { toggler, &devs[1] },
		{ reopener },
	};
	pthread_t tid[ARRAY_SIZE(th)];
	int refs0, refs1, fd0, fd1, exercised = 1;

	vfio_dmabuf_require(need, 1);

	ksft_print_header();
	ksft_set_plan(1);
	fd0 = dup(0);
	close(fd0);
	importer = env_or("VFIO_DMABUF_IMPORTER", "");
	path = env_or("VFIO_DMABUF_PATH", "none");
	for (int i = 0; i < NDEV; i++) {
		struct sdev *s = &devs[i];

		s->bdf = bdfs[i];
		if (!s->bdf)
			ksft_exit_fail_msg("VFIO_DMABUF_EXPORTER%s is unset: run through run.sh\n",
					   i ? "2" : "");
		if (vdev_open(&s->d, s->bdf) || vdev_set_memory(&s->d, 1))
			ksft_exit_fail_msg("cannot open %s\n", s->bdf);
		s->bar_size = vdev_region_size(&s->d, 2);
		s->phys = bar_phys(s->bdf, 2);
	}
	for (int i = 0; i < POOL; i++)
		pool[i].fd = -1;
	refs0 = core_refcnt();

	for (unsigned int i = 0; i < ARRAY_SIZE(th); i++)
		pthread_create(&tid[i], NULL, th[i].fn, th[i].arg);
	sleep(secs);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (unsigned int i = 0; i < ARRAY_SIZE(th); i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < POOL; i++)
		if (pool[i].fd >= 0)
			close(pool[i].fd);

	ksft_print_msg("%d s, %d reopens, %d maps refused while revoked, %d wrongly allowed\n",
		       secs, reopens, maps_revoked, maps_in_window);
	ksft_print_msg("CPU reads: %d went through, %d SIGBUS, %d wrongly allowed\n",
		       cpu_ok, cpu_sigbus, cpu_in_window);
	/* every trigger ran, and raced a map where maps are possible */
	if (!cpu_ok || !cpu_sigbus || !reopens ||
	    (!maps_revoked && strcmp(path, "none")))
		exercised = 0;
	for (int i = 0; i < NDEV; i++) {
		struct sdev *s = &devs[i];

		ksft_print_msg("%s: %d buffers, %d maps, %d resets, %d decode toggles\n",
			       s->bdf, s->creates, s->maps_ok, s->resets, s->toggles);
		if (!s->creates || !s->resets || !s->toggles ||
		    (!s->maps_ok && strcmp(path, "none")))
			exercised = 0;
		vdev_close(&s->d);
	}
	refs1 = core_refcnt();
	fd1 = dup(0);
	close(fd1);
	ksft_print_msg("fds %d -> %d, module references %d -> %d, %d unexpected results\n",
		       fd0, fd1, refs0, refs1, errors);
	ksft_test_result(!errors && fd0 == fd1 && refs0 == refs1 && exercised,
			 "stress two devices: create/import/map/mmap/reset/decode/reopen\n");
	ksft_finished();
}
