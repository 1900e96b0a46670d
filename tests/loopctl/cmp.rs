//! `loopctl cmp [-n LIMIT] [-i SKIP[:SKIP2]] FILE1 FILE2` (`-`: the
//! standard input): GNU cmp's comparison, exit status and report, reading
//! 1 MiB at a time.
//!
//! GNU cmp reads in the files' block size, 4 KiB for a block device or an
//! ext4 file: a 64 MiB comparison is 32,768 reads. Each system call costs
//! tens of microseconds in the guest (TCG, debug kernel), and one run of
//! the guest suite's check tier compared 134 times, 73 s in all (issue 25).
//! The guest suite's `cmp` is this one; the options are the ones the suite
//! uses.
//!
//! Exit status as GNU cmp: 0 if the bytes compared are the same, 1 if they
//! differ ("F1 F2 differ: byte N" on stdout, without GNU's line number) or
//! one file ends first ("cmp: EOF on F after byte N" on stderr), 2 on
//! trouble.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
};

/// What to compare: the two paths, the bytes to skip in each, and at most
/// how many bytes.
#[derive(Debug, PartialEq)]
pub struct Args {
    pub paths: [String; 2],
    pub skip: [u64; 2],
    pub limit: Option<u64>,
}

/// The outcome of a comparison.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Same,
    /// The first differing byte, 1-based from the skipped offsets, as GNU
    /// cmp counts it.
    Differ {
        byte: u64,
    },
    /// File `which` (0 or 1) ended after `bytes` bytes, the other did not.
    Eof {
        which: usize,
        bytes: u64,
    },
}

fn num(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("cmp: invalid number {s:?}"))
}

/// Parses the arguments after `cmp`.
pub fn parse(args: &[&str]) -> Result<Args, String> {
    let (mut skip, mut limit, mut paths) = ([0, 0], None, Vec::new());
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        match a {
            "-n" => limit = Some(num(it.next().ok_or("cmp: -n needs a value")?)?),
            "-i" => {
                let v = it.next().ok_or("cmp: -i needs a value")?;
                skip = match v.split_once(':') {
                    Some((a, b)) => [num(a)?, num(b)?],
                    None => [num(v)?; 2],
                };
            }
            _ if a.starts_with('-') && a.len() > 1 => {
                return Err(format!("cmp: unknown option {a}"))
            }
            _ => paths.push(a.to_string()),
        }
    }
    let paths: [String; 2] = paths
        .try_into()
        .map_err(|_| "usage: loopctl cmp [-n LIMIT] [-i SKIP[:SKIP2]] FILE1 FILE2")?;
    Ok(Args { paths, skip, limit })
}

/// Reads until `buf` is full or the end of the input: pipes (a process
/// substitution) return less than asked.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Compares two inputs, positioned after their skips, for at most `limit`
/// bytes, in chunks of `chunk` bytes.
pub fn compare(
    a: &mut impl Read,
    b: &mut impl Read,
    limit: Option<u64>,
    chunk: usize,
) -> io::Result<Outcome> {
    let (mut ba, mut bb) = (vec![0u8; chunk], vec![0u8; chunk]);
    let mut done = 0u64;
    loop {
        let want = limit.map_or(chunk as u64, |l| (l - done).min(chunk as u64)) as usize;
        if want == 0 {
            return Ok(Outcome::Same);
        }
        let na = read_full(a, &mut ba[..want])?;
        let nb = read_full(b, &mut bb[..want])?;
        let n = na.min(nb);
        // A slice comparison is a memcmp; the byte is looked for only in
        // the chunk that differs.
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            return Ok(Outcome::Differ {
                byte: done + i as u64 + 1,
            });
        }
        done += n as u64;
        if na != nb {
            let which = if na < nb { 0 } else { 1 };
            return Ok(Outcome::Eof { which, bytes: done });
        }
        if n < want {
            return Ok(Outcome::Same);
        }
    }
}

/// Opens `path` ("-": the standard input) at offset `skip`: seeks where it
/// can, else reads the bytes away (a pipe).
fn open_at(path: &str, skip: u64) -> io::Result<Box<dyn Read>> {
    let mut r: Box<dyn Read> = if path == "-" {
        Box::new(io::stdin().lock())
    } else {
        let mut f = File::open(path)?;
        if skip > 0 && f.seek(SeekFrom::Start(skip)).is_ok() {
            return Ok(Box::new(f));
        }
        Box::new(f)
    };
    io::copy(&mut (&mut r).take(skip), &mut io::sink())?;
    Ok(r)
}

/// `loopctl cmp ...`: the exit status, 0, 1 or 2.
pub fn main(args: &[&str]) -> u8 {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let at = |i: usize| open_at(&a.paths[i], a.skip[i]).map_err(|e| format!("{}: {e}", a.paths[i]));
    let outcome = (|| {
        let (mut f0, mut f1) = (at(0)?, at(1)?);
        compare(&mut f0, &mut f1, a.limit, 1 << 20).map_err(|e| e.to_string())
    })();
    match outcome {
        Ok(Outcome::Same) => 0,
        Ok(Outcome::Differ { byte }) => {
            println!("{} {} differ: byte {byte}", a.paths[0], a.paths[1]);
            1
        }
        Ok(Outcome::Eof { which, bytes }) => {
            eprintln!("cmp: EOF on {} after byte {bytes}", a.paths[which]);
            1
        }
        Err(e) => {
            eprintln!("cmp: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most 3 bytes a call, as a pipe may.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn cmp(a: &[u8], b: &[u8], limit: Option<u64>) -> Outcome {
        compare(&mut Trickle(a), &mut &b[..], limit, 4).unwrap()
    }

    #[test]
    fn same_and_differ_as_gnu_cmp_counts() {
        assert_eq!(
            cmp(b"hello\nworld\n", b"hello\nworld\n", None),
            Outcome::Same
        );
        // GNU: "printf 'hello\nworld\n' | cmp - <(printf 'hello\nwOrld\n')"
        // says "differ: byte 8, line 2".
        assert_eq!(
            cmp(b"hello\nworld\n", b"hello\nwOrld\n", None),
            Outcome::Differ { byte: 8 }
        );
        assert_eq!(cmp(b"x", b"y", None), Outcome::Differ { byte: 1 });
        assert_eq!(cmp(b"", b"", None), Outcome::Same);
    }

    #[test]
    fn limit_stops_before_a_difference() {
        assert_eq!(cmp(b"abcdefgX", b"abcdefgY", Some(7)), Outcome::Same);
        assert_eq!(
            cmp(b"abcdefgX", b"abcdefgY", Some(8)),
            Outcome::Differ { byte: 8 }
        );
        assert_eq!(cmp(b"abc", b"abcdef", Some(3)), Outcome::Same);
        assert_eq!(cmp(b"abc", b"xyz", Some(0)), Outcome::Same);
    }

    #[test]
    fn shorter_file_is_eof() {
        assert_eq!(
            cmp(b"abcdefghij", b"abcdefghijk", None),
            Outcome::Eof {
                which: 0,
                bytes: 10
            }
        );
        assert_eq!(
            cmp(b"abcdefghijk", b"abcdefghij", None),
            Outcome::Eof {
                which: 1,
                bytes: 10
            }
        );
        // A difference before the shorter file's end wins.
        assert_eq!(cmp(b"aXc", b"abcd", None), Outcome::Differ { byte: 2 });
    }

    #[test]
    fn options() {
        let a = parse(&["-n", "4096", "-i", "8192:0", "a", "b"]).unwrap();
        assert_eq!(
            a,
            Args {
                paths: ["a".into(), "b".into()],
                skip: [8192, 0],
                limit: Some(4096)
            }
        );
        let a = parse(&["-i", "512", "a", "/dev/fd/63"]).unwrap();
        assert_eq!(a.skip, [512, 512]);
        assert_eq!(a.limit, None);
        assert!(parse(&["a"]).is_err());
        assert!(parse(&["-s", "a", "b"]).is_err());
        assert!(parse(&["-n", "x", "a", "b"]).is_err());
    }
}
