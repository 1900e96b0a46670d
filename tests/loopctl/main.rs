//! `loopctl`: issue loop ioctls directly, for the guest tests.
//!
//! ```text
//! loopctl add N | remove N | get-free        on /dev/loop-control
//! loopctl raw-ctl CMD ARG                   any LOOP_CTL_* number
//! loopctl dev DEV OP...                     on a loop device (opened
//!                                           read-write, else read-only)
//! loopctl dev-ro DEV OP...                  the same, opened read-only:
//!   set-fd PATH | set-fd-direct PATH | set-fd-raw FD | change-fd PATH
//!   clr | set-capacity
//!   configure PATH BLOCK_SIZE FLAGS OFFSET SIZELIMIT
//!   get-status64 | get-status64-null | get-status | get-status-null
//!   set-status64 OFFSET SIZELIMIT FLAGS | set-status64-null | set-status-null
//!   set-block-size N | set-direct-io N | raw CMD ARG
//! loopctl storm FILE ROUNDS                 attach and detach FILE ROUNDS
//!                                           times (see storm.rs)
//! loopctl fuzz SEED CALLS THREADS FILE...   the ioctl fuzzer (see fuzz.rs)
//! loopctl swap-race DEV_A DEV_B FILE_A FILE_B ROUNDS
//!                                           two LOOP_CHANGE_FD racing to
//!                                           form a cycle (see swap_race.rs)
//! loopctl fill FILE MIB SEED                FILE becomes MIB MiB of random
//!                                           data from SEED (the tests'
//!                                           images; see fill below)
//! loopctl keep-mapped FILE...               map every FILE whole and wait
//!                                           until killed (see keep_mapped)
//! loopctl cmp [-n LIMIT] [-i SKIP[:SKIP2]] FILE1 FILE2
//!                                           GNU cmp, 1 MiB a read, with its
//!                                           exit status (see cmp.rs)
//! ```
//!
//! Prints `ok VALUE` (the status reads print the status instead) or
//! `err ERRNO_NAME` and exits 0 or 1, so that a test
//! can check the exact errno. A usage error, or a failed storm or fuzz run,
//! prints its reason on stderr and exits 2.

mod cmp;
mod fuzz;
mod rng;
mod storm;
mod swap_race;

use rloop_host::uapi;
use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    process::ExitCode,
};

pub(crate) fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        libc::ENOSYS => "ENOSYS",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno{e}"),
    };
    name.to_string()
}

fn parse_num(s: &str) -> Result<u64, String> {
    let r = if let Some(hex) = s.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else if let Some(neg) = s.strip_prefix('-') {
        neg.parse::<u64>().map(|v| v.wrapping_neg())
    } else {
        s.parse::<u64>()
    };
    r.map_err(|_| format!("bad number '{s}'"))
}

/// The result of an operation that printed its own output (the status
/// reads), so that `ok` is not printed after it.
const SHOWN: i64 = i64::MIN;

pub(crate) fn ctl_ioctl(cmd: u32, arg: u64) -> Result<i64, i32> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    // SAFETY: LOOP_CTL_* take an integer argument, not a pointer.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), cmd as libc::c_ulong, arg as libc::c_ulong) };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r as i64)
    }
}

pub(crate) fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `ioctl(fd, cmd, arg)`. The kernel checks every argument: a wrong one
/// is an error return, which is what the fuzzer relies on.
pub(crate) fn ioctl(fd: i32, cmd: u32, arg: libc::c_ulong) -> Result<i64, i32> {
    // SAFETY: an ioctl reads or writes at most the memory its argument
    // points to; every caller passes either an integer or a pointer to
    // memory it owns for the duration of the call, large enough for the
    // structure of `cmd` (the fuzzer's random commands get 512 bytes).
    let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as i64)
    }
}

fn open_rw_or_ro(path: &str) -> Result<std::fs::File, i32> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .or_else(|_| OpenOptions::new().read(true).open(path))
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

fn name_of(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn print_info64(i: &uapi::LoopInfo64) {
    println!(
        "number={} offset={} sizelimit={} flags={} name={}",
        i.lo_number,
        i.lo_offset,
        i.lo_sizelimit,
        i.lo_flags,
        name_of(&i.lo_file_name)
    );
}

fn run_dev(dev: &str, read_only: bool, op: &[&str]) -> Result<Result<i64, i32>, String> {
    let opened = if read_only {
        OpenOptions::new()
            .read(true)
            .open(dev)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    } else {
        open_rw_or_ro(dev)
    };
    let f = match opened {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let fd = f.as_raw_fd();
    let ptr = |p: *const u8| p as libc::c_ulong;
    Ok(match op {
        ["set-fd", path] => match open_rw_or_ro(path) {
            Ok(b) => ioctl(fd, uapi::LOOP_SET_FD, b.as_raw_fd() as libc::c_ulong),
            Err(e) => Err(e),
        },
        ["set-fd-direct", path] => match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(b) => ioctl(fd, uapi::LOOP_SET_FD, b.as_raw_fd() as libc::c_ulong),
            Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
        },
        ["change-fd", path] => match OpenOptions::new().read(true).open(path) {
            Ok(b) => ioctl(fd, uapi::LOOP_CHANGE_FD, b.as_raw_fd() as libc::c_ulong),
            Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
        },
        ["set-fd-raw", n] => ioctl(fd, uapi::LOOP_SET_FD, parse_num(n)? as libc::c_ulong),
        ["clr"] => ioctl(fd, uapi::LOOP_CLR_FD, 0),
        ["set-capacity"] => ioctl(fd, uapi::LOOP_SET_CAPACITY, 0),
        ["configure", path, bs, flags, offset, sizelimit] => match open_rw_or_ro(path) {
            Ok(b) => {
                let cfg = uapi::LoopConfig {
                    fd: b.as_raw_fd() as u32,
                    block_size: parse_num(bs)? as u32,
                    info: uapi::LoopInfo64 {
                        lo_flags: parse_num(flags)? as u32,
                        lo_offset: parse_num(offset)?,
                        lo_sizelimit: parse_num(sizelimit)?,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                ioctl(fd, uapi::LOOP_CONFIGURE, ptr(&cfg as *const _ as *const u8))
            }
            Err(e) => Err(e),
        },
        ["get-status64"] => {
            let mut i = uapi::LoopInfo64::default();
            let r = ioctl(
                fd,
                uapi::LOOP_GET_STATUS64,
                ptr(&mut i as *mut _ as *const u8),
            );
            r.map(|_| {
                print_info64(&i);
                SHOWN
            })
        }
        ["get-status"] => {
            let mut i = uapi::LoopInfo::default();
            let r = ioctl(
                fd,
                uapi::LOOP_GET_STATUS,
                ptr(&mut i as *mut _ as *const u8),
            );
            r.map(|_| {
                println!(
                    "number={} offset={} flags={} name={}",
                    i.lo_number,
                    i.lo_offset,
                    i.lo_flags,
                    name_of(&i.lo_name)
                );
                SHOWN
            })
        }
        ["get-status64-null"] => ioctl(fd, uapi::LOOP_GET_STATUS64, 0),
        ["get-status-null"] => ioctl(fd, uapi::LOOP_GET_STATUS, 0),
        ["set-status64-null"] => ioctl(fd, uapi::LOOP_SET_STATUS64, 0),
        ["set-status-null"] => ioctl(fd, uapi::LOOP_SET_STATUS, 0),
        ["set-status64", offset, sizelimit, flags] => {
            let mut i = uapi::LoopInfo64::default();
            if let Err(e) = ioctl(
                fd,
                uapi::LOOP_GET_STATUS64,
                ptr(&mut i as *mut _ as *const u8),
            ) {
                return Ok(Err(e));
            }
            i.lo_offset = parse_num(offset)?;
            i.lo_sizelimit = parse_num(sizelimit)?;
            i.lo_flags = parse_num(flags)? as u32;
            ioctl(
                fd,
                uapi::LOOP_SET_STATUS64,
                ptr(&i as *const _ as *const u8),
            )
        }
        ["set-block-size", n] => ioctl(
            fd,
            uapi::LOOP_SET_BLOCK_SIZE,
            parse_num(n)? as libc::c_ulong,
        ),
        ["set-direct-io", n] => ioctl(fd, uapi::LOOP_SET_DIRECT_IO, parse_num(n)? as libc::c_ulong),
        ["raw", cmd, arg] => ioctl(fd, parse_num(cmd)? as u32, parse_num(arg)? as libc::c_ulong),
        _ => return Err(format!("unknown device operation {op:?}")),
    })
}

/// `loopctl fill FILE MIB SEED`: FILE becomes MIB MiB of pseudo-random data,
/// the xorshift64* stream of SEED. The guest tests' images: under TCG the
/// debug kernel's `/dev/urandom` gives about 16 MiB/s, which made generating
/// them a few seconds of most data tests. Different seeds start far apart
/// on the generator's cycle, so two images of a test share no sector (a
/// host test in `rng.rs` checks it for adjacent seeds).
fn fill(path: &str, mib: u64, seed: u64) -> Result<(), String> {
    let mut rng = rng::Rng::new(seed);
    let mut file = File::create(path).map_err(|e| format!("{path}: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        rng.fill_words(&mut buf);
        file.write_all(&buf).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// `loopctl keep-mapped FILE...`: maps each FILE whole, its pages faulted
/// in, and sleeps until killed. `echo 3 >/proc/sys/vm/drop_caches` does not
/// drop a page that a process maps. The guest suite keeps its tools'
/// binaries and libraries mapped, so that the tests' drops evict their data
/// and not fio's 64 libraries, which each fio after a drop otherwise reads
/// again over 9p. The kernel may still reclaim them under memory pressure.
fn keep_mapped(paths: &[&str]) -> Result<(), String> {
    for path in paths {
        let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let len = file.metadata().map_err(|e| format!("{path}: {e}"))?.len();
        if len == 0 {
            continue;
        }
        // SAFETY: a new private read-only mapping of a file we opened, at an
        // address the kernel picks, so no existing memory is affected. It is
        // never unmapped nor read here: it only holds the pages in use until
        // the process ends. The file may be closed after mmap returns.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("{path}: mmap: {}", std::io::Error::last_os_error()));
        }
    }
    loop {
        std::thread::park();
    }
}

fn run(args: &[String]) -> Result<Result<i64, i32>, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(match a.as_slice() {
        ["add", n] => ctl_ioctl(uapi::LOOP_CTL_ADD, parse_num(n)?),
        ["remove", n] => ctl_ioctl(uapi::LOOP_CTL_REMOVE, parse_num(n)?),
        ["get-free"] => ctl_ioctl(uapi::LOOP_CTL_GET_FREE, 0),
        ["raw-ctl", cmd, arg] => ctl_ioctl(parse_num(cmd)? as u32, parse_num(arg)?),
        ["storm", path, rounds] => Ok(storm::run(path, parse_num(rounds)?)?),
        ["fuzz", seed, calls, threads, paths @ ..] => {
            let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
            fuzz::run(
                parse_num(seed)?,
                parse_num(calls)?,
                parse_num(threads)?,
                &paths,
            )?;
            Ok(SHOWN)
        }
        ["swap-race", dev_a, dev_b, file_a, file_b, rounds] => {
            swap_race::run([dev_a, dev_b], [file_a, file_b], parse_num(rounds)?)?;
            Ok(SHOWN)
        }
        ["fill", path, mib, seed] => {
            fill(path, parse_num(mib)?, parse_num(seed)?)?;
            Ok(SHOWN)
        }
        ["keep-mapped", paths @ ..] => {
            keep_mapped(paths)?;
            Ok(SHOWN)
        }
        ["dev", dev, op @ ..] => return run_dev(dev, false, op),
        ["dev-ro", dev, op @ ..] => return run_dev(dev, true, op),
        _ => return Err("usage: see the comment at the top of tests/loopctl/main.rs".into()),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("cmp") {
        let a: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        return ExitCode::from(cmp::main(&a));
    }
    match run(&args) {
        Ok(Ok(SHOWN)) => ExitCode::SUCCESS,
        Ok(Ok(v)) => {
            println!("ok {v}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            println!("err {}", errno_name(e));
            ExitCode::from(1)
        }
        Err(usage) => {
            eprintln!("{usage}");
            ExitCode::from(2)
        }
    }
}
