// SPDX-License-Identifier: GPL-2.0

//! The `loop/` sysfs directory of a bound device: C's attributes, read
//! only, and rloop's per-device queue settings, writable: `nowait`,
//! `nowait_depth` and `nr_hw_queues`, whose module parameters are the
//! defaults of new devices. The settings stay with the device across
//! detach and attach.

use core::sync::atomic::Ordering;
use kernel::{prelude::*, sync::ArcBorrow};

use super::{LoopDevice, State};
use crate::sys::blk::{DiskSysfs, SysfsAttr, SysfsValue};
use crate::{params, uapi};

impl DiskSysfs for LoopDevice {
    fn show(
        this: ArcBorrow<'_, Self>,
        attr: SysfsAttr,
        emit: &mut dyn FnMut(SysfsValue<'_>) -> isize,
    ) -> Result<isize> {
        let inner = this.inner.lock();
        let b = match &inner.state {
            State::Bound(b) | State::Rundown(b) => Some(b),
            State::Unbound | State::Deleting => None,
        };
        let flag = |f: u32| u64::from(b.is_some_and(|b| b.flags & f != 0));
        Ok(match attr {
            SysfsAttr::BackingFile => match b {
                Some(b) => emit(SysfsValue::Path(&b.file)),
                None => 0,
            },
            SysfsAttr::Offset => emit(SysfsValue::Number(b.map_or(0, |b| b.offset))),
            SysfsAttr::Sizelimit => emit(SysfsValue::Number(b.map_or(0, |b| b.sizelimit))),
            SysfsAttr::Autoclear => emit(SysfsValue::Number(flag(uapi::LO_FLAGS_AUTOCLEAR))),
            SysfsAttr::Partscan => emit(SysfsValue::Number(flag(uapi::LO_FLAGS_PARTSCAN))),
            SysfsAttr::Dio => emit(SysfsValue::Number(flag(uapi::LO_FLAGS_DIRECT_IO))),
            SysfsAttr::Nowait => emit(SysfsValue::Number(u64::from(
                this.nowait.load(Ordering::Relaxed),
            ))),
            SysfsAttr::NowaitDepth => emit(SysfsValue::Number(this.stats.nowait_depth().into())),
            SysfsAttr::NrHwQueues => emit(SysfsValue::Number(this.tag_set.nr_hw_queues().into())),
        })
    }

    fn store(this: ArcBorrow<'_, Self>, attr: SysfsAttr, input: &[u8]) -> Result {
        match attr {
            SysfsAttr::Nowait => {
                let on = params::parse_switch(input).ok_or(EINVAL)?;
                this.nowait.store(on, Ordering::Relaxed);
                Ok(())
            }
            SysfsAttr::NowaitDepth => {
                this.stats
                    .set_nowait_depth(params::parse_u32(input).ok_or(EINVAL)?);
                Ok(())
            }
            SysfsAttr::NrHwQueues => {
                let nr = params::parse_u32(input).ok_or(EINVAL)?;
                let nr = params::hw_queue_count(nr.into(), kernel::cpu::nr_cpu_ids())
                    .map_err(|_| EINVAL)?;
                // Not under the device lock: the block layer serialises
                // the update itself, under locks it takes before a disk's
                // `open_mutex` (in `del_gendisk`), which is taken before
                // the device lock (in `open`). A failed allocation keeps
                // the old number (so may a write racing this one).
                this.tag_set.update_nr_hw_queues(nr);
                if this.tag_set.nr_hw_queues() != nr {
                    return Err(ENOMEM);
                }
                Ok(())
            }
            _ => Err(EACCES),
        }
    }
}
