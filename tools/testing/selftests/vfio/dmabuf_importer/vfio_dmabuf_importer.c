// SPDX-License-Identifier: GPL-2.0
/*
 * Test importer for the vfio-pci dma-buf exporter.
 *
 * Imports a dma-buf on behalf of a chosen PCI device (or, to test refusals,
 * as a static importer, without peer-to-peer, or for a non-PCI device),
 * maps it and returns the DMA segments to user space, counts move_notify
 * calls and drops its mapping on each of them, as a real dynamic importer
 * must.  On request it fences like an importer with DMA in flight, holds a
 * range of physical addresses as another driver would, and samples another
 * PCI device's state in move_notify.  Attached on behalf of QEMU's "edu"
 * device, which it drives as a PCI driver, it moves data through the
 * segments with the device's DMA engine.  See vfio_dmabuf_importer.h.
 */

#include <linux/dma-buf.h>
#include <linux/dma-fence.h>
#include <linux/dma-mapping.h>
#include <linux/delay.h>
#include <linux/dma-resv.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#include "vfio_dmabuf_importer.h"

struct vdi {
	struct mutex lock;		/* serialises ioctls */
	struct dma_buf *dmabuf;
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;		/* under the reservation lock */
	struct pci_dev *pdev;		/* importing device, if PCI */
	atomic64_t move_notify;
	bool limits_saved;
	unsigned int saved_max_seg;
	unsigned long saved_boundary;

	/* VDI_IOC_SET_FENCE: one fence in flight at a time */
	unsigned int fence_delay_ms;
	u64 fence_context, fence_seqno;
	struct dma_fence *fence;	/* in flight, signalled by fence_work */
	struct delayed_work fence_work;
	atomic_t fences_signalled;

	struct resource *claim;		/* VDI_IOC_CLAIM */
	struct pci_dev *watch;		/* VDI_IOC_WATCH */
	u32 watched;			/* VDI_WATCH_* */
	u32 watched_revoke;		/* ... when a mapping was dropped */

	/* VDI_CHECK_UNMAP: the IOVA ranges of the mapping held, if translated */
	bool check_unmap;
	struct vdi_range {
		u64 addr, len;
	} *held;
	unsigned int nheld;
	atomic64_t unmap_checked, unmap_stale;

	/* VDI_LAZY_UNMAP: the unmap move_notify leaves to unmap_work */
	bool lazy_unmap;
	struct delayed_work unmap_work;
};

/* Lock of every fence: a signalled fence may outlive its importer. */
static DEFINE_SPINLOCK(vdi_fence_lock);

static const char *vdi_fence_name(struct dma_fence *f)
{
	return "vfio_dmabuf_importer";
}

static const struct dma_fence_ops vdi_fence_ops = {
	.get_driver_name = vdi_fence_name,
	.get_timeline_name = vdi_fence_name,
};

static void vdi_fence_work(struct work_struct *work)
{
	struct vdi *v = container_of(to_delayed_work(work), struct vdi,
				     fence_work);
	struct dma_fence *f = xchg(&v->fence, NULL);

	if (!f)
		return;
	dma_fence_signal(f);
	atomic_inc(&v->fences_signalled);
	dma_fence_put(f);
}

/* With the reservation lock held: a fence for the DMA "in flight". */
static void vdi_add_fence(struct vdi *v)
{
	struct dma_fence *f;

	/* The previous one signals first: one in flight at a time. */
	flush_delayed_work(&v->fence_work);
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return;
	dma_fence_init(f, &vdi_fence_ops, &vdi_fence_lock, v->fence_context,
		       ++v->fence_seqno);
	if (dma_resv_reserve_fences(v->dmabuf->resv, 1)) {
		dma_fence_signal(f);
		dma_fence_put(f);
		return;
	}
	dma_resv_add_fence(v->dmabuf->resv, f, DMA_RESV_USAGE_BOOKKEEP);
	v->fence = f;
	schedule_delayed_work(&v->fence_work,
			      msecs_to_jiffies(v->fence_delay_ms));
}

static struct miscdevice vdi_misc;

/* The IOMMU domain translating the importing device's DMA, if one does. */
static struct iommu_domain *vdi_domain(struct vdi *v)
{
	struct iommu_domain *domain = iommu_get_domain_for_dev(v->attach->dev);

	return domain && (domain->type & __IOMMU_DOMAIN_PAGING) ? domain : NULL;
}

/* VDI_CHECK_UNMAP: remembers the IOVA ranges of a new translated mapping. */
static void vdi_hold_ranges(struct vdi *v)
{
	struct scatterlist *sg;
	unsigned int i;

	if (!v->check_unmap || !vdi_domain(v))
		return;
	v->held = kvcalloc(v->sgt->nents ?: 1, sizeof(*v->held), GFP_KERNEL);
	if (!v->held)
		return;
	for_each_sgtable_dma_sg(v->sgt, sg, i)
		v->held[i] = (struct vdi_range){ sg_dma_address(sg), sg_dma_len(sg) };
	v->nheld = v->sgt->nents;
}

/* ... and looks every page of them up once the exporter unmapped them. */
static void vdi_check_unmapped(struct vdi *v)
{
	struct iommu_domain *domain = vdi_domain(v);
	unsigned int i;
	u64 off;

	for (i = 0; domain && i < v->nheld; i++) {
		for (off = 0; off < v->held[i].len; off += PAGE_SIZE) {
			atomic64_inc(&v->unmap_checked);
			if (iommu_iova_to_phys(domain, v->held[i].addr + off))
				atomic64_inc(&v->unmap_stale);
		}
	}
	kvfree(v->held);
	v->held = NULL;
	v->nheld = 0;
}

static void vdi_unmap_locked(struct vdi *v)
{
	dma_resv_assert_held(v->dmabuf->resv);
	if (v->sgt) {
		dma_buf_unmap_attachment(v->attach, v->sgt, DMA_BIDIRECTIONAL);
		v->sgt = NULL;
		vdi_check_unmapped(v);
	}
}

static void vdi_move_notify(struct dma_buf_attachment *attach)
{
	struct vdi *v = attach->importer_priv;

	atomic64_inc(&v->move_notify);
	if (v->watch) {
		u16 cmd = 0;
		u32 w;

		pci_read_config_word(v->watch, PCI_COMMAND, &cmd);
		w = VDI_WATCH_SAMPLED |
		    (pci_is_enabled(v->watch) ? VDI_WATCH_ENABLED : 0) |
		    ((cmd & PCI_COMMAND_MEMORY) ? VDI_WATCH_MEMORY : 0);
		WRITE_ONCE(v->watched, w);
		if (v->sgt)
			WRITE_ONCE(v->watched_revoke, w);
	}
	if (v->sgt && v->fence_delay_ms)
		vdi_add_fence(v);
	if (v->sgt && v->lazy_unmap) {
		schedule_delayed_work(&v->unmap_work,
				      msecs_to_jiffies(VDI_LAZY_UNMAP_MS));
		return;
	}
	vdi_unmap_locked(v);
}

/* VDI_LAZY_UNMAP: the unmap that move_notify left for later. */
static void vdi_unmap_work(struct work_struct *work)
{
	struct vdi *v = container_of(to_delayed_work(work), struct vdi,
				     unmap_work);

	dma_resv_lock(v->dmabuf->resv, NULL);
	vdi_unmap_locked(v);
	dma_resv_unlock(v->dmabuf->resv);
}

static const struct dma_buf_attach_ops vdi_p2p_ops = {
	.allow_peer2peer = true,
	.move_notify = vdi_move_notify,
};

static const struct dma_buf_attach_ops vdi_no_p2p_ops = {
	.allow_peer2peer = false,
	.move_notify = vdi_move_notify,
};

/* Finds a PCI device by "dddd:bb:dd.f"; returns it with a reference. */
static struct pci_dev *vdi_pci_get(char *bdf, size_t len)
{
	unsigned int domain, bus, slot, fn;

	bdf[len - 1] = 0;
	if (sscanf(bdf, "%x:%x:%x.%x", &domain, &bus, &slot, &fn) != 4)
		return NULL;
	return pci_get_domain_bus_and_slot(domain, bus, PCI_DEVFN(slot, fn));
}

static void vdi_detach(struct vdi *v)
{
	if (!v->attach)
		return;
	dma_resv_lock(v->dmabuf->resv, NULL);
	vdi_unmap_locked(v);
	dma_resv_unlock(v->dmabuf->resv);
	/* with nothing mapped, move_notify leaves no unmap for later */
	cancel_delayed_work_sync(&v->unmap_work);
	dma_buf_detach(v->dmabuf, v->attach);
	dma_buf_put(v->dmabuf);
	v->attach = NULL;
	v->dmabuf = NULL;
	if (v->pdev) {
		if (v->limits_saved) {
			dma_set_max_seg_size(&v->pdev->dev, v->saved_max_seg);
			dma_set_seg_boundary(&v->pdev->dev, v->saved_boundary);
			v->limits_saved = false;
		}
		pci_dev_put(v->pdev);
		v->pdev = NULL;
	}
}

static u64 vdi_dma_mask(u32 flags)
{
	if (flags & VDI_DMA24)
		return DMA_BIT_MASK(24);
	if (flags & VDI_DMA32)
		return DMA_BIT_MASK(32);
	return DMA_BIT_MASK(64);
}

static int vdi_attach(struct vdi *v, struct vdi_attach __user *uarg)
{
	struct dma_buf_attachment *attach;
	struct vdi_attach a;
	struct device *dev;
	int ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags & ~(VDI_STATIC | VDI_NO_P2P | VDI_NON_PCI | VDI_DMA32 |
			VDI_DMA24 | VDI_CHECK_UNMAP | VDI_LAZY_UNMAP))
		return -EINVAL;
	if (v->attach)
		return -EBUSY;

	if (a.flags & VDI_NON_PCI) {
		dev = vdi_misc.this_device;
	} else {
		v->pdev = vdi_pci_get(a.bdf, sizeof(a.bdf));
		if (!v->pdev)
			return -ENODEV;
		dev = &v->pdev->dev;
		/* what a driver does at probe; a driver's own device keeps its */
		device_lock(dev);
		ret = dev->driver ? 0 : dma_set_mask(dev, vdi_dma_mask(a.flags));
		device_unlock(dev);
		if (ret)
			goto err_pdev;
	}

	v->dmabuf = dma_buf_get(a.fd);
	if (IS_ERR(v->dmabuf)) {
		ret = PTR_ERR(v->dmabuf);
		goto err_pdev;
	}

	if (a.flags & VDI_STATIC)
		attach = dma_buf_attach(v->dmabuf, dev);
	else
		attach = dma_buf_dynamic_attach(v->dmabuf, dev,
						(a.flags & VDI_NO_P2P) ?
						&vdi_no_p2p_ops : &vdi_p2p_ops,
						v);
	if (IS_ERR(attach)) {
		ret = PTR_ERR(attach);
		goto err_put;
	}
	v->attach = attach;
	v->check_unmap = a.flags & VDI_CHECK_UNMAP;
	v->lazy_unmap = a.flags & VDI_LAZY_UNMAP;
	return 0;

err_put:
	dma_buf_put(v->dmabuf);
err_pdev:
	v->dmabuf = NULL;
	pci_dev_put(v->pdev);
	v->pdev = NULL;
	return ret;
}

/* Most segments returned by one VDI_IOC_MAP. */
#define VDI_MAX_SEGMENTS	(1024 * 1024)

/* Fills @seg->phys and @seg->pages_ok (see struct vdi_segment). */
static void vdi_translate(struct vdi *v, struct iommu_domain *domain,
			  struct vdi_segment *seg)
{
	u64 off, pages = seg->len >> PAGE_SHIFT;
	struct pci_bus_region region;
	struct resource res;

	seg->pages_ok = 0;
	if (seg->bus_addr) {
		/* a bus address is a CPU address only through the windows */
		if (!v->pdev)
			return;
		region.start = seg->addr;
		region.end = seg->addr + seg->len - 1;
		pcibios_bus_to_resource(v->pdev->bus, &res, &region);
		seg->phys = res.start;
		if (resource_size(&res) == seg->len)
			seg->pages_ok = pages;
		return;
	}
	if (!domain) {
		seg->phys = seg->addr;
		seg->pages_ok = pages;
		return;
	}
	seg->phys = iommu_iova_to_phys(domain, seg->addr);
	for (off = 0; off < seg->len; off += PAGE_SIZE) {
		if (iommu_iova_to_phys(domain, seg->addr + off) != seg->phys + off)
			break;
		seg->pages_ok++;
		cond_resched();
	}
}

static int vdi_map(struct vdi *v, struct vdi_map __user *uarg)
{
	struct iommu_domain *domain;
	struct vdi_segment *segs;
	struct scatterlist *sg;
	struct vdi_map m;
	unsigned int i, n;
	int ret = 0;

	if (!v->attach)
		return -ENOTCONN;
	if (copy_from_user(&m, uarg, sizeof(m)))
		return -EFAULT;
	m.max = min(m.max, VDI_MAX_SEGMENTS);
	/* Filled under the reservation lock, copied out after it. */
	segs = kvcalloc(m.max ?: 1, sizeof(*segs), GFP_KERNEL);
	if (!segs)
		return -ENOMEM;

	dma_resv_lock(v->dmabuf->resv, NULL);
	if (v->sgt) {
		ret = -EBUSY;
		goto unlock;
	}
	v->sgt = dma_buf_map_attachment(v->attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(v->sgt)) {
		ret = PTR_ERR(v->sgt);
		v->sgt = NULL;
		goto unlock;
	}
	vdi_hold_ranges(v);
	domain = vdi_domain(v);
	m.nents = v->sgt->nents;
	for_each_sgtable_dma_sg(v->sgt, sg, i) {
		if (i >= m.max)
			break;
		segs[i].addr = sg_dma_address(sg);
		segs[i].len = sg_dma_len(sg);
		segs[i].bus_addr = sg_dma_is_bus_address(sg);
		vdi_translate(v, domain, &segs[i]);
	}
unlock:
	dma_resv_unlock(v->dmabuf->resv);
	if (!ret) {
		n = min(m.nents, m.max);
		if (copy_to_user(u64_to_user_ptr(m.segments), segs,
				 (size_t)n * sizeof(*segs)) ||
		    copy_to_user(uarg, &m, sizeof(m)))
			ret = -EFAULT;
	}
	kvfree(segs);
	return ret;
}

/* Most pages VDI_IOC_PAGES returns. */
#define VDI_MAX_PAGES	(4 * 1024 * 1024)

/* The CPU physical address behind DMA address @addr (see VDI_IOC_PAGES). */
static u64 vdi_page_phys(struct vdi *v, struct iommu_domain *domain, u64 addr,
			 bool bus)
{
	struct pci_bus_region region = { addr, addr + PAGE_SIZE - 1 };
	struct resource res;

	if (bus) {
		if (!v->pdev)
			return 0;
		pcibios_bus_to_resource(v->pdev->bus, &res, &region);
		return res.start;
	}
	return domain ? iommu_iova_to_phys(domain, addr) : addr;
}

static int vdi_pages(struct vdi *v, struct vdi_pages __user *uarg)
{
	struct iommu_domain *domain;
	struct scatterlist *sg;
	struct vdi_pages p;
	unsigned int i;
	u64 *phys, off;
	int ret = 0;

	if (!v->attach)
		return -ENOTCONN;
	if (copy_from_user(&p, uarg, sizeof(p)))
		return -EFAULT;
	p.max = min(p.max, VDI_MAX_PAGES);
	phys = kvcalloc(p.max ?: 1, sizeof(*phys), GFP_KERNEL);
	if (!phys)
		return -ENOMEM;

	dma_resv_lock(v->dmabuf->resv, NULL);
	if (!v->sgt) {
		ret = -ENXIO;
		goto unlock;
	}
	domain = vdi_domain(v);
	p.count = 0;
	for_each_sgtable_dma_sg(v->sgt, sg, i) {
		for (off = 0; off < sg_dma_len(sg); off += PAGE_SIZE, p.count++)
			if (p.count < p.max)
				phys[p.count] = vdi_page_phys(v, domain,
							      sg_dma_address(sg) + off,
							      sg_dma_is_bus_address(sg));
		cond_resched();
	}
unlock:
	dma_resv_unlock(v->dmabuf->resv);
	if (!ret &&
	    (copy_to_user(u64_to_user_ptr(p.phys), phys,
			  (size_t)min(p.count, p.max) * sizeof(*phys)) ||
	     copy_to_user(uarg, &p, sizeof(p))))
		ret = -EFAULT;
	kvfree(phys);
	return ret;
}

static int vdi_set_limits(struct vdi *v, struct vdi_limits __user *uarg)
{
	struct vdi_limits l;

	if (!v->pdev)
		return -ENOTCONN;
	if (copy_from_user(&l, uarg, sizeof(l)))
		return -EFAULT;
	if (!v->limits_saved) {
		v->saved_max_seg = dma_get_max_seg_size(&v->pdev->dev);
		v->saved_boundary = dma_get_seg_boundary(&v->pdev->dev);
		v->limits_saved = true;
	}
	if (!v->pdev->dev.dma_parms)
		return -EIO;
	dma_set_max_seg_size(&v->pdev->dev, l.max_seg);
	dma_set_seg_boundary(&v->pdev->dev, l.boundary_mask);
	return 0;
}

static int vdi_claim(struct vdi *v, struct vdi_claim __user *uarg)
{
	struct vdi_claim c;

	if (copy_from_user(&c, uarg, sizeof(c)))
		return -EFAULT;
	if (v->claim)
		return -EBUSY;
	v->claim = request_mem_region(c.phys, c.len, "vfio_dmabuf_importer");
	return v->claim ? 0 : -EBUSY;
}

static int vdi_watch(struct vdi *v, char __user *uarg)
{
	char bdf[32];

	if (copy_from_user(bdf, uarg, sizeof(bdf)))
		return -EFAULT;
	if (v->watch)
		return -EBUSY;
	v->watch = vdi_pci_get(bdf, sizeof(bdf));
	return v->watch ? 0 : -ENODEV;
}

/*
 * QEMU's edu device (1234:11e8): one DMA engine that copies up to 4 KiB (less: see VDI_DMA_MAX)
 * between a bus address and a buffer inside the device, which sits at
 * device address EDU_BUF.  The CPU cannot reach that buffer: data goes
 * through a coherent staging buffer in RAM, one more transfer each way.
 */
#define EDU_DMA_SRC	0x80
#define EDU_DMA_DST	0x88
#define EDU_DMA_CNT	0x90
#define EDU_DMA_CMD	0x98
#define EDU_CMD_RUN	0x1
#define EDU_CMD_TO_PCI	0x2	/* device buffer -> bus address */
#define EDU_BUF		0x40000

struct vdi_edu {
	void __iomem *mmio;
	void *stage;			/* VDI_DMA_MAX bytes, coherent */
	dma_addr_t stage_dma;
};

static struct pci_driver vdi_edu_driver;

/* One transfer; edu runs it 100 ms (virtual clock) after the command. */
static int vdi_edu_xfer(struct vdi_edu *e, u64 src, u64 dst, u64 len,
			u32 cmd)
{
	unsigned long timeout = jiffies + 10 * HZ;

	writeq(src, e->mmio + EDU_DMA_SRC);
	writeq(dst, e->mmio + EDU_DMA_DST);
	writeq(len, e->mmio + EDU_DMA_CNT);
	writeq(cmd | EDU_CMD_RUN, e->mmio + EDU_DMA_CMD);
	while (readq(e->mmio + EDU_DMA_CMD) & EDU_CMD_RUN) {
		if (time_after(jiffies, timeout))
			return -ETIMEDOUT;
		usleep_range(5000, 10000);
	}
	return 0;
}

/*
 * Moves @d->len bytes between the edu buffer (from offset 0) and the
 * dma-buf bytes from @d->offset, through the segments of @sgt, or to the
 * raw DMA address @d->offset when @sgt is NULL.
 */
static int vdi_edu_pieces(struct vdi_edu *e, struct sg_table *sgt,
			  const struct vdi_dma *d)
{
	u32 cmd = (d->flags & VDI_DMA_WRITE) ? EDU_CMD_TO_PCI : 0;
	u64 off = d->offset, done = 0, seg_start = 0;
	struct scatterlist *sg;
	unsigned int i;
	int ret;

	if (!sgt)
		return vdi_edu_xfer(e, cmd ? EDU_BUF : off, cmd ? off : EDU_BUF,
				    d->len, cmd);
	for_each_sgtable_dma_sg(sgt, sg, i) {
		u64 seg_len = sg_dma_len(sg), n, addr;

		if (off >= seg_start + seg_len) {
			seg_start += seg_len;
			continue;
		}
		addr = sg_dma_address(sg) + (off - seg_start);
		n = min(d->len - done, seg_start + seg_len - off);
		ret = vdi_edu_xfer(e, cmd ? EDU_BUF + done : addr,
				   cmd ? addr : EDU_BUF + done, n, cmd);
		if (ret)
			return ret;
		done += n;
		off += n;
		seg_start += seg_len;
		if (done == d->len)
			return 0;
	}
	return -EINVAL;		/* past the end of the buffer */
}

static int vdi_dma(struct vdi *v, struct vdi_dma __user *uarg)
{
	void __user *user;
	struct vdi_edu *e;
	struct vdi_dma d;
	int ret;

	if (copy_from_user(&d, uarg, sizeof(d)))
		return -EFAULT;
	if ((d.flags & ~(VDI_DMA_WRITE | VDI_DMA_RAW)) || d.pad ||
	    !d.len || d.len > VDI_DMA_MAX)
		return -EINVAL;
	if (!v->attach || !v->pdev)
		return -ENOTCONN;
	user = u64_to_user_ptr(d.user);

	device_lock(&v->pdev->dev);
	if (v->pdev->dev.driver != &vdi_edu_driver.driver) {
		ret = -EOPNOTSUPP;	/* not a device this module drives */
		goto unlock_dev;
	}
	e = pci_get_drvdata(v->pdev);
	if (d.flags & VDI_DMA_WRITE) {
		if (copy_from_user(e->stage, user, d.len)) {
			ret = -EFAULT;
			goto unlock_dev;
		}
		ret = vdi_edu_xfer(e, e->stage_dma, EDU_BUF, d.len, 0);
		if (ret)
			goto unlock_dev;
	}
	if (d.flags & VDI_DMA_RAW) {
		ret = vdi_edu_pieces(e, NULL, &d);
	} else {
		/* The mapping stays while the DMA runs: move_notify waits. */
		dma_resv_lock(v->dmabuf->resv, NULL);
		ret = v->sgt ? vdi_edu_pieces(e, v->sgt, &d) : -ENXIO;
		dma_resv_unlock(v->dmabuf->resv);
	}
	if (ret || (d.flags & VDI_DMA_WRITE))
		goto unlock_dev;
	ret = vdi_edu_xfer(e, EDU_BUF, e->stage_dma, d.len, EDU_CMD_TO_PCI);
	if (!ret && copy_to_user(user, e->stage, d.len))
		ret = -EFAULT;
unlock_dev:
	device_unlock(&v->pdev->dev);
	return ret;
}

static long vdi_vmap(int __user *uarg)
{
	struct iosys_map map;
	struct dma_buf *dmabuf;
	int fd, ret;

	if (get_user(fd, uarg))
		return -EFAULT;
	dmabuf = dma_buf_get(fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	ret = dma_buf_vmap_unlocked(dmabuf, &map);
	if (!ret)
		dma_buf_vunmap_unlocked(dmabuf, &map);
	dma_buf_put(dmabuf);
	return ret;
}

static long vdi_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct vdi *v = file->private_data;
	void __user *uarg = (void __user *)arg;
	struct vdi_info info = {};
	struct vdi_fence fence;
	long ret = 0;

	mutex_lock(&v->lock);
	switch (cmd) {
	case VDI_IOC_ATTACH:
		ret = vdi_attach(v, uarg);
		break;
	case VDI_IOC_MAP:
		ret = vdi_map(v, uarg);
		break;
	case VDI_IOC_UNMAP:
		if (!v->attach) {
			ret = -ENOTCONN;
			break;
		}
		dma_resv_lock(v->dmabuf->resv, NULL);
		if (!v->sgt)
			ret = -ENOENT;
		vdi_unmap_locked(v);
		dma_resv_unlock(v->dmabuf->resv);
		break;
	case VDI_IOC_DETACH:
		if (!v->attach)
			ret = -ENOTCONN;
		vdi_detach(v);
		break;
	case VDI_IOC_INFO:
		info.move_notify = atomic64_read(&v->move_notify);
		info.fences_signalled = atomic_read(&v->fences_signalled);
		info.watched = READ_ONCE(v->watched);
		info.watched_revoke = READ_ONCE(v->watched_revoke);
		info.unmap_checked = atomic64_read(&v->unmap_checked);
		info.unmap_stale = atomic64_read(&v->unmap_stale);
		if (v->attach) {
			dma_resv_lock(v->dmabuf->resv, NULL);
			info.mapped = !!v->sgt;
			dma_resv_unlock(v->dmabuf->resv);
		}
		if (copy_to_user(uarg, &info, sizeof(info)))
			ret = -EFAULT;
		break;
	case VDI_IOC_SET_LIMITS:
		ret = vdi_set_limits(v, uarg);
		break;
	case VDI_IOC_SET_FENCE:
		if (copy_from_user(&fence, uarg, sizeof(fence)))
			ret = -EFAULT;
		else
			WRITE_ONCE(v->fence_delay_ms, fence.delay_ms);
		break;
	case VDI_IOC_CLAIM:
		ret = vdi_claim(v, uarg);
		break;
	case VDI_IOC_WATCH:
		ret = vdi_watch(v, uarg);
		break;
	case VDI_IOC_DMA:
		ret = vdi_dma(v, uarg);
		break;
	case VDI_IOC_PAGES:
		ret = vdi_pages(v, uarg);
		break;
	case VDI_IOC_VMAP:
		ret = vdi_vmap(uarg);
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&v->lock);
	return ret;
}

static int vdi_open(struct inode *inode, struct file *file)
{
	struct vdi *v = kzalloc(sizeof(*v), GFP_KERNEL);

	if (!v)
		return -ENOMEM;
	mutex_init(&v->lock);
	atomic64_set(&v->move_notify, 0);
	v->fence_context = dma_fence_context_alloc(1);
	INIT_DELAYED_WORK(&v->fence_work, vdi_fence_work);
	INIT_DELAYED_WORK(&v->unmap_work, vdi_unmap_work);
	file->private_data = v;
	return 0;
}

static int vdi_release(struct inode *inode, struct file *file)
{
	struct vdi *v = file->private_data;

	vdi_detach(v);
	flush_delayed_work(&v->fence_work);
	if (v->claim)
		release_mem_region(v->claim->start, resource_size(v->claim));
	pci_dev_put(v->watch);
	mutex_destroy(&v->lock);
	kfree(v);
	return 0;
}

static const struct file_operations vdi_fops = {
	.owner = THIS_MODULE,
	.open = vdi_open,
	.release = vdi_release,
	.unlocked_ioctl = vdi_ioctl,
};

static struct miscdevice vdi_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vfio_dmabuf_importer",
	.fops = &vdi_fops,
};

static int vdi_edu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct vdi_edu *e;
	int ret;

	e = devm_kzalloc(&pdev->dev, sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	e->mmio = pcim_iomap_region(pdev, 0, "vfio_dmabuf_importer");
	if (IS_ERR(e->mmio))
		return PTR_ERR(e->mmio);
	/* QEMU is started with the device's dma_mask at 64 bits */
	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;
	e->stage = dmam_alloc_coherent(&pdev->dev, VDI_DMA_MAX, &e->stage_dma,
				       GFP_KERNEL);
	if (!e->stage)
		return -ENOMEM;
	pci_set_master(pdev);
	pci_set_drvdata(pdev, e);
	pci_info(pdev, "edu DMA engine of the test importer\n");
	return 0;
}

static void vdi_edu_remove(struct pci_dev *pdev)
{
	pci_clear_master(pdev);
}

static const struct pci_device_id vdi_edu_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ }
};
MODULE_DEVICE_TABLE(pci, vdi_edu_ids);

static struct pci_driver vdi_edu_driver = {
	.name = "vfio_dmabuf_importer_edu",
	.id_table = vdi_edu_ids,
	.probe = vdi_edu_probe,
	.remove = vdi_edu_remove,
};

static int __init vdi_init(void)
{
	int ret = misc_register(&vdi_misc);

	if (ret)
		return ret;
	ret = pci_register_driver(&vdi_edu_driver);
	if (ret)
		misc_deregister(&vdi_misc);
	return ret;
}
module_init(vdi_init);

static void __exit vdi_exit(void)
{
	pci_unregister_driver(&vdi_edu_driver);
	misc_deregister(&vdi_misc);
}
module_exit(vdi_exit);

MODULE_DESCRIPTION("Test importer for the vfio-pci dma-buf exporter");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(DMA_BUF);
