//! A stand-in for `/dev/log`: a unix datagram socket the test reads dromaius's audit
//! records from.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::support::make_temp_dir;

/// A unix *datagram* socket bound in a fresh temp path, standing in for /dev/log. Like a
/// healthy syslog it reads every record as it comes (a thread of its own), so a test that
/// never looks at its records does not leave dromaius waiting for room in a full queue.
pub struct AuditSink {
    dir: PathBuf,
    path: PathBuf,
    received: Arc<(Mutex<Vec<String>>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl AuditSink {
    pub fn new() -> AuditSink {
        let dir = make_temp_dir("audit");
        let path = dir.join("log");
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|e| panic!("bind datagram socket {}: {e}", path.display()));
        // Anyone may write to it, like /dev/log.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod audit socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set_read_timeout");
        let received = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stopped.load(Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let (records, arrived) = &*into;
                    let mut records = records.lock().unwrap_or_else(|e| e.into_inner());
                    records.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    arrived.notify_all();
                }
            }
        });
        AuditSink {
            dir,
            path,
            received,
            stop,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records received so far, waiting up to `wait` for at least `at_least` of them. Each
    /// record is one datagram as a String (lossy UTF-8).
    pub fn records(&self, at_least: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let (records, arrived) = &*self.received;
        let mut records = records.lock().unwrap_or_else(|e| e.into_inner());
        while records.len() < at_least {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            records = arrived
                .wait_timeout(records, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        records.clone()
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Default for AuditSink {
    fn default() -> Self {
        AuditSink::new()
    }
}
