// SPDX-License-Identifier: GPL-2.0

//! The loop device ABI of `include/uapi/linux/loop.h`.
//!
//! `kernel::bindings` does not carry this header, so the structures and ioctl
//! numbers are defined here, with the C layout. This file uses `core` only: it
//! is compiled into the module and into the host crate, whose tests check the
//! layouts against the C header's sizes and offsets.

// `LoopInfo` and `CompatLoopInfo` have x86's layouts: `__kernel_old_dev_t`
// and `compat_dev_t` are other sizes elsewhere (32 bits on arm64), so they
// would be wrong there, silently. Another architecture needs its own.
#[cfg(not(target_arch = "x86_64"))]
compile_error!("uapi.rs: the legacy loop_info layouts are x86-64's and i386's only");

/// Length of the file name fields.
pub const LO_NAME_SIZE: usize = 64;
/// Length of the (obsolete) key fields.
pub const LO_KEY_SIZE: usize = 32;

/// The device is read-only.
pub const LO_FLAGS_READ_ONLY: u32 = 1;
/// Detach on last close.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// Scan partitions on attach.
pub const LO_FLAGS_PARTSCAN: u32 = 8;
/// Direct I/O to the backing file.
pub const LO_FLAGS_DIRECT_IO: u32 = 16;

/// Flags `LOOP_SET_STATUS` may set.
pub const LOOP_SET_STATUS_SETTABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN;
/// Flags `LOOP_SET_STATUS` may clear.
pub const LOOP_SET_STATUS_CLEARABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR;
/// Flags `LOOP_CONFIGURE` may set.
pub const LOOP_CONFIGURE_SETTABLE_FLAGS: u32 =
    LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_DIRECT_IO;

/// Block device ioctls on `/dev/loopN`.
pub const LOOP_SET_FD: u32 = 0x4C00;
/// Detach the backing file.
pub const LOOP_CLR_FD: u32 = 0x4C01;
/// Set status from a `struct loop_info`.
pub const LOOP_SET_STATUS: u32 = 0x4C02;
/// Read status into a `struct loop_info`.
pub const LOOP_GET_STATUS: u32 = 0x4C03;
/// Set status from a `struct loop_info64`.
pub const LOOP_SET_STATUS64: u32 = 0x4C04;
/// Read status into a `struct loop_info64`.
pub const LOOP_GET_STATUS64: u32 = 0x4C05;
/// Replace the backing file of a read-only device.
pub const LOOP_CHANGE_FD: u32 = 0x4C06;
/// Re-read the backing file's size.
pub const LOOP_SET_CAPACITY: u32 = 0x4C07;
/// Switch direct I/O on or off.
pub const LOOP_SET_DIRECT_IO: u32 = 0x4C08;
/// Set the logical block size.
pub const LOOP_SET_BLOCK_SIZE: u32 = 0x4C09;
/// Attach and configure in one step from a `struct loop_config`.
pub const LOOP_CONFIGURE: u32 = 0x4C0A;

/// `/dev/loop-control`: add a device with the given index.
pub const LOOP_CTL_ADD: u32 = 0x4C80;
/// `/dev/loop-control`: remove the device with the given index.
pub const LOOP_CTL_REMOVE: u32 = 0x4C81;
/// `/dev/loop-control`: return the index of a free device, adding one if needed.
pub const LOOP_CTL_GET_FREE: u32 = 0x4C82;

/// Block major number of loop devices.
pub const LOOP_MAJOR: u32 = 7;
/// Misc minor number of `/dev/loop-control`.
pub const LOOP_CTRL_MINOR: u32 = 237;

/// The legacy `struct loop_info` (x86-64 layout: `long` is 64 bits and
/// `__kernel_old_dev_t` is `unsigned long`). The C struct's implicit padding
/// is spelled out, so that every byte copied to user space is initialised.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopInfo {
    /// Device index (read-only).
    pub lo_number: i32,
    /// Padding before `lo_device`.
    pub pad0: [u8; 4],
    /// Device number of the backing file's filesystem (read-only).
    pub lo_device: u64,
    /// Inode number of the backing file (read-only).
    pub lo_inode: u64,
    /// Device number the backing file stands for, if a device (read-only).
    pub lo_rdevice: u64,
    /// Offset into the backing file.
    pub lo_offset: i32,
    /// Obsolete, ignored.
    pub lo_encrypt_type: i32,
    /// Obsolete.
    pub lo_encrypt_key_size: i32,
    /// `LO_FLAGS_*`.
    pub lo_flags: i32,
    /// Backing file name.
    pub lo_name: [u8; LO_NAME_SIZE],
    /// Obsolete.
    pub lo_encrypt_key: [u8; LO_KEY_SIZE],
    /// Obsolete.
    pub lo_init: [u64; 2],
    /// Padding.
    pub reserved: [u8; 4],
    /// Padding to the struct's 8-byte alignment.
    pub pad1: [u8; 4],
}

/// The legacy `struct loop_info` as a 32-bit x86 caller lays it out
/// (`struct compat_loop_info` of `loop.c`: `compat_dev_t` is 16 bits and
/// `compat_ulong_t` 32), for `compat_ioctl`. The implicit padding is
/// spelled out, so that every byte copied to user space is initialised.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompatLoopInfo {
    /// Device index (read-only).
    pub lo_number: i32,
    /// Device number of the backing file's filesystem (read-only).
    pub lo_device: u16,
    /// Padding before `lo_inode`.
    pub pad0: [u8; 2],
    /// Inode number of the backing file (read-only).
    pub lo_inode: u32,
    /// Device number the backing file stands for, if a device (read-only).
    pub lo_rdevice: u16,
    /// Padding before `lo_offset`.
    pub pad1: [u8; 2],
    /// Offset into the backing file.
    pub lo_offset: i32,
    /// Obsolete, ignored.
    pub lo_encrypt_type: i32,
    /// Obsolete, ignored.
    pub lo_encrypt_key_size: i32,
    /// `LO_FLAGS_*`.
    pub lo_flags: i32,
    /// Backing file name.
    pub lo_name: [u8; LO_NAME_SIZE],
    /// Obsolete.
    pub lo_encrypt_key: [u8; LO_KEY_SIZE],
    /// Obsolete.
    pub lo_init: [u32; 2],
    /// Padding.
    pub reserved: [u8; 4],
}

/// `struct loop_info64`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopInfo64 {
    /// Device number of the backing file's filesystem (read-only).
    pub lo_device: u64,
    /// Inode number of the backing file (read-only).
    pub lo_inode: u64,
    /// Device number the backing file stands for, if a device (read-only).
    pub lo_rdevice: u64,
    /// Offset into the backing file, in bytes.
    pub lo_offset: u64,
    /// Size limit in bytes; 0 means the whole file.
    pub lo_sizelimit: u64,
    /// Device index (read-only).
    pub lo_number: u32,
    /// Obsolete, ignored.
    pub lo_encrypt_type: u32,
    /// Obsolete.
    pub lo_encrypt_key_size: u32,
    /// `LO_FLAGS_*`.
    pub lo_flags: u32,
    /// Backing file name.
    pub lo_file_name: [u8; LO_NAME_SIZE],
    /// Obsolete.
    pub lo_crypt_name: [u8; LO_NAME_SIZE],
    /// Obsolete.
    pub lo_encrypt_key: [u8; LO_KEY_SIZE],
    /// Obsolete.
    pub lo_init: [u64; 2],
}

/// `struct loop_config`, the argument of `LOOP_CONFIGURE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopConfig {
    /// File descriptor of the backing file.
    pub fd: u32,
    /// Logical block size; 0 keeps the default.
    pub block_size: u32,
    /// Status to apply.
    pub info: LoopInfo64,
    /// Must be zero.
    pub reserved: [u64; 8],
}

impl Default for LoopInfo {
    fn default() -> Self {
        Self {
            lo_number: 0,
            pad0: [0; 4],
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
            reserved: [0; 4],
            pad1: [0; 4],
        }
    }
}

impl Default for CompatLoopInfo {
    fn default() -> Self {
        Self {
            lo_number: 0,
            lo_device: 0,
            pad0: [0; 2],
            lo_inode: 0,
            lo_rdevice: 0,
            pad1: [0; 2],
            lo_offset: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
            reserved: [0; 4],
        }
    }
}

impl Default for LoopInfo64 {
    fn default() -> Self {
        Self {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        }
    }
}

/// `LO_CRYPT_NONE`, the only transfer type left.
pub const LO_CRYPT_NONE: u32 = 0;
/// `LO_CRYPT_XOR`, removed.
pub const LO_CRYPT_XOR: u32 = 1;
/// `LO_CRYPT_CRYPTOAPI`, removed.
pub const LO_CRYPT_CRYPTOAPI: u32 = 18;

/// Why a `loop_info64` is refused, as `loop_set_status_from_info()` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoError {
    /// `EINVAL`: a key size over `LO_KEY_SIZE` or an encryption type.
    Invalid,
    /// `EINVAL`, with a note that XOR was removed.
    XorRemoved,
    /// `EINVAL`, with a note that cryptoloop was removed.
    CryptoapiRemoved,
    /// `EOVERFLOW`: offset or size limit beyond `LLONG_MAX`.
    Overflow,
}

impl LoopInfo64 {
    /// Checks the settable part of a status, as `loop_set_status_from_info()`.
    pub fn check(&self) -> Result<(), InfoError> {
        if self.lo_encrypt_key_size as usize > LO_KEY_SIZE {
            return Err(InfoError::Invalid);
        }
        match self.lo_encrypt_type {
            LO_CRYPT_NONE => {}
            LO_CRYPT_XOR => return Err(InfoError::XorRemoved),
            LO_CRYPT_CRYPTOAPI => return Err(InfoError::CryptoapiRemoved),
            _ => return Err(InfoError::Invalid),
        }
        if self.lo_offset > i64::MAX as u64 || self.lo_sizelimit > i64::MAX as u64 {
            return Err(InfoError::Overflow);
        }
        Ok(())
    }

    /// The file name as stored: the last byte forced to NUL.
    pub fn stored_file_name(&self) -> [u8; LO_NAME_SIZE] {
        let mut name = self.lo_file_name;
        name[LO_NAME_SIZE - 1] = 0;
        name
    }

    /// `loop_info64_from_old()`.
    pub fn from_old(info: &LoopInfo) -> Self {
        Self {
            lo_number: info.lo_number as u32,
            lo_device: info.lo_device,
            lo_inode: info.lo_inode,
            lo_rdevice: info.lo_rdevice,
            lo_offset: i64::from(info.lo_offset) as u64,
            lo_sizelimit: 0,
            lo_flags: info.lo_flags as u32,
            lo_file_name: info.lo_name,
            ..Self::default()
        }
    }

    /// `loop_info64_to_old()`: `None` (EOVERFLOW) where a value does not fit.
    pub fn to_old(&self) -> Option<LoopInfo> {
        let info = LoopInfo {
            lo_number: self.lo_number as i32,
            lo_device: self.lo_device,
            lo_inode: self.lo_inode,
            lo_rdevice: self.lo_rdevice,
            lo_offset: self.lo_offset as i32,
            lo_flags: self.lo_flags as i32,
            lo_name: self.lo_file_name,
            ..LoopInfo::default()
        };
        // C compares after the implicit conversions of the assignments.
        (i64::from(info.lo_offset) as u64 == self.lo_offset).then_some(info)
    }

    /// `loop_info64_from_compat()`: what `loop_info64_from_old()` takes, from
    /// a 32-bit caller's struct.
    pub fn from_compat(info: &CompatLoopInfo) -> Self {
        Self {
            lo_number: info.lo_number as u32,
            lo_device: info.lo_device.into(),
            lo_inode: info.lo_inode.into(),
            lo_rdevice: info.lo_rdevice.into(),
            lo_offset: i64::from(info.lo_offset) as u64,
            lo_sizelimit: 0,
            lo_flags: info.lo_flags as u32,
            lo_file_name: info.lo_name,
            ..Self::default()
        }
    }

    /// `loop_info64_to_compat()`: `None` (EOVERFLOW) where a device number,
    /// the inode number or the offset does not fit the 32-bit struct.
    pub fn to_compat(&self) -> Option<CompatLoopInfo> {
        let info = CompatLoopInfo {
            lo_number: self.lo_number as i32,
            lo_device: self.lo_device as u16,
            lo_inode: self.lo_inode as u32,
            lo_rdevice: self.lo_rdevice as u16,
            lo_offset: self.lo_offset as i32,
            lo_flags: self.lo_flags as i32,
            lo_name: self.lo_file_name,
            ..CompatLoopInfo::default()
        };
        // C compares after the implicit conversions of the assignments.
        (u64::from(info.lo_device) == self.lo_device
            && u64::from(info.lo_rdevice) == self.lo_rdevice
            && u64::from(info.lo_inode) == self.lo_inode
            && i64::from(info.lo_offset) as u64 == self.lo_offset)
            .then_some(info)
    }
}

/// Size of a loop device in 512-byte sectors, from the backing size, the
/// offset and the size limit, as `lo_calculate_size()` computes it.
pub fn device_sectors(backing_size: u64, offset: u64, sizelimit: u64) -> u64 {
    let mut size = backing_size as i64;
    if offset > 0 {
        size = size.wrapping_sub(offset as i64);
    }
    if size < 0 {
        return 0;
    }
    let mut size = size as u64;
    if sizelimit > 0 && sizelimit < size {
        size = sizelimit;
    }
    size >> 9
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    // Sizes and offsets of the C header's structs, compiled with gcc on x86-64.
    #[test]
    fn loop_info_layout() {
        assert_eq!(size_of::<LoopInfo>(), 168);
        assert_eq!(offset_of!(LoopInfo, lo_device), 8);
        assert_eq!(offset_of!(LoopInfo, lo_offset), 32);
        assert_eq!(offset_of!(LoopInfo, lo_flags), 44);
        assert_eq!(offset_of!(LoopInfo, lo_name), 48);
        assert_eq!(offset_of!(LoopInfo, lo_encrypt_key), 112);
        assert_eq!(offset_of!(LoopInfo, lo_init), 144);
        assert_eq!(offset_of!(LoopInfo, reserved), 160);
        assert_eq!(offset_of!(LoopInfo, pad1), 164);
    }

    // `struct compat_loop_info` of loop.c, compiled with gcc -m32.
    #[test]
    fn compat_loop_info_layout() {
        assert_eq!(size_of::<CompatLoopInfo>(), 140);
        assert_eq!(core::mem::align_of::<CompatLoopInfo>(), 4);
        assert_eq!(offset_of!(CompatLoopInfo, lo_device), 4);
        assert_eq!(offset_of!(CompatLoopInfo, lo_inode), 8);
        assert_eq!(offset_of!(CompatLoopInfo, lo_rdevice), 12);
        assert_eq!(offset_of!(CompatLoopInfo, lo_offset), 16);
        assert_eq!(offset_of!(CompatLoopInfo, lo_flags), 28);
        assert_eq!(offset_of!(CompatLoopInfo, lo_name), 32);
        assert_eq!(offset_of!(CompatLoopInfo, lo_encrypt_key), 96);
        assert_eq!(offset_of!(CompatLoopInfo, lo_init), 128);
        assert_eq!(offset_of!(CompatLoopInfo, reserved), 136);
    }

    #[test]
    fn loop_info64_layout() {
        assert_eq!(size_of::<LoopInfo64>(), 232);
        assert_eq!(offset_of!(LoopInfo64, lo_sizelimit), 32);
        assert_eq!(offset_of!(LoopInfo64, lo_number), 40);
        assert_eq!(offset_of!(LoopInfo64, lo_flags), 52);
        assert_eq!(offset_of!(LoopInfo64, lo_file_name), 56);
        assert_eq!(offset_of!(LoopInfo64, lo_crypt_name), 120);
        assert_eq!(offset_of!(LoopInfo64, lo_encrypt_key), 184);
        assert_eq!(offset_of!(LoopInfo64, lo_init), 216);
    }

    #[test]
    fn loop_config_layout() {
        assert_eq!(size_of::<LoopConfig>(), 304);
        assert_eq!(offset_of!(LoopConfig, block_size), 4);
        assert_eq!(offset_of!(LoopConfig, info), 8);
        assert_eq!(offset_of!(LoopConfig, reserved), 240);
    }

    #[test]
    fn device_sectors_follows_lo_calculate_size() {
        assert_eq!(device_sectors(1 << 20, 0, 0), 2048);
        assert_eq!(device_sectors((1 << 20) + 511, 0, 0), 2048);
        assert_eq!(device_sectors(1 << 20, 4096, 0), 2040);
        assert_eq!(device_sectors(1 << 20, 4096, 8192), 16);
        assert_eq!(device_sectors(1 << 20, 0, 1 << 30), 2048);
        assert_eq!(device_sectors(1 << 20, 2 << 20, 0), 0);
        assert_eq!(device_sectors(0, 0, 0), 0);
    }

    #[test]
    fn info_checks_follow_set_status_from_info() {
        let ok = LoopInfo64::default();
        assert_eq!(ok.check(), Ok(()));
        let mut i = ok;
        i.lo_encrypt_key_size = 33;
        assert_eq!(i.check(), Err(InfoError::Invalid));
        i.lo_encrypt_key_size = 32;
        assert_eq!(i.check(), Ok(()));
        i.lo_encrypt_type = LO_CRYPT_XOR;
        assert_eq!(i.check(), Err(InfoError::XorRemoved));
        i.lo_encrypt_type = LO_CRYPT_CRYPTOAPI;
        assert_eq!(i.check(), Err(InfoError::CryptoapiRemoved));
        i.lo_encrypt_type = 2;
        assert_eq!(i.check(), Err(InfoError::Invalid));
        let mut i = ok;
        i.lo_offset = i64::MAX as u64 + 1;
        assert_eq!(i.check(), Err(InfoError::Overflow));
        let mut i = ok;
        i.lo_sizelimit = u64::MAX;
        assert_eq!(i.check(), Err(InfoError::Overflow));
        let mut i = ok;
        i.lo_file_name = [b'a'; LO_NAME_SIZE];
        assert_eq!(i.stored_file_name()[LO_NAME_SIZE - 1], 0);
        assert_eq!(i.stored_file_name()[LO_NAME_SIZE - 2], b'a');
    }

    #[test]
    fn old_info_converts_with_eoverflow() {
        let mut i = LoopInfo64 {
            lo_offset: 4096,
            lo_number: 3,
            lo_flags: 4,
            ..Default::default()
        };
        let old = i.to_old().unwrap();
        assert_eq!((old.lo_offset, old.lo_number, old.lo_flags), (4096, 3, 4));
        i.lo_offset = 1 << 31;
        assert_eq!(i.to_old(), None);
        let back = LoopInfo64::from_old(&LoopInfo {
            lo_offset: -512,
            ..Default::default()
        });
        assert_eq!(back.lo_offset, (-512i64) as u64);
        assert_eq!(back.lo_sizelimit, 0);
    }

    #[test]
    fn compat_info_converts_with_eoverflow() {
        let mut i = LoopInfo64 {
            lo_device: 0xfe00,
            lo_inode: 0xffff_ffff,
            lo_rdevice: 0,
            lo_offset: (-4096i64) as u64,
            lo_number: 3,
            lo_flags: 4,
            lo_sizelimit: 1 << 40,
            lo_encrypt_key_size: 7,
            ..Default::default()
        };
        i.lo_file_name[0] = b'f';
        let c = i.to_compat().unwrap();
        assert_eq!(
            (
                c.lo_device,
                c.lo_inode,
                c.lo_offset,
                c.lo_number,
                c.lo_flags
            ),
            (0xfe00, 0xffff_ffff, -4096, 3, 4)
        );
        assert_eq!(c.lo_name[0], b'f');
        assert_eq!(c.lo_encrypt_key_size, 0);
        for over in [
            LoopInfo64 {
                lo_device: 0x1_0000,
                ..i
            },
            LoopInfo64 {
                lo_rdevice: 0x1_0000,
                ..i
            },
            LoopInfo64 {
                lo_inode: 1 << 32,
                ..i
            },
            LoopInfo64 {
                lo_offset: 1 << 31,
                ..i
            },
        ] {
            assert_eq!(over.to_compat(), None);
        }
        let back = LoopInfo64::from_compat(&CompatLoopInfo {
            lo_offset: -512,
            lo_encrypt_key_size: 33,
            lo_encrypt_type: 1,
            lo_inode: 0xffff_ffff,
            ..c
        });
        assert_eq!(back.lo_offset, (-512i64) as u64);
        assert_eq!(back.lo_inode, 0xffff_ffff);
        assert_eq!(back.lo_device, 0xfe00);
        assert_eq!(back.lo_file_name[0], b'f');
        // The obsolete fields are dropped, as in C: nothing to refuse.
        let back = LoopInfo64::from_compat(&CompatLoopInfo {
            lo_offset: 512,
            ..c
        });
        assert_eq!(back.check(), Ok(()));
    }

    #[test]
    fn flag_sets_match_the_header() {
        assert_eq!(LOOP_SET_STATUS_SETTABLE_FLAGS, 12);
        assert_eq!(LOOP_SET_STATUS_CLEARABLE_FLAGS, 4);
        assert_eq!(LOOP_CONFIGURE_SETTABLE_FLAGS, 29);
    }
}
