// SPDX-License-Identifier: GPL-2.0

//! rloop: the loop block driver, in Rust.
//!
//! A drop-in for `drivers/block/loop.ko`: the module is called `loop`, owns
//! block major 7 and `/dev/loop-control` (misc minor 237), and speaks the
//! `linux/loop.h` ABI.
//!
//! Layout: [`sys`] is the wrapper layer, the only place with `unsafe`; the
//! rest is driver logic. [`uapi`] and [`params`] are pure and host-tested.

mod control;
mod device;
pub mod direct_io;
mod io;
mod io_stats;
pub mod params;
pub mod sys;
pub mod uapi;

use kernel::{c_str, prelude::*, sync::Arc};

use control::Control;
use device::NowaitConfig;
use params::Layout;
use sys::{blk::BlkdevMajor, misc::MiscRegistration};

module! {
    type: LoopModule,
    name: "loop",
    authors: ["rloop developers"],
    description: "Loopback device support",
    license: "GPL",
    alias: ["block-major-7-*", "char-major-10-237", "devname:loop-control"],
    params: {
        max_loop: i32 {
            default: crate::params::MIN_COUNT,
            description: "Maximum number of loop devices",
        },
        max_part: i32 {
            default: 0,
            description: "Maximum number of partitions per loop device",
        },
        hw_queue_depth: i32 {
            default: crate::params::DEFAULT_HW_QUEUE_DEPTH,
            description: "Queue depth for each hardware queue. Default: 128",
        },
        nr_hw_queues: i32 {
            default: 1,
            description: "Hardware queues per device (0: one per CPU). Default: 1",
        },
        nowait: u32 {
            default: 1,
            description: "Submit direct I/O from queue_rq with IOCB_NOWAIT first, and small buffered reads from the page cache (0: always via the worker). Default: 1",
        },
        nowait_depth: u32 {
            default: 1,
            description: "Try IOCB_NOWAIT only while a hardware queue holds at most this many requests, and at most this many such submissions are in flight per device; the rest go to the worker (0: no limit). Default: 1",
        },
    },
}

/// The module: `/dev/loop-control`, the block major and the devices.
///
/// `PinnedDrop` unregisters the major first, so that no probe can add a
/// device while it removes them all, as `loop_exit()` does. No control ioctl
/// can run then: an open `/dev/loop-control` holds a module reference.
#[pin_data(PinnedDrop)]
struct LoopModule {
    #[pin]
    control_dev: MiscRegistration<Control>,
    major: Option<BlkdevMajor<Control>>,
    control: Arc<Control>,
}

impl kernel::InPlaceModule for LoopModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // SAFETY: Once, here, before any device exists.
            unsafe { device::init_chain_lock() };
            let max_loop = module_parameters::max_loop.value();
            let layout = Layout::new(
                max_loop,
                module_parameters::max_part.value(),
                module_parameters::hw_queue_depth.value(),
            )
            .and_then(|l| {
                l.with_hw_queues(
                    module_parameters::nr_hw_queues.value(),
                    kernel::cpu::nr_cpu_ids(),
                )
            })
            .map_err(|_| EINVAL)?;
            // The module! parameters cannot tell "given" from "default", so a
            // value other than the default counts as given.
            let control = Control::new(
                layout,
                max_loop != params::MIN_COUNT,
                NowaitConfig {
                    on: module_parameters::nowait.value() != 0,
                    depth: module_parameters::nowait_depth.value(),
                },
            )?;
            sys::blk::sysfs_register::<device::LoopDevice>();
            Ok(try_pin_init!(Self {
                control_dev <- MiscRegistration::register(
                    c_str!("loop-control"),
                    uapi::LOOP_CTRL_MINOR,
                    control.clone(),
                ),
                major: Some(
                    BlkdevMajor::register(uapi::LOOP_MAJOR, c_str!("loop"), control.clone())
                        .map_err(|_| EIO)?,
                ),
                control,
            })
            .pin_chain(move |this| {
                // As loop_init(): pre-create max_loop devices; one that cannot
                // be added is skipped.
                for i in 0..max_loop as u32 {
                    let _ = this.control.add(Some(i));
                }
                pr_info!("module loaded\n");
                Ok(())
            }))
        })
    }
}

#[pinned_drop]
impl PinnedDrop for LoopModule {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        drop(this.major.take());
        this.control.remove_all();
    }
}
