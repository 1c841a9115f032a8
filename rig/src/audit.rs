//! A stand-in for `/dev/log`: a unix datagram socket the test reads dromaius's audit
//! records from.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::make_temp_dir;

/// A unix *datagram* socket bound in a fresh temp path, standing in for /dev/log.
pub struct AuditSink {
    dir: PathBuf,
    path: PathBuf,
    socket: UnixDatagram,
    received: Mutex<Vec<String>>,
}

impl AuditSink {
    pub fn new() -> AuditSink {
        let dir = make_temp_dir("audit");
        let path = dir.join("log");
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|e| panic!("bind datagram socket {}: {e}", path.display()));
        // Anyone may write to it, like /dev/log.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod audit socket");
        AuditSink {
            dir,
            path,
            socket,
            received: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records received so far, waiting up to `wait` for at least `at_least` of them. Each
    /// record is one datagram as a String (lossy UTF-8).
    pub fn records(&self, at_least: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = vec![0u8; 65536];
        loop {
            // Take whatever is already queued, without blocking.
            self.socket.set_nonblocking(true).expect("set_nonblocking");
            while let Ok(n) = self.socket.recv(&mut buf) {
                received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            let now = Instant::now();
            if received.len() >= at_least || now >= deadline {
                return received.clone();
            }
            // Then block for one more, but never past the deadline.
            self.socket.set_nonblocking(false).expect("set_nonblocking");
            self.socket
                .set_read_timeout(Some(deadline - now))
                .expect("set_read_timeout");
            if let Ok(n) = self.socket.recv(&mut buf) {
                received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Default for AuditSink {
    fn default() -> Self {
        AuditSink::new()
    }
}
