//! `loopctl swap-race DEV_A DEV_B FILE_A FILE_B ROUNDS`: two read-only loop
//! devices, bound to FILE_A and FILE_B (of the same size), race to change
//! onto each other with `LOOP_CHANGE_FD`, ROUNDS times.
//!
//! Each round, two threads start together: one changes DEV_A's file to
//! DEV_B, the other DEV_B's to DEV_A. Either may win, but never both: that
//! would be the cycle A→B→A, which the chain check must refuse however the
//! two calls interleave (`loop_validate_mutex` in C). The loser must get
//! `EBADF` (its chain leads back to itself) or `EINVAL`. Then each device
//! goes back to its own file for the next round.
//!
//! Prints `ok ROUNDS` and how many rounds each side won, or fails with the
//! round where both won.

use rloop_host::uapi;
use std::{
    fs::{File, OpenOptions},
    os::fd::AsRawFd,
    sync::Barrier,
};

fn open_ro(path: &str) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))
}

fn change_fd(dev: &File, to: &File) -> Result<i64, i32> {
    crate::ioctl(
        dev.as_raw_fd(),
        uapi::LOOP_CHANGE_FD,
        to.as_raw_fd() as libc::c_ulong,
    )
}

/// Runs the race; see the module's documentation.
pub(crate) fn run(devs: [&str; 2], files: [&str; 2], rounds: u64) -> Result<(), String> {
    let dev = [open_ro(devs[0])?, open_ro(devs[1])?];
    let file = [open_ro(files[0])?, open_ro(files[1])?];
    let barrier = Barrier::new(2);
    let mut wins = [0u64; 2];
    for round in 0..rounds {
        let results: Vec<Result<i64, i32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    let (dev, barrier) = (&dev, &barrier);
                    s.spawn(move || {
                        // A fresh open of the other device each round, as a
                        // user's would be.
                        let other = open_ro(devs[1 - i]).map_err(|_| libc::ENOENT)?;
                        barrier.wait();
                        change_fd(&dev[i], &other)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(libc::EIO)))
                .collect()
        });
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(_) => wins[i] += 1,
                Err(e) if *e == libc::EBADF || *e == libc::EINVAL => {}
                Err(e) => {
                    return Err(format!(
                        "round {round}: {} changing onto {}: {}",
                        devs[i],
                        devs[1 - i],
                        crate::errno_name(*e)
                    ))
                }
            }
        }
        if results.iter().all(|r| r.is_ok()) {
            return Err(format!(
                "round {round}: both changes succeeded: {} and {} are a cycle",
                devs[0], devs[1]
            ));
        }
        for i in 0..2 {
            change_fd(&dev[i], &file[i]).map_err(|e| {
                format!(
                    "round {round}: {} back to {}: {}",
                    devs[i],
                    files[i],
                    crate::errno_name(e)
                )
            })?;
        }
    }
    println!(
        "ok {rounds} ({} won {}, {} won {})",
        devs[0], wins[0], devs[1], wins[1]
    );
    Ok(())
}
