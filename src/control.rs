// SPDX-License-Identifier: GPL-2.0

//! `/dev/loop-control` and the registry of loop devices by index:
//! `LOOP_CTL_ADD`, `LOOP_CTL_REMOVE`, `LOOP_CTL_GET_FREE`, and the creation of
//! devices on open of a `/dev/loopN` node that has none (the block probe).

use kernel::{
    debugfs::Dir,
    new_mutex, pr_warn_once,
    prelude::*,
    sync::{Arc, Mutex},
};

use crate::device::{LoopDevice, NowaitConfig, Phase};
use crate::params::{self, Layout};
use crate::sys::{blk::Probe, misc::MiscIoctl};
use crate::uapi;

/// A registry entry, kept sorted by index.
struct Slot {
    index: u32,
    dev: Arc<LoopDevice>,
    /// False while the device is being added or checked for removal, as
    /// `idr_visible` in C: such a device is neither free nor removable.
    visible: bool,
}

/// The loop devices of the module, by index.
#[pin_data]
pub(crate) struct Control {
    layout: Layout,
    /// How new devices use `NOWAIT` submission (the `nowait` and
    /// `nowait_depth` parameters).
    nowait: NowaitConfig,
    /// The module's debugfs directory, `loop/`, with one per device.
    debugfs: Dir,
    /// Whether `max_loop` was given and limits probes (see `params`).
    max_loop_specified: bool,
    #[pin]
    slots: Mutex<KVec<Slot>>,
}

impl Control {
    /// Makes an empty registry.
    pub(crate) fn new(
        layout: Layout,
        max_loop_specified: bool,
        nowait: NowaitConfig,
    ) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                layout,
                nowait,
                debugfs: Dir::new(c"loop"),
                max_loop_specified,
                slots <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )
    }

    /// Adds `loop<index>`, or the lowest free index when `index` is `None`;
    /// returns the index. `EEXIST` if the index is taken.
    pub(crate) fn add(&self, index: Option<u32>) -> Result<u32> {
        let dev = {
            let mut slots = self.slots.lock();
            let (index, pos) = match index {
                Some(i) => match slots.binary_search_by_key(&i, |s| s.index) {
                    Ok(_) => return Err(EEXIST),
                    Err(pos) => (i, pos),
                },
                None => lowest_free(&slots),
            };
            // Refuse what add_disk would refuse, before allocating anything.
            self.layout.first_minor(index).ok_or(EINVAL)?;
            slots.reserve(1, GFP_KERNEL)?;
            let dev = LoopDevice::new(index, &self.layout, &self.debugfs, self.nowait)?;
            let slot = Slot {
                index,
                dev: dev.clone(),
                visible: false,
            };
            slots
                .insert_within_capacity(pos, slot)
                .map_err(|_| ENOMEM)?;
            dev
        };
        // add_disk runs unlocked: it opens the disk for partition scanning
        // and sends uevents.
        let added = dev.add_disk(&self.layout);
        let mut slots = self.slots.lock();
        let pos = position(&slots, dev.index()).ok_or(EINVAL)?;
        match added {
            Ok(()) => {
                slots[pos].visible = true;
                Ok(dev.index())
            }
            Err(e) => {
                slots.remove(pos)?;
                Err(e)
            }
        }
    }

    /// Removes `loop<index>` if it is unbound and not open.
    pub(crate) fn remove(&self, index: u32) -> Result {
        let dev = {
            let mut slots = self.slots.lock();
            let pos = position(&slots, index).ok_or(ENODEV)?;
            if !slots[pos].visible {
                return Err(ENODEV);
            }
            slots[pos].visible = false;
            slots[pos].dev.clone()
        };
        let disk = match dev.start_removal() {
            Ok(disk) => disk,
            Err(e) => {
                let mut slots = self.slots.lock();
                if let Some(pos) = position(&slots, index) {
                    slots[pos].visible = true;
                }
                return Err(e);
            }
        };
        // del_gendisk and put_disk, with no lock held; then the work items
        // of its requests return, and `dev` may be the last reference.
        drop(disk);
        dev.flush_workers();
        let mut slots = self.slots.lock();
        if let Some(pos) = position(&slots, index) {
            slots.remove(pos)?;
        }
        Ok(())
    }

    /// The index of a visible unbound device, adding one if there is none.
    pub(crate) fn get_free(&self) -> Result<u32> {
        {
            let slots = self.slots.lock();
            if let Some(s) = slots
                .iter()
                .find(|s| s.visible && s.dev.phase() == Phase::Unbound)
            {
                return Ok(s.index);
            }
        }
        self.add(None)
    }

    /// Removes every device, for module exit. Nothing can open a device
    /// now: each open holds a reference on the module.
    pub(crate) fn remove_all(&self) {
        loop {
            let Some(slot) = self.slots.lock().pop() else {
                break;
            };
            slot.dev.remove_for_exit();
        }
    }
}

/// Lowest index not in `slots`, and where it goes.
fn lowest_free(slots: &[Slot]) -> (u32, usize) {
    let mut want = 0;
    for (pos, s) in slots.iter().enumerate() {
        if s.index != want {
            return (want, pos);
        }
        want += 1;
    }
    (want, slots.len())
}

fn position(slots: &[Slot], index: u32) -> Option<usize> {
    slots.binary_search_by_key(&index, |s| s.index).ok()
}

impl MiscIoctl for Control {
    type Owner = crate::LocalModule;

    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        let index = params::ctl_index(arg);
        let ret = match cmd {
            uapi::LOOP_CTL_ADD => self.add(index)?,
            uapi::LOOP_CTL_REMOVE => match index {
                // Success is 0, not the index, as in C.
                Some(i) => self.remove(i).map(|()| 0)?,
                None => {
                    pr_warn_once!("deleting an unspecified loop device is not supported.\n");
                    return Err(EINVAL);
                }
            },
            uapi::LOOP_CTL_GET_FREE => self.get_free()?,
            _ => return Err(ENOSYS),
        };
        Ok(ret as isize)
    }
}

impl Probe for Control {
    fn probe(&self, minor: u32) {
        if let Some(index) = self.layout.probe_index(minor, self.max_loop_specified) {
            // As loop_probe(): an existing device or a failure leaves the
            // open to find no disk.
            let _ = self.add(Some(index));
        }
    }
}
