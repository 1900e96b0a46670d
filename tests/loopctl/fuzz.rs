//! `loopctl fuzz SEED CALLS THREADS FILE...`: a seeded fuzzer of the loop
//! ioctls.
//!
//! THREADS threads share CALLS calls between them. Each thread has its own
//! random generator (seeded from SEED and its number) and its own open
//! files: loop devices 0 to 7, opened read-write or read-only through
//! private nodes (so an open of a removed device goes through the driver's
//! probe), `/dev/loop-control`, the backing FILEs opened in several modes,
//! and files that are not valid backing files. Each call picks a random
//! `LOOP_*` or `LOOP_CTL_*` command, or a random number near them, with a
//! random argument: an index, a file descriptor, a pointer to a random or a
//! plausible structure, a null or a bad pointer. Now and then a thread reads
//! or writes a device, or closes and reopens one.
//!
//! The kernel must answer every call without a splat or a hang; that is
//! checked by the guest test and `scripts/vm`. Here a call fails the run if
//! it returns an errno that the kernel must never leak to userspace (512
//! and above: `ERESTARTSYS`, `ENOIOCTLCMD` and the like). The same SEED gives
//! each thread the same random choices; the interleaving of the threads,
//! and so the states the calls meet, vary.

use crate::rng::Rng;
use rloop_host::uapi;
use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    os::{
        fd::{AsRawFd, RawFd},
        unix::fs::OpenOptionsExt,
    },
    sync::Mutex,
};

/// The number of loop devices the fuzzer opens.
const DEVICES: u64 = 8;

/// What one thread has open.
struct Files {
    control: File,
    /// Loop device `i` at index `i`, when open.
    devices: Vec<Option<File>>,
    /// Files to pass as a backing file: valid ones and invalid ones.
    backing: Vec<File>,
    /// The private nodes of the loop devices.
    nodes: Vec<String>,
}

impl Files {
    fn open(thread: usize, paths: &[String]) -> Result<Files, String> {
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
            .map_err(|e| format!("/dev/loop-control: {e}"))?;
        let mut backing = Vec::new();
        for p in paths {
            let open = |write: bool, flags: i32| {
                OpenOptions::new()
                    .read(true)
                    .write(write)
                    .custom_flags(flags)
                    .open(p)
                    .map_err(|e| format!("{p}: {e}"))
            };
            backing.push(open(true, 0)?);
            backing.push(open(false, 0)?);
            backing.push(open(true, libc::O_DIRECT)?);
        }
        for p in ["/dev/null", "/", "/dev/loop-control"] {
            backing.push(File::open(p).map_err(|e| format!("{p}: {e}"))?);
        }
        let mut nodes = Vec::new();
        for i in 0..DEVICES {
            let node = format!("/tmp/loopctl-fuzz-{thread}-{i}");
            let _ = std::fs::remove_file(&node);
            let c = std::ffi::CString::new(node.clone()).map_err(|e| e.to_string())?;
            // SAFETY: `c` is a NUL-terminated path; mknod reads nothing else.
            let r = unsafe {
                libc::mknod(
                    c.as_ptr(),
                    libc::S_IFBLK | 0o600,
                    libc::makedev(uapi::LOOP_MAJOR, i as u32),
                )
            };
            if r < 0 {
                return Err(format!("mknod {node}: {}", std::io::Error::last_os_error()));
            }
            nodes.push(node);
        }
        Ok(Files {
            control,
            devices: (0..DEVICES).map(|_| None).collect(),
            backing,
            nodes,
        })
    }

    /// Opens device `i` (read-write or read-only at random) if it is not
    /// open; an open may fail, for example while the device is removed.
    fn reopen(&mut self, rng: &mut Rng, i: usize) {
        let write = rng.chance(80);
        self.devices[i] = OpenOptions::new()
            .read(true)
            .write(write)
            .open(&self.nodes[i])
            .ok();
    }

    /// A file descriptor to pass where one is expected: mostly a valid
    /// backing file, sometimes a loop device, a closed or a wild number.
    fn any_fd(&self, rng: &mut Rng) -> RawFd {
        match rng.below(10) {
            0..=5 => self.backing[rng.below(self.backing.len() as u64) as usize].as_raw_fd(),
            6 | 7 => match &self.devices[rng.below(DEVICES) as usize] {
                Some(f) => f.as_raw_fd(),
                None => -1,
            },
            8 => 999,
            _ => rng.next() as RawFd,
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        for n in &self.nodes {
            let _ = std::fs::remove_file(n);
        }
    }
}

/// A plausible value for an offset or a size limit: aligned or not, small,
/// near the end of the file, or wild.
fn some_offset(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => 0,
        1 => rng.below(64) * 512,
        2 => rng.below(16) * 4096,
        3 => rng.below(1 << 20),
        4 => 1u64 << rng.below(64),
        _ => rng.next(),
    }
}

fn some_flags(rng: &mut Rng) -> u32 {
    if rng.chance(10) {
        rng.next() as u32
    } else {
        // Any of READ_ONLY, USE_AOPS (2), AUTOCLEAR, PARTSCAN, DIRECT_IO.
        rng.below(32) as u32
    }
}

fn some_block_size(rng: &mut Rng) -> u32 {
    match rng.below(8) {
        0 => 0,
        1 => 512,
        2 => 1024,
        3 => 4096,
        4 => 8192,
        5 => 256,
        6 => 1 << rng.below(32),
        _ => rng.next() as u32,
    }
}

fn info64(rng: &mut Rng, files: &Files) -> uapi::LoopInfo64 {
    let mut i = uapi::LoopInfo64 {
        lo_offset: some_offset(rng),
        lo_sizelimit: some_offset(rng),
        lo_flags: some_flags(rng),
        ..Default::default()
    };
    if rng.chance(20) {
        let wild = rng.next() as u32;
        i.lo_encrypt_type = rng.pick(&[0, 1, 18, wild]);
        i.lo_encrypt_key_size = rng.below(40) as u32;
    }
    if rng.chance(50) {
        rng.fill(&mut i.lo_file_name);
    }
    if rng.chance(10) {
        i.lo_number = files.any_fd(rng) as u32;
    }
    i
}

/// The memory behind a pointer argument. It outlives the call.
struct Arg {
    buf: Vec<u8>,
}

impl Arg {
    /// A buffer holding `v`, for the kernel to read (or write).
    fn of<T: Copy>(v: T) -> Arg {
        let mut buf = vec![0u8; std::mem::size_of::<T>()];
        // SAFETY: `buf` is valid for `size_of::<T>()` bytes, and the write
        // is unaligned. The padding bytes of `T` become uninitialised in
        // `buf`, which is why `buf` is never read here: only the kernel
        // reads it, through the pointer passed to ioctl.
        unsafe { std::ptr::write_unaligned(buf.as_mut_ptr().cast::<T>(), v) };
        Arg { buf }
    }
}

/// A pointer argument: to a plausible structure, to random bytes, null, or
/// not mapped.
fn pointer_arg(rng: &mut Rng, files: &Files, cmd: u32, keep: &mut Option<Arg>) -> libc::c_ulong {
    match rng.below(20) {
        0 => return 0,
        1 => return rng.pick(&[8, 0xffff_ffff_0000, u64::MAX - 64, 0xdead_0000]) as libc::c_ulong,
        2..=4 => {
            let mut buf = vec![0u8; 512];
            rng.fill(&mut buf);
            *keep = Some(Arg { buf });
        }
        _ => {
            *keep = Some(match cmd {
                uapi::LOOP_SET_STATUS | uapi::LOOP_GET_STATUS => {
                    let i = info64(rng, files);
                    let mut old = uapi::LoopInfo {
                        lo_offset: i.lo_offset as i32,
                        lo_flags: i.lo_flags as i32,
                        lo_encrypt_type: i.lo_encrypt_type as i32,
                        lo_encrypt_key_size: i.lo_encrypt_key_size as i32,
                        ..Default::default()
                    };
                    old.lo_name.copy_from_slice(&i.lo_file_name);
                    Arg::of(old)
                }
                uapi::LOOP_CONFIGURE => {
                    let mut c = uapi::LoopConfig {
                        fd: files.any_fd(rng) as u32,
                        block_size: some_block_size(rng),
                        info: info64(rng, files),
                        ..Default::default()
                    };
                    if rng.chance(10) {
                        c.reserved[rng.below(8) as usize] = rng.next();
                    }
                    Arg::of(c)
                }
                _ => Arg::of(info64(rng, files)),
            });
        }
    }
    keep.as_mut()
        .map_or(0, |a| a.buf.as_mut_ptr() as libc::c_ulong)
}

const DEVICE_CMDS: [u32; 11] = [
    uapi::LOOP_SET_FD,
    uapi::LOOP_CLR_FD,
    uapi::LOOP_SET_STATUS,
    uapi::LOOP_GET_STATUS,
    uapi::LOOP_SET_STATUS64,
    uapi::LOOP_GET_STATUS64,
    uapi::LOOP_CHANGE_FD,
    uapi::LOOP_SET_CAPACITY,
    uapi::LOOP_SET_DIRECT_IO,
    uapi::LOOP_SET_BLOCK_SIZE,
    uapi::LOOP_CONFIGURE,
];

/// Counts of results by command: (the command's name, "ok" or an errno
/// name) to the number of calls.
type Tally = BTreeMap<(&'static str, String), u64>;

/// The name of a loop command, as the uapi spells it without `LOOP_`;
/// "other" for any other number.
fn cmd_name(cmd: u32) -> &'static str {
    match cmd {
        uapi::LOOP_SET_FD => "SET_FD",
        uapi::LOOP_CLR_FD => "CLR_FD",
        uapi::LOOP_SET_STATUS => "SET_STATUS",
        uapi::LOOP_GET_STATUS => "GET_STATUS",
        uapi::LOOP_SET_STATUS64 => "SET_STATUS64",
        uapi::LOOP_GET_STATUS64 => "GET_STATUS64",
        uapi::LOOP_CHANGE_FD => "CHANGE_FD",
        uapi::LOOP_SET_CAPACITY => "SET_CAPACITY",
        uapi::LOOP_SET_DIRECT_IO => "SET_DIRECT_IO",
        uapi::LOOP_SET_BLOCK_SIZE => "SET_BLOCK_SIZE",
        uapi::LOOP_CONFIGURE => "CONFIGURE",
        uapi::LOOP_CTL_ADD => "CTL_ADD",
        uapi::LOOP_CTL_REMOVE => "CTL_REMOVE",
        uapi::LOOP_CTL_GET_FREE => "CTL_GET_FREE",
        _ => "other",
    }
}

/// One call on a device (or, about one time in sixteen, on the control
/// device: adding and removing disks is slow).
fn one_call(rng: &mut Rng, files: &mut Files, tally: &mut Tally) -> Result<(), String> {
    let (cmd, r) = if rng.chance(6) {
        let cmd = match rng.below(10) {
            0..=2 => uapi::LOOP_CTL_ADD,
            3..=5 => uapi::LOOP_CTL_REMOVE,
            6..=8 => uapi::LOOP_CTL_GET_FREE,
            _ => 0x4C80 + rng.below(8) as u32,
        };
        let arg = if rng.chance(3) {
            rng.next()
        } else {
            rng.below(DEVICES + 2)
        };
        (
            cmd,
            crate::ioctl(files.control.as_raw_fd(), cmd, arg as libc::c_ulong),
        )
    } else {
        let i = rng.below(DEVICES) as usize;
        if files.devices[i].is_none() || rng.chance(5) {
            files.devices[i] = None;
            files.reopen(rng, i);
        }
        let Some(dev) = &files.devices[i] else {
            *tally.entry(("open", "absent".into())).or_default() += 1;
            return Ok(());
        };
        let fd = dev.as_raw_fd();
        if rng.chance(5) {
            return io(rng, fd, tally);
        }
        let cmd = if rng.chance(95) {
            rng.pick(&DEVICE_CMDS)
        } else {
            let (near, wild) = (0x4C00 + rng.below(32) as u32, rng.next() as u32);
            rng.pick(&[near, wild])
        };
        let mut keep = None;
        let arg = match cmd {
            uapi::LOOP_SET_FD | uapi::LOOP_CHANGE_FD => files.any_fd(rng) as libc::c_ulong,
            uapi::LOOP_SET_STATUS
            | uapi::LOOP_GET_STATUS
            | uapi::LOOP_SET_STATUS64
            | uapi::LOOP_GET_STATUS64
            | uapi::LOOP_CONFIGURE => pointer_arg(rng, files, cmd, &mut keep),
            uapi::LOOP_SET_BLOCK_SIZE => some_block_size(rng) as libc::c_ulong,
            _ => {
                let wild = rng.next();
                rng.pick(&[0, 1, wild]) as libc::c_ulong
            }
        };
        let r = crate::ioctl(fd, cmd, arg);
        drop(keep);
        (cmd, r)
    };
    count(cmd_name(cmd), r, tally)
}

/// A read or a write of a device, at a random aligned place near its start.
fn io(rng: &mut Rng, fd: RawFd, tally: &mut Tally) -> Result<(), String> {
    let mut buf = vec![0u8; 4096];
    let off = (rng.below(256) * 4096) as libc::off_t;
    // SAFETY: `buf` is valid for 4096 bytes for the duration of the call.
    let (what, n) = unsafe {
        if rng.chance(50) {
            (
                "read",
                libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off),
            )
        } else {
            rng.fill(&mut buf);
            (
                "write",
                libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off),
            )
        }
    };
    count(
        what,
        if n < 0 {
            Err(crate::last_errno())
        } else {
            Ok(0)
        },
        tally,
    )
}

fn count(what: &'static str, r: Result<i64, i32>, tally: &mut Tally) -> Result<(), String> {
    let key = match r {
        Ok(_) => "ok".to_string(),
        Err(e) if e >= 512 => return Err(format!("{what}: kernel-internal errno {e} leaked")),
        Err(e) => crate::errno_name(e),
    };
    *tally.entry((what, key)).or_default() += 1;
    Ok(())
}

/// Runs the fuzzer; prints the tally and returns an error on a failed call.
pub(crate) fn run(seed: u64, calls: u64, threads: u64, paths: &[String]) -> Result<(), String> {
    if threads == 0 || paths.is_empty() {
        return Err("fuzz: need at least one thread and one backing file".into());
    }
    let total = Mutex::new(Tally::new());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let total = &total;
                s.spawn(move || -> Result<(), String> {
                    let mut rng = Rng::new(seed.wrapping_add(t));
                    let mut files = Files::open(t as usize, paths)?;
                    let mut tally = Tally::new();
                    let share = calls / threads + u64::from(t < calls % threads);
                    for n in 0..share {
                        one_call(&mut rng, &mut files, &mut tally)
                            .map_err(|e| format!("thread {t}, call {n}: {e}"))?;
                    }
                    let mut total = total.lock().map_err(|_| "poisoned")?;
                    for (k, v) in tally {
                        *total.entry(k).or_default() += v;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "fuzz thread panicked".to_string())?)
    })?;
    let total = total.into_inner().map_err(|_| "poisoned")?;
    let n: u64 = total.values().sum();
    let mut by_result = BTreeMap::<&str, u64>::new();
    for ((_, r), v) in &total {
        *by_result.entry(r).or_default() += v;
    }
    let parts: Vec<String> = by_result.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("fuzz seed={seed} calls={n} {}", parts.join(" "));
    // One word per command and result, for the guest test's coverage check.
    let pairs: Vec<String> = total
        .iter()
        .map(|((c, r), v)| format!("{c}:{r}={v}"))
        .collect();
    println!("fuzz by command: {}", pairs.join(" "));
    Ok(())
}
