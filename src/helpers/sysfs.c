// SPDX-License-Identifier: GPL-2.0
/* The sysfs "loop/" attribute group of a bound device. */
#include "helpers.h"

/*
 * The sysfs "loop/" group of a bound device. Rust cannot yet define static
 * device_attribute tables, so the table is here; every show goes to the
 * Rust callback registered with rloop_sysfs_set_show().
 */
static ssize_t (*rloop_attr_show_fn)(void *private_data, int which, char *buf);
static ssize_t (*rloop_attr_store_fn)(void *private_data, int which, const char *buf,
				      size_t count);

void rloop_sysfs_set_show(ssize_t (*show)(void *private_data, int which, char *buf));
void rloop_sysfs_set_store(ssize_t (*store)(void *private_data, int which, const char *buf,
					    size_t count));
int rloop_disk_sysfs_add(struct gendisk *disk);
void rloop_disk_sysfs_remove(struct gendisk *disk);

void rloop_sysfs_set_show(ssize_t (*show)(void *private_data, int which, char *buf))
{
	rloop_attr_show_fn = show;
}

void rloop_sysfs_set_store(ssize_t (*store)(void *private_data, int which, const char *buf,
					    size_t count))
{
	rloop_attr_store_fn = store;
}

#define RLOOP_ATTR_SHOW(_name, _which)						\
static ssize_t rloop_attr_##_name##_show(struct device *dev,		\
		struct device_attribute *attr, char *buf)			\
{									\
	return rloop_attr_show_fn(dev_to_disk(dev)->private_data, _which, buf); \
}

#define RLOOP_ATTR_RO(_name, _which)						\
RLOOP_ATTR_SHOW(_name, _which)							\
static struct device_attribute rloop_attr_##_name =			\
	__ATTR(_name, 0444, rloop_attr_##_name##_show, NULL)

#define RLOOP_ATTR_RW(_name, _which)						\
RLOOP_ATTR_SHOW(_name, _which)							\
static ssize_t rloop_attr_##_name##_store(struct device *dev,		\
		struct device_attribute *attr, const char *buf, size_t count)	\
{									\
	return rloop_attr_store_fn(dev_to_disk(dev)->private_data, _which, \
				   buf, count);				\
}									\
static struct device_attribute rloop_attr_##_name =			\
	__ATTR(_name, 0644, rloop_attr_##_name##_show, rloop_attr_##_name##_store)

/* The indices are those of sys::blk::SysfsAttr. */
RLOOP_ATTR_RO(backing_file, 0);
RLOOP_ATTR_RO(offset, 1);
RLOOP_ATTR_RO(sizelimit, 2);
RLOOP_ATTR_RO(autoclear, 3);
RLOOP_ATTR_RO(partscan, 4);
RLOOP_ATTR_RO(dio, 5);
RLOOP_ATTR_RW(nowait, 6);
RLOOP_ATTR_RW(nowait_depth, 7);
RLOOP_ATTR_RW(nr_hw_queues, 8);

static struct attribute *rloop_attrs[] = {
	&rloop_attr_backing_file.attr,
	&rloop_attr_offset.attr,
	&rloop_attr_sizelimit.attr,
	&rloop_attr_autoclear.attr,
	&rloop_attr_partscan.attr,
	&rloop_attr_dio.attr,
	&rloop_attr_nowait.attr,
	&rloop_attr_nowait_depth.attr,
	&rloop_attr_nr_hw_queues.attr,
	NULL,
};

static const struct attribute_group rloop_attr_group = {
	.name = "loop",
	.attrs = rloop_attrs,
};

int rloop_disk_sysfs_add(struct gendisk *disk)
{
	return sysfs_create_group(&disk_to_dev(disk)->kobj, &rloop_attr_group);
}

void rloop_disk_sysfs_remove(struct gendisk *disk)
{
	sysfs_remove_group(&disk_to_dev(disk)->kobj, &rloop_attr_group);
}
