//! A network file system for the tests: an sshd of the test's own on a loopback port, and
//! sshfs mounts of one directory through it. Two mounts of the same directory behave as two
//! machines do on NFS: each has its own page cache, and one sees the other's writes only when
//! they reach the server (the sshd) and it reads them from there again.
//!
//! Needs sshd, ssh-keygen and sshfs (Debian: openssh-server, sshfs; .ci/run installs them) and
//! a FUSE device the process may mount.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server and its mounts; unmounted and stopped on drop (a panicking test too).
pub struct NetFs {
    root: PathBuf,
    port: u16,
    mounts: Vec<PathBuf>,
    sshd_pid: Option<u32>,
}

/// Whether the tools are installed; under CI (`CI` set) their absence fails the test instead,
/// since .ci/run installs them.
pub fn have_sshfs() -> bool {
    let found = ["sshfs", "ssh-keygen", "fusermount3"]
        .iter()
        .all(|tool| on_path(tool))
        && Path::new("/usr/sbin/sshd").is_file();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "sshfs, fusermount3, ssh-keygen or /usr/sbin/sshd is missing (apt-get install sshfs openssh-server)"
        );
        eprintln!("skipped: sshfs or sshd is not installed");
    }
    found
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetFs {
    /// Starts the server for `root/export` (created), with its keys and configuration in
    /// `root`. Err when this machine cannot (no FUSE device the process may use); the caller
    /// says it skipped.
    pub fn start(root: &Path) -> Result<NetFs, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse".into());
        }
        std::fs::create_dir_all(root.join("export")).map_err(|e| e.to_string())?;
        for key in ["host_key", "user_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(root.join(key)))?;
        }
        std::fs::copy(root.join("user_key.pub"), root.join("authorized_keys"))
            .map_err(|e| e.to_string())?;
        // A port of our own: the pid spreads parallel test binaries apart.
        let port = 20_000 + (std::process::id() % 20_000) as u16;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\n\
             AuthorizedKeysFile {root}/authorized_keys\nPasswordAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nSubsystem sftp internal-sftp\n\
             PidFile {root}/sshd.pid\n",
            root = root.display()
        );
        std::fs::write(root.join("sshd_config"), config).map_err(|e| e.to_string())?;
        // sshd wants its privilege-separation directory (as root).
        let _ = std::fs::create_dir_all("/run/sshd");
        run(Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(root.join("sshd_config"))
            .arg("-E")
            .arg(root.join("sshd.log")))?;
        let mut fs = NetFs {
            root: root.to_path_buf(),
            port,
            mounts: Vec::new(),
            sshd_pid: None,
        };
        let start = Instant::now();
        while fs.sshd_pid.is_none() && start.elapsed() < Duration::from_secs(10) {
            fs.sshd_pid = std::fs::read_to_string(root.join("sshd.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok());
            std::thread::sleep(Duration::from_millis(20));
        }
        fs.sshd_pid.ok_or("sshd did not start")?;
        Ok(fs)
    }

    /// The directory the server exports (its local path, as the server sees it).
    pub fn export(&self) -> PathBuf {
        self.root.join("export")
    }

    /// Mounts the export at `root/<name>` with sshfs's default caching and returns that path.
    pub fn mount(&mut self, name: &str) -> Result<PathBuf, String> {
        let at = self.root.join(name);
        std::fs::create_dir_all(&at).map_err(|e| e.to_string())?;
        let user = Command::new("id")
            .arg("-un")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .map_err(|e| e.to_string())?;
        let key = self.root.join("user_key");
        run(Command::new("sshfs")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-o")
            .arg(format!(
                "IdentityFile={},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes",
                key.display()
            ))
            .arg(format!("{user}@127.0.0.1:{}", self.export().display()))
            .arg(&at))?;
        self.mounts.push(at.clone());
        Ok(at)
    }
}

impl Drop for NetFs {
    fn drop(&mut self) {
        for at in self.mounts.drain(..).rev() {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&at)
                .stdin(Stdio::null())
                .status();
        }
        if let Some(pid) = self.sshd_pid {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}
