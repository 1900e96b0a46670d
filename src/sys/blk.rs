// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers for the block layer pieces a loop driver needs and the
//! kernel crate's `block::mq` does not offer: a tag set whose queue and disk
//! data is an [`Arc`](kernel::sync::Arc) of the driver's device object, a
//! disk with a fixed major, chosen minors and `block_device_operations`
//! (open, release, ioctl), the registration of a block major with a probe
//! callback, and a request that moves between contexts (kiocb, work item,
//! page wait, list) with its ownership.
//!
//! One kernel object per file, as `rust/kernel/block/mq/`.
//!
//! C headers: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h),
//! [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h).

mod bdev;
mod cached_read;
mod cmd;
mod disk;
mod issuer;
mod kiocb;
mod limits;
mod major;
mod operations;
mod request;
mod request_list;
mod sysfs;
mod tag_set;
mod work;

pub use bdev::{BdevClaim, BdevRef, OpenMode};
pub use disk::{driver_behind, Disk, DiskParams, DiskRef, QueueFreeze};
pub use issuer::IssuerScope;
pub use kiocb::DirectMode;
pub use limits::{Limits, LimitsUpdate};
pub use major::{BlkdevMajor, Probe};
pub use operations::{DiskDriver, QueueOperations};
pub use request::{BlkStatus, ReqOp, Request};
pub use request_list::{RequestBatch, RequestList};
pub use sysfs::{sysfs_register, DiskSysfs, SysfsAttr, SysfsValue};
pub use tag_set::{tag_set_flags, TagSet};
