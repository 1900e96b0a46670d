// SPDX-License-Identifier: GPL-2.0

//! The `loop/` sysfs directory of a bound device.

use core::sync::atomic::Ordering;
use kernel::{prelude::*, sync::ArcBorrow};

use super::{LoopDevice, State};
use crate::sys::blk::{DiskSysfs, SysfsAttr, SysfsValue};
use crate::uapi;

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
        })
    }

    fn store(this: ArcBorrow<'_, Self>, attr: SysfsAttr, input: &[u8]) -> Result {
        match attr {
            SysfsAttr::Nowait => {
                let on = crate::params::parse_switch(input).ok_or(EINVAL)?;
                this.nowait.store(on, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(EACCES),
        }
    }
}
