//! Audit records to syslog: the datagram socket the config names, in RFC 3164 form
//! (facility authpriv, ident `dromaius`), and the `--debug` log through the same socket.
//!
//! Sending never fails a request and never holds it up for long: a missing or dead syslog
//! costs one failed `connect`; a syslog that is merely slower than a flood of requests is
//! waited for, up to [`SEND_WAIT`] per record, so that no record is lost to a burst; and a
//! syslog that makes a record wait that long is taken as stuck and never waited for again.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use syslog::{Facility, Formatter3164, LogFormat, Severity};

use crate::audit::Record;
use crate::escape::escape_truncated;

/// The longest one record may wait for room in syslog's queue. A Unix datagram socket holds
/// only `net.unix.max_dgram_qlen` (10) records, so a session of a few thousand refused lines
/// outruns even a healthy syslog; without a short wait, records would be dropped.
pub const SEND_WAIT: Duration = Duration::from_millis(10);

/// Where records go.
pub struct Audit {
    socket: Option<UnixDatagram>,
    /// Set once a record waited [`SEND_WAIT`] in vain: from then on nothing waits.
    stuck: AtomicBool,
    formatter: Formatter3164,
}

impl Audit {
    /// Connects to the syslog socket at `path`. Failure is remembered, not reported: the
    /// request goes on without a log rather than not at all.
    pub fn connect(path: &Path) -> Audit {
        let socket = UnixDatagram::unbound().ok().and_then(|socket| {
            // Blocking, but never for longer than SEND_WAIT (SO_SNDTIMEO).
            socket.set_write_timeout(Some(SEND_WAIT)).ok()?;
            socket.connect(path).ok()?;
            Some(socket)
        });
        Audit {
            socket,
            stuck: AtomicBool::new(false),
            formatter: Formatter3164 {
                facility: Facility::LOG_AUTHPRIV,
                hostname: None,
                process: "dromaius".into(),
                pid: std::process::id(),
            },
        }
    }

    pub fn record(&self, record: &Record<'_>) {
        self.send(record.severity(), record.message());
    }

    fn send(&self, severity: Severity, message: String) {
        let Some(socket) = &self.socket else { return };
        let mut datagram = Vec::new();
        if self
            .formatter
            .format(&mut datagram, severity, message)
            .is_ok()
        {
            if let Err(error) = socket.send(&datagram) {
                if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                    && !self.stuck.swap(true, Ordering::SeqCst)
                {
                    let _ = socket.set_nonblocking(true);
                }
            }
        }
    }
}

/// Diagnostics an administrator turns on with `--debug` (each virsh run, each decision),
/// written through the `log` facade to the audit's syslog at debug level. Callers write
/// what they have as it is; the whole line is escaped here, by the audit's own rule.
struct DebugLog {
    audit: Audit,
}

impl log::Log for DebugLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let text = record.args().to_string();
            let message = escape_truncated(text.as_bytes(), MAX_DEBUG_BYTES).replace("\\\\", "\\");
            self.audit
                .send(Severity::LOG_DEBUG, message.replace("\\\"", "\""));
        }
    }

    fn flush(&self) {}
}

/// How much of one debug line is kept.
const MAX_DEBUG_BYTES: usize = 2048;

/// Sends `log::debug!` lines to the syslog socket at `path` from now on.
pub fn enable_debug(path: &Path) {
    let logger: &'static DebugLog = Box::leak(Box::new(DebugLog {
        audit: Audit::connect(path),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(command: &'a [u8], domain: Option<&'a str>) -> Record<'a> {
        Record {
            key: "alice",
            client: Some("192.0.2.7 port 51234"),
            command,
            domain,
            decision: crate::audit::Decision::Allow,
            outcome: 0,
            reason: None,
            hypervisor: None,
            relay: None,
            identity: None,
        }
    }

    #[test]
    fn a_stuck_syslog_costs_one_short_wait_at_most() {
        let dir = std::env::temp_dir().join(format!("dromaius-audit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let never_read = UnixDatagram::bind(&path).unwrap();
        let audit = Audit::connect(&path);
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            audit.record(&record(b"start", Some("web1")));
        }
        let elapsed = started.elapsed();
        // One wait of SEND_WAIT, then nothing waits: far below 1000 waits.
        assert!(elapsed < SEND_WAIT * 50, "{elapsed:?}");
        drop(never_read);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_slow_syslog_loses_no_record_of_a_burst() {
        let dir = std::env::temp_dir().join(format!("dromaius-audit-burst-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let reader = UnixDatagram::bind(&path).unwrap();
        reader
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let counter = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            let mut count = 0;
            while reader.recv(&mut buffer).is_ok() {
                count += 1;
            }
            count
        });
        let audit = Audit::connect(&path);
        for _ in 0..3000 {
            audit.record(&record(b"start", Some("web1")));
        }
        assert_eq!(counter.join().unwrap(), 3000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_socket_costs_nothing() {
        let audit = Audit::connect(Path::new("/nonexistent/dromaius-test.sock"));
        let started = std::time::Instant::now();
        audit.record(&record(b"start", Some("web1")));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
