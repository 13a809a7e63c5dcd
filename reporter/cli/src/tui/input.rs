//! Waiting for a key without spinning: crossterm's reader loops forever on a terminal that has
//! hung up (its reads return end-of-file or EIO, and it retries), so the terminal is polled here
//! first and a hang-up ends the UI instead.

use ratatui::crossterm::event;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What a wait found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// An event is ready for `event::read`.
    Ready,
    /// Nothing within the time given (or a signal arrived).
    Quiet,
    /// The terminal is gone.
    HungUp,
}

pub struct Input {
    /// The terminal crossterm reads from (it opens /dev/tty too when stdin is not one).
    tty: Option<File>,
}

impl Input {
    pub fn open() -> Input {
        Input {
            tty: File::open("/dev/tty").ok(),
        }
    }

    /// Waits up to `timeout` for an event.
    pub fn wait(&self, timeout: Duration) -> std::io::Result<Wait> {
        let Some(tty) = &self.tty else {
            return Ok(if event::poll(timeout)? {
                Wait::Ready
            } else {
                Wait::Quiet
            });
        };
        if poll(tty, Duration::ZERO)? == Wait::HungUp {
            return Ok(Wait::HungUp);
        }
        // Events crossterm has already read (several keys in one read) are not on the terminal.
        if event::poll(Duration::ZERO)? {
            return Ok(Wait::Ready);
        }
        poll(tty, timeout)
    }
}

/// poll(2) on the terminal.
fn poll(tty: &File, timeout: Duration) -> std::io::Result<Wait> {
    let mut fds = libc::pollfd {
        fd: tty.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for the length given.
    let n = unsafe { libc::poll(&mut fds, 1, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        // A signal (a resize, a termination request): the caller looks again.
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(Wait::Quiet);
        }
        return Err(e);
    }
    if fds.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return Ok(Wait::HungUp);
    }
    Ok(if n == 0 { Wait::Quiet } else { Wait::Ready })
}
