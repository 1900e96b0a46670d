//! `loopctl`: issue loop ioctls directly, for the guest tests.
//!
//! ```text
//! loopctl add N | remove N | get-free        on /dev/loop-control
//! loopctl raw-ctl CMD ARG                   any LOOP_CTL_* number
//! ```
//!
//! Prints `ok VALUE` or `err ERRNO_NAME` and exits 0 or 1, so that a test
//! can check the exact errno.

use rloop_host::uapi;
use std::{fs::OpenOptions, os::fd::AsRawFd, process::ExitCode};

fn errno_name(e: i32) -> String {
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

fn ctl_ioctl(cmd: u32, arg: u64) -> Result<i64, i32> {
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

fn run(args: &[String]) -> Result<Result<i64, i32>, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(match a.as_slice() {
        ["add", n] => ctl_ioctl(uapi::LOOP_CTL_ADD, parse_num(n)?),
        ["remove", n] => ctl_ioctl(uapi::LOOP_CTL_REMOVE, parse_num(n)?),
        ["get-free"] => ctl_ioctl(uapi::LOOP_CTL_GET_FREE, 0),
        ["raw-ctl", cmd, arg] => ctl_ioctl(parse_num(cmd)? as u32, parse_num(arg)?),
        _ => return Err("usage: loopctl add N | remove N | get-free | raw-ctl CMD ARG".into()),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
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
