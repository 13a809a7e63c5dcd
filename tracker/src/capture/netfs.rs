//! A capture on a network file system (NFS, SMB/CIFS, FUSE such as sshfs, 9p, Ceph, ...).
//!
//! The capture is written through a shared mapping. On a local file system a reader on the
//! same machine (`memtrace live`) sees each write at once through the page cache. On a network
//! file system other machines, and even another mount on this one, see only what the kernel has
//! written back to the server, and it writes dirty mapped pages back only after
//! `dirty_expire_centisecs` (30 s by default) or at the end: a live view would show nothing
//! until the run ends. So on such a file system the tracker starts the write-back itself about
//! twice a second (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: it starts the writes and does not
//! wait for them). It rides on the 10 ms beat of the RSS samples, so it needs no thread.

use crate::sys;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Wanted time between two write-backs.
const INTERVAL_NS: u64 = 500_000_000;

/// The capture lives on a network file system.
static NETWORK: AtomicBool = AtomicBool::new(false);
/// When the last write-back started (monotonic ns).
static LAST_NS: AtomicU64 = AtomicU64::new(0);

/// statfs f_type values of network and user-space file systems (linux/magic.h and the file
/// systems' own headers).
const NETWORK_TYPES: [i64; 14] = [
    0x6969,     // NFS
    0x517B,     // SMB
    0xFE534D42, // SMB2
    0xFF534D42, // CIFS
    0x65735546, // FUSE (sshfs, s3fs, gcsfuse, ...)
    0x01021997, // 9P (v9fs)
    0x00C36400, // Ceph
    0x5346414F, // AFS
    0x6B414653, // kAFS
    0x73757245, // Coda
    0x7461636F, // OCFS2
    0x01161970, // GFS2
    0x0BD00BD0, // Lustre
    0x47504653, // GPFS
];

/// Notes whether the capture descriptor `fd` (just opened) is on a network file system.
pub fn note_file(fd: i32) {
    let network = sys::fs_type(fd).is_some_and(|t| NETWORK_TYPES.contains(&t));
    NETWORK.store(network, Ordering::Relaxed);
    LAST_NS.store(0, Ordering::Relaxed);
}

/// Claims the write-back due at `now_ns` (one thread wins): true when the caller should start
/// it. Always false on a local file system.
pub fn due(now_ns: u64) -> bool {
    if !NETWORK.load(Ordering::Relaxed) {
        return false;
    }
    let last = LAST_NS.load(Ordering::Relaxed);
    now_ns >= last.saturating_add(INTERVAL_NS)
        && LAST_NS
            .compare_exchange(last, now_ns, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: the statics are shared.
    #[test]
    fn a_local_file_is_never_due_and_a_network_one_twice_a_second() {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("netfs-{}", std::process::id()));
        let file = std::fs::File::create(&path).expect("create");
        note_file(file.as_raw_fd());
        // The temporary directory is local here (a FUSE one would make this part meaningless).
        if sys::fs_type(file.as_raw_fd()) != Some(0x65735546) {
            assert!(!NETWORK.load(Ordering::Relaxed));
            assert!(!due(u64::MAX));
        }
        let _ = std::fs::remove_file(&path);

        NETWORK.store(true, Ordering::Relaxed);
        LAST_NS.store(0, Ordering::Relaxed);
        let t = 10 * INTERVAL_NS;
        assert!(due(t));
        assert!(!due(t + 1), "claimed once");
        assert!(!due(t + INTERVAL_NS - 1));
        assert!(due(t + INTERVAL_NS));
        NETWORK.store(false, Ordering::Relaxed);
    }
}
