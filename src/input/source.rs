//! Input streams that can tell whether a read would wait, and that can be
//! stopped.
//!
//! The stdio loop commits a batch when it has handled every line already
//! waiting; this is how it knows that more are waiting beyond what it has
//! read so far. A [`Stoppable`] stream ends early when told to (on SIGTERM,
//! say): the lines read so far are handled and answered as at the end of
//! the input, and a last line cut short is dropped, unanswered.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Read, Stdin};
use std::os::fd::{AsFd, OwnedFd};

/// A byte stream that can say whether input is waiting.
pub trait Input: Read {
    /// True when a read would return at once: bytes are waiting or the
    /// stream has ended. False when it might block, or cannot be told.
    fn ready(&self) -> bool;

    /// True when the stream ended because it was stopped, not at its end:
    /// a last line without its line break is then cut short, not complete.
    fn stopped(&self) -> bool {
        false
    }

    /// True when each line is one message as it came (a stream's message,
    /// its line breaks made spaces): never joined with the next line.
    fn framed(&self) -> bool {
        false
    }
}

/// A stream that ends as soon as `stop` becomes readable (a byte written
/// to the other end of a pipe, by a signal handler say), even while a read
/// waits for input.
pub struct Stoppable<R> {
    inner: R,
    stop: OwnedFd,
    stopped: bool,
}

impl<R> Stoppable<R> {
    pub fn new(inner: R, stop: OwnedFd) -> Self {
        Stoppable {
            inner,
            stop,
            stopped: false,
        }
    }
}

impl<R: Read + AsFd> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Waits for input or the stop, whichever comes first; the stop wins.
        while !self.stopped {
            let mut fds = [
                PollFd::new(&self.stop, PollFlags::IN),
                PollFd::new(&self.inner, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            if !fds[0].revents().is_empty() {
                self.stopped = true;
            } else if !fds[1].revents().is_empty() {
                return self.inner.read(buf);
            }
        }
        Ok(0)
    }
}

impl<R: Input + AsFd> Input for Stoppable<R> {
    fn ready(&self) -> bool {
        self.stopped || polled(&self.stop) || self.inner.ready()
    }

    fn stopped(&self) -> bool {
        self.stopped
    }
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
    readable(fd, std::time::Duration::ZERO)
}

/// Waits up to `pause` for `fd` to become readable.
pub(crate) fn readable(fd: &impl AsFd, pause: std::time::Duration) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: pause.as_secs() as i64,
        tv_nsec: i64::from(pause.subsec_nanos()),
    };
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
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
