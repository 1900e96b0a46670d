//! `loopctl storm FILE ROUNDS`: one process of an attach/detach storm.
//!
//! Each round does what util-linux does for `losetup -f FILE`:
//! `LOOP_CTL_GET_FREE`, open that device, `LOOP_CONFIGURE` with FILE, and
//! again from the start when another process was faster (`EBUSY`). It then
//! checks that the device it holds is bound to its own FILE (the inode and
//! device in `LOOP_GET_STATUS64`), writes a block that names the process
//! and the round through the device, reads it back from FILE, and detaches
//! with `LOOP_CLR_FD`. Many of these run at once in the guest test.
//!
//! Prints `ok ROUNDS` when every round ended with its own device, or fails
//! with the step and errno: a clean error is reported, never ignored.

use rloop_host::uapi;
use std::{
    fs::OpenOptions,
    os::{
        fd::AsRawFd,
        unix::fs::{FileExt, MetadataExt},
    },
};

/// How many times one round may lose the race for a free device.
const MAX_LOST_RACES: u32 = 1000;

fn ctl(cmd: u32) -> Result<i64, String> {
    crate::ctl_ioctl(cmd, 0).map_err(|e| format!("LOOP_CTL_GET_FREE: {}", crate::errno_name(e)))
}

/// One round; returns the device number it used.
fn round(path: &str, round: u64) -> Result<i64, String> {
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let meta = backing.metadata().map_err(|e| e.to_string())?;
    let mut lost = 0;
    let (n, dev) = loop {
        let n = ctl(uapi::LOOP_CTL_GET_FREE)?;
        // The node may not exist yet, or the device may be removed between
        // GET_FREE and the open: both are lost races.
        let dev = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/loop{n}"))
        {
            Ok(dev) => dev,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENXIO)) => {
                lost += 1;
                if lost > MAX_LOST_RACES {
                    return Err(format!("open /dev/loop{n}: {e}, {lost} times"));
                }
                std::thread::yield_now();
                continue;
            }
            Err(e) => return Err(format!("open /dev/loop{n}: {e}")),
        };
        let cfg = uapi::LoopConfig {
            fd: backing.as_raw_fd() as u32,
            ..Default::default()
        };
        match crate::ioctl(
            dev.as_raw_fd(),
            uapi::LOOP_CONFIGURE,
            &cfg as *const _ as libc::c_ulong,
        ) {
            Ok(_) => break (n, dev),
            Err(libc::EBUSY) if lost < MAX_LOST_RACES => lost += 1,
            Err(e) => {
                return Err(format!(
                    "LOOP_CONFIGURE loop{n}: {} after {lost} lost races",
                    crate::errno_name(e)
                ))
            }
        }
    };
    let mut info = uapi::LoopInfo64::default();
    crate::ioctl(
        dev.as_raw_fd(),
        uapi::LOOP_GET_STATUS64,
        &mut info as *mut _ as libc::c_ulong,
    )
    .map_err(|e| format!("LOOP_GET_STATUS64 loop{n}: {}", crate::errno_name(e)))?;
    if info.lo_inode != meta.ino() || info.lo_device != meta.dev() {
        return Err(format!(
            "loop{n} is bound to inode {} on {:#x}, not to {path} (inode {} on {:#x})",
            info.lo_inode,
            info.lo_device,
            meta.ino(),
            meta.dev()
        ));
    }
    let mut block = vec![0u8; 4096];
    let stamp = format!("{path} pid {} round {round} loop{n}", std::process::id());
    block[..stamp.len()].copy_from_slice(stamp.as_bytes());
    dev.write_all_at(&block, 0)
        .and_then(|_| dev.sync_all())
        .map_err(|e| format!("write loop{n}: {e}"))?;
    let mut back = vec![0u8; 4096];
    backing
        .read_exact_at(&mut back, 0)
        .map_err(|e| format!("read {path}: {e}"))?;
    if back != block {
        return Err(format!("loop{n}: the write did not reach {path}"));
    }
    crate::ioctl(dev.as_raw_fd(), uapi::LOOP_CLR_FD, 0)
        .map_err(|e| format!("LOOP_CLR_FD loop{n}: {}", crate::errno_name(e)))?;
    Ok(n)
}

/// Runs ROUNDS rounds on FILE.
pub(crate) fn run(path: &str, rounds: u64) -> Result<i64, String> {
    for r in 0..rounds {
        round(path, r).map_err(|e| format!("round {r}: {e}"))?;
    }
    Ok(rounds as i64)
}
