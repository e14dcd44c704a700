//! Input streams that can tell whether a read would wait.
//!
//! The stdio loop commits a batch when it has handled every line already
//! waiting; this is how it knows that more are waiting beyond what it has
//! read so far.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::fs::File;
use std::io::{Read, Stdin};
use std::os::fd::AsFd;

/// A byte stream that can say whether input is waiting.
pub trait Input: Read {
    /// True when a read would return at once: bytes are waiting or the
    /// stream has ended. False when it might block, or cannot be told.
    fn ready(&self) -> bool;
}

impl Input for &[u8] {
    fn ready(&self) -> bool {
        true
    }
}

impl Input for File {
    fn ready(&self) -> bool {
        polled(self)
    }
}

impl Input for Stdin {
    fn ready(&self) -> bool {
        polled(self)
    }
}

/// Polls `fd` without waiting. End of stream, a hang-up or an error also
/// count as ready: the read that follows returns at once with it.
fn polled(fd: &impl AsFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
}

/// For tests: a stream delivered in `chunks`, one per read, ready only
/// while some of the first `waiting` chunks are unread (and at the end).
#[cfg(test)]
pub struct Trickle {
    chunks: Vec<&'static [u8]>,
    waiting: usize,
}

#[cfg(test)]
impl Trickle {
    pub fn new(chunks: Vec<&'static [u8]>, waiting: usize) -> Self {
        Trickle { chunks, waiting }
    }
}

#[cfg(test)]
impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.chunks.is_empty() {
            return Ok(0);
        }
        let chunk = self.chunks.remove(0);
        buf[..chunk.len()].copy_from_slice(chunk);
        self.waiting = self.waiting.saturating_sub(1);
        Ok(chunk.len())
    }
}

#[cfg(test)]
impl Input for Trickle {
    fn ready(&self) -> bool {
        self.waiting > 0 || self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_socket_is_ready_once_bytes_wait_and_after_it_closes() {
        let (mut writer, reader) = UnixStream::pair().unwrap();
        let reader = File::from(std::os::fd::OwnedFd::from(reader));
        assert!(!reader.ready());
        writer.write_all(b"line\n").unwrap();
        assert!(reader.ready());
        drop(writer);
        assert!(reader.ready());
    }
}
