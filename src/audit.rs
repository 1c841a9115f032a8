//! One syslog record per request (facility authpriv, ident `dromaius`), whatever happened.
//!
//! Formatting is pure: every field is `name="value"` with the value escaped by
//! `escape`, so no byte a user sends can end the record, start another, or forge a field.
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

use crate::escape::{escape, escape_truncated};
use crate::identity::Identity;

/// How many bytes of a user-controlled field are kept in a record.
const MAX_FIELD_BYTES: usize = 256;

/// The longest one record may wait for room in syslog's queue. A Unix datagram socket holds
/// only `net.unix.max_dgram_qlen` (10) records, so a session of a few thousand refused lines
/// outruns even a healthy syslog; without a short wait, records would be dropped.
pub const SEND_WAIT: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    Invalid,
}

impl Decision {
    fn word(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Invalid => "invalid",
        }
    }
}

/// What one record says.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub key: &'a str,
    /// `SSH_CONNECTION`'s client address and port, if set.
    pub client: Option<&'a str>,
    /// The command word as understood, or for an invalid request the raw line.
    pub command: &'a [u8],
    pub domain: Option<&'a str>,
    pub decision: Decision,
    /// The exit status the request ended with.
    pub outcome: u8,
    /// For a denial or an invalid request: why (for the administrator only).
    pub reason: Option<&'a str>,
    /// The hypervisor an action acted on, when it did.
    pub hypervisor: Option<&'a str>,
    /// For `display`, which has two records: its start, or its end and what passed.
    pub relay: Option<Relay<'a>>,
    /// Which key (or certificate) logged in, when sshd says (`ExposeAuthInfo`).
    pub identity: Option<&'a Identity>,
}

/// The two moments of a relayed display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay<'a> {
    /// Connected to the domain's display at `endpoint`; the relay begins.
    Start { endpoint: &'a str },
    /// The relay is over: bytes each way and how long it lasted.
    End {
        to_guest: u64,
        to_viewer: u64,
        lasted: Duration,
    },
}

impl Record<'_> {
    /// The message part of the syslog record.
    pub fn message(&self) -> String {
        let mut message = format!(
            "key=\"{}\" client=\"{}\" command=\"{}\" domain=\"{}\" decision={} outcome={}",
            escape_truncated(self.key.as_bytes(), MAX_FIELD_BYTES),
            self.client.map_or_else(|| "-".to_owned(), escape),
            escape_truncated(self.command, MAX_FIELD_BYTES),
            self.domain.map_or_else(
                || "-".to_owned(),
                |d| escape_truncated(d.as_bytes(), MAX_FIELD_BYTES)
            ),
            self.decision.word(),
            self.outcome,
        );
        if let Some(reason) = self.reason {
            // A reason can quote what the user sent (an unknown command word): cut it too.
            let reason = escape_truncated(reason.as_bytes(), MAX_FIELD_BYTES);
            message.push_str(&format!(" reason=\"{reason}\""));
        }
        if let Some(hypervisor) = self.hypervisor {
            let hypervisor = escape_truncated(hypervisor.as_bytes(), MAX_FIELD_BYTES);
            message.push_str(&format!(" hypervisor=\"{hypervisor}\""));
        }
        match self.relay {
            Some(Relay::Start { endpoint }) => {
                let endpoint = escape_truncated(endpoint.as_bytes(), MAX_FIELD_BYTES);
                message.push_str(&format!(" relay=\"start\" endpoint=\"{endpoint}\""));
            }
            Some(Relay::End {
                to_guest,
                to_viewer,
                lasted,
            }) => message.push_str(&format!(
                " relay=\"end\" bytes_to_guest={to_guest} bytes_to_viewer={to_viewer} \
                 duration_ms={}",
                lasted.as_millis()
            )),
            None => {}
        }
        if let Some(identity) = self.identity {
            let fingerprint = escape_truncated(identity.fingerprint.as_bytes(), MAX_FIELD_BYTES);
            message.push_str(&format!(" fingerprint=\"{fingerprint}\""));
            if let Some(cert) = &identity.cert {
                // The key ID is text the CA chose: escaped like every other field.
                let key_id = escape_truncated(cert.key_id.as_bytes(), MAX_FIELD_BYTES);
                message.push_str(&format!(
                    " cert_id=\"{key_id}\" cert_serial={}",
                    cert.serial
                ));
            }
        }
        message
    }

    fn severity(&self) -> Severity {
        match self.decision {
            Decision::Allow => Severity::LOG_INFO,
            Decision::Deny | Decision::Invalid => Severity::LOG_WARNING,
        }
    }
}

/// The client part of `SSH_CONNECTION` ("client_ip client_port server_ip server_port").
pub fn client_from_ssh_connection(value: &str) -> Option<String> {
    let mut words = value.split(' ');
    let ip = words.next().filter(|w| !w.is_empty())?;
    Some(match words.next() {
        Some(port) => format!("{ip} port {port}"),
        None => ip.to_owned(),
    })
}

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
            decision: Decision::Allow,
            outcome: 0,
            reason: None,
            hypervisor: None,
            relay: None,
            identity: None,
        }
    }

    #[test]
    fn a_display_has_a_start_and_an_end_record() {
        let start = Record {
            relay: Some(Relay::Start {
                endpoint: "127.0.0.1:5900",
            }),
            ..record(b"display", Some("web1"))
        };
        assert!(
            start
                .message()
                .ends_with(" outcome=0 relay=\"start\" endpoint=\"127.0.0.1:5900\""),
            "{}",
            start.message()
        );
        let end = Record {
            reason: Some("viewer closed"),
            relay: Some(Relay::End {
                to_guest: 12,
                to_viewer: 3456,
                lasted: Duration::from_millis(7890),
            }),
            ..record(b"display", Some("web1"))
        };
        assert!(
            end.message().ends_with(
                " reason=\"viewer closed\" relay=\"end\" bytes_to_guest=12 \
                 bytes_to_viewer=3456 duration_ms=7890"
            ),
            "{}",
            end.message()
        );
    }

    #[test]
    fn a_record_names_every_field() {
        assert_eq!(
            record(b"start", Some("web1")).message(),
            "key=\"alice\" client=\"192.0.2.7 port 51234\" command=\"start\" domain=\"web1\" decision=allow outcome=0"
        );
    }

    #[test]
    fn hostile_fields_cannot_forge_a_line_or_a_field() {
        let hostile = [
            "web1\" decision=allow outcome=0",
            "web1\ndromaius[1]: key=\"root\" decision=allow",
            "web1\r\x1b[2K",
            "\u{202e}web1",
            "web1\0",
        ];
        for domain in hostile {
            let message = record(b"start", Some(domain)).message();
            let names: Vec<String> = fields(&message).into_iter().map(|(n, _)| n).collect();
            assert_eq!(
                names,
                ["key", "client", "command", "domain", "decision", "outcome"],
                "{message}"
            );
            assert!(
                message.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{message}"
            );
        }
        let raw = record(b"st\xffart \x1b]0;x\x07", None).message();
        assert!(
            raw.contains("command=\"st\\xffart \\x1b]0;x\\x07\""),
            "{raw}"
        );
    }

    /// Splits a record the way a log reader would: `name=value` or `name="value"` with
    /// backslash escapes, separated by single spaces.
    fn fields(message: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut chars = message.chars().peekable();
        while chars.peek().is_some() {
            let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        other => value.push(other),
                    }
                }
                chars.next(); // the separating space
            } else {
                value = chars.by_ref().take_while(|c| *c != ' ').collect();
            }
            out.push((name, value));
        }
        out
    }

    #[test]
    fn huge_fields_are_truncated() {
        let long = "a".repeat(100_000);
        let message = record(long.as_bytes(), Some(&long)).message();
        assert!(message.len() < 1000, "{}", message.len());
        // An invalid request's reason quotes the word: 4000 bytes of it must not get through.
        let word = "\u{1b}".repeat(4000);
        let reason = format!("unknown command \"{}\"", escape(&word));
        let message = Record {
            reason: Some(&reason),
            ..record(word.as_bytes(), None)
        }
        .message();
        assert!(message.len() < 2000, "{}", message.len());
    }

    #[test]
    fn client_address_comes_from_ssh_connection() {
        assert_eq!(
            client_from_ssh_connection("127.0.0.1 40000 127.0.0.1 22").as_deref(),
            Some("127.0.0.1 port 40000")
        );
        assert_eq!(
            client_from_ssh_connection("::1 5 ::1 22").as_deref(),
            Some("::1 port 5")
        );
        assert_eq!(client_from_ssh_connection(""), None);
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
