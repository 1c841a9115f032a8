//! Audit records to syslog: the datagram socket the config names, in RFC 3164 form
//! (facility authpriv, ident `dromaius`), and the `--debug` log through the same socket.
//! What may wait how long, and what may be dropped, is `audit::Auditor`'s rule; this only
//! sends, each message waiting at most what it is given. A missing or dead syslog costs one
//! failed `connect`, and every send after fails at once.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use syslog::{Facility, Formatter3164, LogFormat};

use crate::audit::{AuditSink, ROUTINE_WAIT, Severity};
use crate::escape::escape_truncated;

/// The syslog socket.
pub struct Syslog {
    socket: Option<UnixDatagram>,
    formatter: Formatter3164,
}

impl Syslog {
    /// Connects to the syslog socket at `path`. Failure is remembered, not reported: the
    /// request goes on without a log rather than not at all.
    pub fn connect(path: &Path) -> Syslog {
        let socket = UnixDatagram::unbound()
            .ok()
            .and_then(|socket| socket.connect(path).ok().map(|()| socket));
        Syslog {
            socket,
            formatter: Formatter3164 {
                facility: Facility::LOG_AUTHPRIV,
                hostname: None,
                process: "dromaius".into(),
                pid: std::process::id(),
            },
        }
    }
}

impl AuditSink for Syslog {
    fn send(&self, severity: Severity, message: &str, wait: Duration) -> bool {
        let Some(socket) = &self.socket else {
            return false;
        };
        let severity = match severity {
            Severity::Info => syslog::Severity::LOG_INFO,
            Severity::Warning => syslog::Severity::LOG_WARNING,
            Severity::Debug => syslog::Severity::LOG_DEBUG,
        };
        let mut datagram = Vec::new();
        if self
            .formatter
            .format(&mut datagram, severity, message)
            .is_err()
        {
            return false;
        }
        // Blocking, but never for longer than `wait` (SO_SNDTIMEO, whose zero would mean
        // forever); no wait at all is a non-blocking send.
        let ready = if wait.is_zero() {
            socket.set_nonblocking(true)
        } else {
            socket
                .set_nonblocking(false)
                .and_then(|()| socket.set_write_timeout(Some(wait)))
        };
        ready.is_ok() && socket.send(&datagram).is_ok()
    }
}

/// Diagnostics an administrator turns on with `--debug` (each virsh run, each decision),
/// written through the `log` facade to the audit's syslog at debug level. Callers write
/// what they have as it is; the whole line is escaped here, by the audit's own rule.
struct DebugLog {
    syslog: Syslog,
}

impl log::Log for DebugLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let text = record.args().to_string();
            let message = escape_truncated(text.as_bytes(), MAX_DEBUG_BYTES).replace("\\\\", "\\");
            let message = message.replace("\\\"", "\"");
            self.syslog.send(Severity::Debug, &message, ROUTINE_WAIT);
        }
    }

    fn flush(&self) {}
}

/// How much of one debug line is kept.
const MAX_DEBUG_BYTES: usize = 2048;

/// Sends `log::debug!` lines to the syslog socket at `path` from now on.
pub fn enable_debug(path: &Path) {
    let logger: &'static DebugLog = Box::leak(Box::new(DebugLog {
        syslog: Syslog::connect(path),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ACTED_WAIT, Auditor, Decision, ROUTINE_BURST, Record};
    use std::time::Instant;

    fn record<'a>(command: &'a [u8], acted: bool) -> Record<'a> {
        Record {
            key: "alice",
            client: Some("192.0.2.7 port 51234"),
            command,
            domain: Some("web1"),
            decision: if acted {
                Decision::Allow
            } else {
                Decision::Invalid
            },
            outcome: 0,
            reason: None,
            hypervisor: None,
            relay: None,
            identity: None,
            acted,
        }
    }

    /// A datagram socket in a fresh directory, and its path.
    fn socket(tag: &str) -> (std::path::PathBuf, UnixDatagram) {
        let dir = std::env::temp_dir().join(format!("dromaius-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        (path, socket)
    }

    #[test]
    fn a_stuck_syslog_costs_one_long_wait_at_most() {
        let (path, never_read) = socket("audit-stuck");
        let syslog = Syslog::connect(&path);
        let auditor = Auditor::new(&syslog, Instant::now());
        let started = Instant::now();
        for _ in 0..200 {
            auditor.record(&record(b"start", true), Instant::now());
        }
        let elapsed = started.elapsed();
        // One wait of ACTED_WAIT, then none while it stays stuck: far below 200 waits.
        assert!(elapsed < ACTED_WAIT * 3, "{elapsed:?}");
        drop(never_read);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_slow_syslog_loses_no_record_of_a_request_that_acted() {
        let (path, reader) = socket("audit-burst");
        reader
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let counter = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            let mut count = 0;
            while reader.recv(&mut buffer).is_ok() {
                // A syslog that takes its time with each record.
                std::thread::sleep(std::time::Duration::from_micros(200));
                count += 1;
            }
            count
        });
        let syslog = Syslog::connect(&path);
        let auditor = Auditor::new(&syslog, Instant::now());
        for _ in 0..3000 {
            auditor.record(&record(b"start", true), Instant::now());
        }
        assert_eq!(counter.join().unwrap(), 3000);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_flood_of_refusals_is_limited_and_counted() {
        let (path, reader) = socket("audit-flood");
        reader
            .set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        let reading = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            let mut messages = Vec::new();
            while let Ok(n) = reader.recv(&mut buffer) {
                messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
            }
            messages
        });
        let syslog = Syslog::connect(&path);
        {
            let auditor = Auditor::new(&syslog, Instant::now());
            for _ in 0..300 {
                auditor.record(&record(b"bogus", false), Instant::now());
            }
        }
        let messages = reading.join().unwrap();
        let sent = messages.iter().filter(|m| m.contains("command=")).count();
        let dropped: usize = messages
            .iter()
            .filter_map(|m| m.split(" dropped=").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
            .sum();
        assert!(sent <= ROUTINE_BURST as usize + 5, "{sent} sent");
        assert_eq!(sent + dropped, 300, "{messages:?}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_missing_socket_costs_nothing() {
        let syslog = Syslog::connect(Path::new("/nonexistent/dromaius-test.sock"));
        let auditor = Auditor::new(&syslog, Instant::now());
        let started = Instant::now();
        auditor.record(&record(b"start", true), Instant::now());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
