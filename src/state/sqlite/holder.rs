//! Which process holds a state file's lock, for those who watch: the
//! kernel lists every `flock` it grants in `/proc/locks`, with the holder's
//! process id and the file's device and inode. Nothing is locked or
//! written to find out, so a projector starting meanwhile is not refused.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How many times `/proc/locks` is read before a lock not found in it
/// counts as not held.
const READINGS: usize = 5;

/// The process id of the holder of the `flock` on the file at `path`;
/// `None` when no process holds one (or the kernel does not say).
///
/// The kernel hands `/proc/locks` out a page at a time and goes on from
/// the same line number: a lock taken or released by another process
/// between two pages shifts the lines, and one line is skipped or given
/// twice. With a few hundred locks changing (tests running side by side,
/// SQLite's own locks) a held lock was missed in 3 readings of 40, so a
/// lock not found is looked for again.
pub fn lock_holder(path: &Path) -> Option<u32> {
    let meta = std::fs::metadata(path).ok()?;
    (0..READINGS).find_map(|_| {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        holder_in(&locks, meta.dev(), meta.ino())
    })
}

/// The holder of a `FLOCK` on the file `(dev, ino)` in the text of
/// `/proc/locks`, whose lines read `1: FLOCK ADVISORY WRITE 4242 08:01:1234 0 EOF`
/// (the device as major:minor in hex).
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let file = format!("{:02x}:{:02x}:{ino}", major(dev), minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A lock waited for ("->") is not held.
        if fields.get(1) != Some(&"FLOCK") || fields.get(5) != Some(&file.as_str()) {
            return None;
        }
        fields.get(4)?.parse().ok()
    })
}

/// The major number of a device, as Linux encodes it in `dev_t`.
fn major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// The minor number of a device, as Linux encodes it in `dev_t`.
fn minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_a_file_s_flock_is_read_from_the_kernel_s_list() {
        let locks = "1: POSIX  ADVISORY  WRITE 10 08:01:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 08:01:77 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4343 08:01:77 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 99 103:02:77 0 EOF\n";
        assert_eq!(holder_in(locks, 0x0801, 77), Some(4242));
        assert_eq!(holder_in(locks, (0x103 << 8) | 2, 77), Some(99));
        assert_eq!(holder_in(locks, 0x0801, 78), None);
    }

    #[test]
    fn a_lock_this_process_takes_is_found() {
        let path = std::env::temp_dir().join(format!("holder-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        assert_eq!(lock_holder(&path), None);
        file.lock().unwrap();
        assert_eq!(lock_holder(&path), Some(std::process::id()));
        drop(file);
        assert_eq!(lock_holder(&path), None);
        std::fs::remove_file(&path).unwrap();
    }
}
