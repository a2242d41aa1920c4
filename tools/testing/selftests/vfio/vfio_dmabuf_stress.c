// SPDX-License-Identifier: GPL-2.0
/*
 * Race stress of the vfio-pci dma-buf exporter: threads create and close
 * buffers, import, map, unmap and detach them through the test importer,
 * reset the device, toggle memory decode and close and reopen the device,
 * all at once, for VFIO_DMABUF_STRESS_SECONDS (default 10).
 *
 * Checked while it runs: no map succeeds while memory decode is off (the
 * buffer is revoked); every segment a map returns lies inside the
 * requested ranges of the BAR (through the IOMMU where there is one); every
 * failure is one the contract allows (ENODEV while revoked, EOPNOTSUPP with
 * no P2P path).  Checked at the end: open fds and vfio-pci-core's module
 * references are back where they started.  The guest then fails the run
 * on any lockdep, KASAN or kmemleak report.
 */

#include <pthread.h>
#include <time.h>

#include "vfio_dmabuf_util.h"
#include "../kselftest.h"

#define POOL 16
#define MAXR 8

struct buf {
	int fd;			/* -1: free slot */
	int n;
	struct vfio_region_dma_range r[MAXR];
};

static struct vdev dev;
static pthread_rwlock_t dev_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct buf pool[POOL];
static const char *importer, *path;
static uint64_t bar_size, phys;
static int stop;
/* Odd while the toggler holds memory decode off (buffers revoked). */
static int off_gen;
static int errors, maps_ok, maps_revoked, maps_in_window, creates, resets, toggles,
	   reopens;

static void fail(const char *what, int err)
{
	if (__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED) < 10)
		ksft_print_msg("unexpected: %s: %s\n", what, strerror(err));
}

static unsigned int seedp(void)
{
	return (unsigned int)pthread_self() ^ (unsigned int)time(NULL);
}

static void *creator(void *arg)
{
	unsigned int seed = seedp();

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		int slot = rand_r(&seed) % POOL;
		struct buf b = { .n = rand_r(&seed) % MAXR + 1 };

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
			b.r[i].offset = (rand_r(&seed) % (bar_size / PAGE - 4)) * PAGE;
		}
		pthread_rwlock_rdlock(&dev_lock);
		b.fd = dmabuf_create(dev.fd, 2, b.n, b.r);
		pthread_rwlock_unlock(&dev_lock);
		if (b.fd < 0) {
			fail("create", -b.fd);
			continue;
		}
		__atomic_fetch_add(&creates, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&pool_lock);
		if (pool[slot].fd < 0)
			pool[slot] = b;
		else
			close(b.fd);
		pthread_mutex_unlock(&pool_lock);
	}
	return arg;
}

/*
 * Is every byte of [p, p + len) inside @b's ranges?  A segment may span
 * several ranges: ranges that follow each other in the BAR are merged.
 */
static int inside(const struct buf *b, uint64_t p, uint64_t len)
{
	uint64_t end = p + len;

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
	unsigned int seed = seedp();

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		struct buf b;
		int imp, n;

		pthread_mutex_lock(&pool_lock);
		b = pool[rand_r(&seed) % POOL];
		if (b.fd >= 0)
			b.fd = dup(b.fd);
		pthread_mutex_unlock(&pool_lock);
		if (b.fd < 0)
			continue;
		imp = importer_attach(b.fd, importer, 0);
		if (imp < 0) {
			if (imp != -ENODEV && !(imp == -EOPNOTSUPP && !strcmp(path, "none")))
				fail("attach", -imp);
			close(b.fd);
			continue;
		}
		for (int k = 0; k < 4; k++) {
			int g0 = __atomic_load_n(&off_gen, __ATOMIC_SEQ_CST);

			n = importer_map(imp, segs, 64);
			if (n >= 0 && (g0 & 1) &&
			    g0 == __atomic_load_n(&off_gen, __ATOMIC_SEQ_CST)) {
				__atomic_fetch_add(&maps_in_window, 1, __ATOMIC_RELAXED);
				fail("map succeeded while decode was off", EBUSY);
			}
			if (n == -ENODEV) {
				__atomic_fetch_add(&maps_revoked, 1, __ATOMIC_RELAXED);
				continue;
			}
			if (n < 0) {
				fail("map", -n);
				break;
			}
			__atomic_fetch_add(&maps_ok, 1, __ATOMIC_RELAXED);
			for (int i = 0; i < n && i < 64; i++) {
				if (inside(&b, segs[i].phys, segs[i].len))
					continue;
				fail("segment outside the ranges", EFAULT);
				ksft_print_msg("seg %d/%d: 0x%llx+0x%llx phys 0x%llx bus %u\n",
					       i, n, (unsigned long long)segs[i].addr,
					       (unsigned long long)segs[i].len,
					       (unsigned long long)segs[i].phys,
					       segs[i].bus_addr);
			}
			if (importer_unmap(imp) && errno != ENOENT)
				fail("unmap", errno);
		}
		close(imp);
		close(b.fd);
	}
	return arg;
}

static void *resetter(void *arg)
{
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		pthread_rwlock_rdlock(&dev_lock);
		if (ioctl(dev.fd, VFIO_DEVICE_RESET))
			fail("reset", errno);
		pthread_rwlock_unlock(&dev_lock);
		__atomic_fetch_add(&resets, 1, __ATOMIC_RELAXED);
		usleep(20000);
	}
	return arg;
}

/*
 * Memory decode off for a while, then on.  The window in which off_gen is
 * odd lies inside the time decode is off, so a map that starts and ends in
 * it must fail.  The read lock keeps the reopener out of the window.
 */
static void *toggler(void *arg)
{
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		pthread_rwlock_rdlock(&dev_lock);
		if (vdev_set_memory(&dev, 0))
			fail("decode off", errno);
		__atomic_fetch_add(&off_gen, 1, __ATOMIC_SEQ_CST);
		usleep(2000);
		__atomic_fetch_add(&off_gen, 1, __ATOMIC_SEQ_CST);
		if (vdev_set_memory(&dev, 1))
			fail("decode on", errno);
		pthread_rwlock_unlock(&dev_lock);
		__atomic_fetch_add(&toggles, 1, __ATOMIC_RELAXED);
		usleep(5000);
	}
	return arg;
}

static void *reopener(void *arg)
{
	const char *bdf = getenv("VFIO_DMABUF_EXPORTER");

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		usleep(500000);
		pthread_rwlock_wrlock(&dev_lock);
		vdev_close(&dev);
		if (vdev_open(&dev, bdf) || vdev_set_memory(&dev, 1))
			fail("reopen", errno);
		pthread_rwlock_unlock(&dev_lock);
		__atomic_fetch_add(&reopens, 1, __ATOMIC_RELAXED);
	}
	return arg;
}

int main(void)
{
	void *(*fns[])(void *) = {
		creator, creator, importer_thread, importer_thread,
		importer_thread, resetter, toggler, reopener,
	};
	int secs = atoi(env_or("VFIO_DMABUF_STRESS_SECONDS", "10"));
	const char *bdf = getenv("VFIO_DMABUF_EXPORTER");
	pthread_t th[ARRAY_SIZE(fns)];
	int refs0, refs1, fd0, fd1;

	ksft_print_header();
	ksft_set_plan(1);
	fd0 = dup(0);
	close(fd0);
	importer = env_or("VFIO_DMABUF_IMPORTER", "");
	path = env_or("VFIO_DMABUF_PATH", "none");
	if (!bdf || vdev_open(&dev, bdf) || vdev_set_memory(&dev, 1))
		ksft_exit_fail_msg("cannot open the exporting device\n");
	bar_size = vdev_region_size(&dev, 2);
	phys = bar_phys(bdf, 2);
	for (int i = 0; i < POOL; i++)
		pool[i].fd = -1;
	refs0 = core_refcnt();

	for (unsigned int i = 0; i < ARRAY_SIZE(fns); i++)
		pthread_create(&th[i], NULL, fns[i], NULL);
	sleep(secs);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (unsigned int i = 0; i < ARRAY_SIZE(fns); i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < POOL; i++)
		if (pool[i].fd >= 0)
			close(pool[i].fd);
	vdev_close(&dev);

	refs1 = core_refcnt();
	fd1 = dup(0);
	close(fd1);
	ksft_print_msg("%d s: %d buffers, %d maps, %d refused while revoked, %d wrongly allowed\n",
		       secs, creates, maps_ok, maps_revoked, maps_in_window);
	ksft_print_msg("%d resets, %d decode toggles, %d reopens\n",
		       resets, toggles, reopens);
	ksft_print_msg("fds %d -> %d, module references %d -> %d, %d unexpected results\n",
		       fd0, fd1, refs0, refs1, errors);
	ksft_test_result(!errors && fd0 == fd1 && refs0 == refs1 &&
			 (maps_ok || !strcmp(path, "none")),
			 "stress create/import/map/reset/decode/reopen\n");
	ksft_finished();
}
