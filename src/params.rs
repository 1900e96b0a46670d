// SPDX-License-Identifier: GPL-2.0

//! The rules for the module parameters `max_loop`, `max_part` and
//! `hw_queue_depth`, as `loop_init()` and its parameter setters in
//! `drivers/block/loop.c` apply them, and for rloop's own `nr_hw_queues`.
//!
//! Pure `core` code: compiled into the module and tested on the host.

/// `MINORBITS` of `include/linux/kdev_t.h`.
pub const MINORBITS: u32 = 20;
/// `MINORMASK`.
pub const MINORMASK: u32 = (1 << MINORBITS) - 1;
/// `DISK_MAX_PARTS` of `include/linux/blkdev.h`.
pub const DISK_MAX_PARTS: u64 = 256;
/// `LOOP_DEFAULT_HW_Q_DEPTH`.
pub const DEFAULT_HW_QUEUE_DEPTH: i32 = 128;
/// `queue_limits.max_hw_sectors` of a new loop disk, as in `loop_add()`.
pub const MAX_HW_SECTORS: u32 = 2560;

/// `CONFIG_BLK_DEV_LOOP_MIN_COUNT` of the kernel built against, the default
/// of `max_loop`. Kbuild passes it in `RLOOP_MIN_COUNT`; Kconfig's default is 8.
pub const MIN_COUNT: i32 = parse_count(option_env!("RLOOP_MIN_COUNT"), 8);

/// Parses a non-negative decimal at compile time, or gives `default`.
pub const fn parse_count(s: Option<&str>, default: i32) -> i32 {
    let bytes = match s {
        Some(s) if !s.is_empty() => s.as_bytes(),
        _ => return default,
    };
    let mut value: i32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !b.is_ascii_digit() || value > (i32::MAX - 9) / 10 {
            return default;
        }
        value = value * 10 + (b - b'0') as i32;
        i += 1;
    }
    value
}

/// A parameter value that `loop_init()` refuses with `EINVAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidParam;

/// How device numbers are laid out, from `max_loop` and `max_part`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Minors per device are `1 << part_shift`.
    pub part_shift: u32,
    /// `max_part` rounded up to `(1 << part_shift) - 1`, as the C driver
    /// exports it.
    pub max_part: i32,
    /// `max_loop` as given.
    pub max_loop: i32,
    /// The queue depth of each hardware queue.
    pub hw_queue_depth: u32,
    /// Hardware queues per device (1 unless [`Layout::with_hw_queues`]).
    pub nr_hw_queues: u32,
}

impl Layout {
    /// Checks the parameters as `loop_init()` and `loop_set_hw_queue_depth()`
    /// do.
    pub fn new(max_loop: i32, max_part: i32, hw_queue_depth: i32) -> Result<Self, InvalidParam> {
        if hw_queue_depth < 1 {
            return Err(InvalidParam);
        }
        let mut part_shift = 0;
        let mut exported_max_part = max_part;
        if max_part > 0 {
            // fls(): the position of the highest set bit, counting from 1.
            part_shift = 32 - (max_part as u32).leading_zeros();
            exported_max_part = ((1u64 << part_shift) - 1) as i32;
        }
        if (1u64 << part_shift) > DISK_MAX_PARTS {
            return Err(InvalidParam);
        }
        // C compares the int with an unsigned long: a negative value is huge.
        if max_loop < 0 || max_loop as u64 > 1u64 << (MINORBITS - part_shift) {
            return Err(InvalidParam);
        }
        Ok(Self {
            part_shift,
            max_part: exported_max_part,
            max_loop,
            hw_queue_depth: hw_queue_depth as u32,
            nr_hw_queues: 1,
        })
    }

    /// Sets the number of hardware queues from `nr_hw_queues`: 0 for one
    /// per possible CPU (`nr_cpus`), else at least 1 and at most `nr_cpus`.
    pub fn with_hw_queues(self, nr_hw_queues: i32, nr_cpus: u32) -> Result<Self, InvalidParam> {
        Ok(Self {
            nr_hw_queues: hw_queue_count(i64::from(nr_hw_queues), nr_cpus)?,
            ..self
        })
    }

    /// Number of minors of each device.
    pub fn minors(&self) -> u32 {
        1 << self.part_shift
    }

    /// First minor of device `index`, if it fits the minor space.
    pub fn first_minor(&self, index: u32) -> Option<u32> {
        let first = u64::from(index) << self.part_shift;
        let last = first + u64::from(self.minors()) - 1;
        (last <= u64::from(MINORMASK)).then_some(first as u32)
    }

    /// The device index a probe of `minor` asks for, if `loop_probe()` would
    /// create it. `max_loop_specified` is whether `max_loop` was given.
    pub fn probe_index(&self, minor: u32, max_loop_specified: bool) -> Option<u32> {
        let index = minor >> self.part_shift;
        if max_loop_specified && self.max_loop > 0 && index >= self.max_loop as u32 {
            return None;
        }
        Some(index)
    }
}

/// The device index a `LOOP_CTL_ADD`, `LOOP_CTL_REMOVE` or
/// `LOOP_CTL_GET_FREE` argument names: the C driver passes the `unsigned long`
/// to an `int`, so only the low 32 bits count, and a negative value means
/// "any" for ADD and is refused by REMOVE.
pub fn ctl_index(arg: usize) -> Option<u32> {
    let i = arg as u32 as i32;
    (i >= 0).then_some(i as u32)
}

/// A boolean written to a sysfs switch, the words of `kstrtobool()` but
/// whole (it reads only the first letters): `1`,
/// `y`, `t` or `on` for true, `0`, `n`, `f` or `off` for false, in either
/// case, with one trailing newline allowed.
pub fn parse_switch(input: &[u8]) -> Option<bool> {
    let s = input.strip_suffix(b"\n").unwrap_or(input);
    match s {
        b"1" | b"y" | b"Y" | b"t" | b"T" | b"on" | b"ON" | b"On" => Some(true),
        b"0" | b"n" | b"N" | b"f" | b"F" | b"off" | b"OFF" | b"Off" => Some(false),
        _ => None,
    }
}

/// The number of hardware queues that `nr_hw_queues` asks for, as the
/// module parameter and a device's `loop/nr_hw_queues` take it: 0 for one
/// per possible CPU (`nr_cpus`), else at least 1 and at most `nr_cpus`.
pub fn hw_queue_count(nr_hw_queues: i64, nr_cpus: u32) -> Result<u32, InvalidParam> {
    match nr_hw_queues {
        0 => Ok(nr_cpus.max(1)),
        n if n > 0 && n <= i64::from(nr_cpus) => Ok(n as u32),
        _ => Err(InvalidParam),
    }
}

/// Parses a write to a numeric sysfs attribute: decimal digits that fit a
/// `u32`, with one trailing newline allowed, as `kstrtouint(buf, 10, ..)`
/// takes them (without its leading `+`).
pub fn parse_u32(input: &[u8]) -> Option<u32> {
    let s = input.strip_suffix(b"\n").unwrap_or(input);
    if s.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hw_queues_are_one_per_cpu_at_most() {
        let l = Layout::new(8, 0, 128).unwrap();
        assert_eq!(l.nr_hw_queues, 1);
        assert_eq!(l.with_hw_queues(1, 4).unwrap().nr_hw_queues, 1);
        assert_eq!(l.with_hw_queues(4, 4).unwrap().nr_hw_queues, 4);
        assert_eq!(l.with_hw_queues(0, 4).unwrap().nr_hw_queues, 4);
        assert_eq!(l.with_hw_queues(5, 4), Err(InvalidParam));
        assert_eq!(l.with_hw_queues(-1, 4), Err(InvalidParam));
        assert_eq!(l.with_hw_queues(i32::MAX, 4), Err(InvalidParam));
    }

    #[test]
    fn hw_queue_count_of_a_device_follows_the_parameter_rule() {
        assert_eq!(hw_queue_count(0, 4), Ok(4));
        assert_eq!(hw_queue_count(0, 0), Ok(1));
        assert_eq!(hw_queue_count(1, 4), Ok(1));
        assert_eq!(hw_queue_count(4, 4), Ok(4));
        assert_eq!(hw_queue_count(5, 4), Err(InvalidParam));
        assert_eq!(hw_queue_count(-1, 4), Err(InvalidParam));
        assert_eq!(
            hw_queue_count(i64::from(u32::MAX) + 1, 4),
            Err(InvalidParam)
        );
    }

    #[test]
    fn numbers_parse_like_kstrtouint() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"17\n"), Some(17));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        for bad in [
            &b""[..],
            b"\n",
            b"4294967296",
            b"-1",
            b"x",
            b"1 2",
            b" 1",
            b"1\n\n",
            b"0x10",
        ] {
            assert_eq!(parse_u32(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn switches_parse_like_kstrtobool() {
        for on in [&b"1"[..], b"1\n", b"y", b"Y\n", b"on", b"t"] {
            assert_eq!(parse_switch(on), Some(true), "{on:?}");
        }
        for off in [&b"0"[..], b"0\n", b"n", b"off\n", b"OFF", b"f"] {
            assert_eq!(parse_switch(off), Some(false), "{off:?}");
        }
        for bad in [&b""[..], b"\n", b"2", b"yes", b"1\n\n", b" 1", b"o"] {
            assert_eq!(parse_switch(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn defaults_are_valid() {
        let l = Layout::new(0, 0, DEFAULT_HW_QUEUE_DEPTH).unwrap();
        assert_eq!((l.part_shift, l.max_part, l.minors()), (0, 0, 1));
        assert_eq!(l.hw_queue_depth, 128);
    }

    #[test]
    fn max_part_rounds_up_like_fls() {
        let cases = [
            (1, 1, 1),
            (2, 2, 3),
            (3, 2, 3),
            (4, 3, 7),
            (15, 4, 15),
            (16, 5, 31),
            (255, 8, 255),
        ];
        for (given, shift, exported) in cases {
            let l = Layout::new(8, given, 128).unwrap();
            assert_eq!(
                (l.part_shift, l.max_part),
                (shift, exported),
                "max_part={given}"
            );
        }
        // A negative max_part means no partitions, as in C.
        assert_eq!(Layout::new(8, -5, 128).unwrap().part_shift, 0);
    }

    #[test]
    fn too_many_partitions_is_einval() {
        assert_eq!(Layout::new(8, 256, 128), Err(InvalidParam));
        assert_eq!(Layout::new(8, i32::MAX, 128), Err(InvalidParam));
    }

    #[test]
    fn max_loop_limit_depends_on_part_shift() {
        assert!(Layout::new(1 << 20, 0, 128).is_ok());
        assert_eq!(Layout::new((1 << 20) + 1, 0, 128), Err(InvalidParam));
        assert!(Layout::new(1 << 16, 15, 128).is_ok());
        assert_eq!(Layout::new((1 << 16) + 1, 15, 128), Err(InvalidParam));
        assert_eq!(Layout::new(-1, 0, 128), Err(InvalidParam));
    }

    #[test]
    fn hw_queue_depth_must_be_positive() {
        assert_eq!(Layout::new(0, 0, 0), Err(InvalidParam));
        assert_eq!(Layout::new(0, 0, -3), Err(InvalidParam));
        assert_eq!(Layout::new(0, 0, 1).unwrap().hw_queue_depth, 1);
    }

    #[test]
    fn first_minor_stays_in_the_minor_space() {
        let l = Layout::new(0, 15, 128).unwrap();
        assert_eq!(l.first_minor(0), Some(0));
        assert_eq!(l.first_minor(3), Some(48));
        assert_eq!(l.first_minor((1 << 16) - 1), Some(MINORMASK - 15));
        assert_eq!(l.first_minor(1 << 16), None);
        let l = Layout::new(0, 0, 128).unwrap();
        assert_eq!(l.first_minor(MINORMASK), Some(MINORMASK));
        assert_eq!(l.first_minor(MINORMASK + 1), None);
        assert_eq!(l.first_minor(u32::MAX), None);
    }

    #[test]
    fn probe_honours_a_given_max_loop() {
        let l = Layout::new(4, 3, 128).unwrap();
        assert_eq!(l.probe_index(4 * 3, true), Some(3));
        assert_eq!(l.probe_index(4 * 4, true), None);
        assert_eq!(l.probe_index(4 * 4, false), Some(4));
        let l = Layout::new(0, 0, 128).unwrap();
        assert_eq!(l.probe_index(1000, true), Some(1000));
    }

    #[test]
    fn ctl_index_truncates_to_int() {
        assert_eq!(ctl_index(0), Some(0));
        assert_eq!(ctl_index(7), Some(7));
        assert_eq!(ctl_index(usize::MAX), None);
        assert_eq!(ctl_index(0x8000_0000), None);
        assert_eq!(ctl_index(0x1_0000_0005), Some(5));
    }

    #[test]
    fn min_count_parses() {
        assert_eq!(parse_count(Some("0"), 8), 0);
        assert_eq!(parse_count(Some("16"), 8), 16);
        assert_eq!(parse_count(None, 8), 8);
        assert_eq!(parse_count(Some(""), 8), 8);
        assert_eq!(parse_count(Some("x1"), 8), 8);
        assert_eq!(parse_count(Some("99999999999"), 8), 8);
    }
}
