//! One syslog record per request (facility authpriv, ident `dromaius`), whatever happened,
//! and the rule for when a record may be dropped.
//!
//! Formatting is pure: every field is `name="value"` with the value escaped by
//! `escape`, so no byte a user sends can end the record, start another, or forge a field.
//! The [`Auditor`] decides what a flood may cost: a record of a request that acted (or of a
//! config refused) waits for room in syslog's queue up to [`ACTED_WAIT`] and is never
//! rate-limited; the records of invalid, denied and session requests are limited per
//! session ([`ROUTINE_BURST`], then [`ROUTINE_PER_SECOND`]) and wait at most
//! [`ROUTINE_WAIT`], so one session's flood can neither fill syslog's queue ahead of
//! another session's `destroy` nor hold up its own requests. Whatever is not sent is
//! counted and said in a record of its own (`dropped=N`) as soon as one gets through, and
//! at the session's end. Sending is the [`AuditSink`]'s (`system::syslog`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::escape::{escape, escape_truncated};
use crate::sshkey::auth_info::Identity;

/// How many bytes of a user-controlled field are kept in a record.
pub const MAX_FIELD_BYTES: usize = 256;

/// The longest a record of a request that acted may wait for room in syslog's queue: a
/// syslog that takes 15 ms a record (a loaded journald) frees the 10 places of a datagram
/// queue in 150 ms. A
/// syslog that makes one wait this long in vain is taken as stuck until a record gets
/// through again: meanwhile records do not wait at all, so a dead syslog costs one request
/// one wait, never every request.
pub const ACTED_WAIT: Duration = Duration::from_millis(250);
/// The longest any other record waits for room.
pub const ROUTINE_WAIT: Duration = Duration::from_millis(10);
/// Records of invalid, denied and session requests a session may send at once...
pub const ROUTINE_BURST: u32 = 20;
/// ... and how many more per second after that.
pub const ROUTINE_PER_SECOND: u32 = 5;

/// How urgent a syslog record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Debug,
}

/// Where records go: syslog's socket, or a test's fake.
pub trait AuditSink: Sync {
    /// Sends one message at `severity`, waiting at most `wait` for room; whether it was
    /// taken.
    fn send(&self, severity: Severity, message: &str, wait: Duration) -> bool;
}

/// A sink that takes nothing (no syslog socket could be opened).
pub struct Nowhere;

impl AuditSink for Nowhere {
    fn send(&self, _: Severity, _: &str, _: Duration) -> bool {
        false
    }
}

/// One session's records on their way to the sink, under the rule in the module doc.
pub struct Auditor<'s> {
    sink: &'s dyn AuditSink,
    state: Mutex<Budget>,
}

/// What the rule keeps count of.
struct Budget {
    /// Routine records that may still go now (a token bucket).
    tokens: f64,
    refilled: Instant,
    /// Records not sent since the last that was.
    dropped: u64,
    /// A record of a request that acted waited [`ACTED_WAIT`] in vain.
    stuck: bool,
    /// Who the summary of dropped records is about.
    key: String,
    client: Option<String>,
}

impl Budget {
    /// How long a record may wait for room: nothing while syslog is stuck.
    fn wait(&self, acted: bool) -> Duration {
        match (self.stuck, acted) {
            (true, _) => Duration::ZERO,
            (false, true) => ACTED_WAIT,
            (false, false) => ROUTINE_WAIT,
        }
    }

    fn take_token(&mut self, now: Instant) -> bool {
        let since = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens =
            (self.tokens + since * f64::from(ROUTINE_PER_SECOND)).min(f64::from(ROUTINE_BURST));
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

impl<'s> Auditor<'s> {
    pub fn new(sink: &'s dyn AuditSink, now: Instant) -> Auditor<'s> {
        Auditor {
            sink,
            state: Mutex::new(Budget {
                tokens: f64::from(ROUTINE_BURST),
                refilled: now,
                dropped: 0,
                stuck: false,
                key: String::new(),
                client: None,
            }),
        }
    }

    /// Sends `record` as the rule allows, at `now`.
    pub fn record(&self, record: &Record<'_>, now: Instant) {
        let mut budget = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if budget.key.is_empty() {
            budget.key = record.key.to_owned();
            budget.client = record.client.map(str::to_owned);
        }
        let acted = record.acted();
        if !acted && !budget.take_token(now) {
            budget.dropped += 1;
            return;
        }
        let wait = budget.wait(acted);
        self.say_dropped(&mut budget, wait);
        let sent = self.sink.send(record.severity(), &record.message(), wait);
        if sent {
            budget.stuck = false;
        } else {
            budget.dropped += 1;
            budget.stuck |= acted && wait == ACTED_WAIT;
        }
    }

    /// At the session's end: says what was dropped, if anything was.
    pub fn finish(&self) {
        let mut budget = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let wait = if budget.stuck {
            ROUTINE_WAIT
        } else {
            ACTED_WAIT
        };
        self.say_dropped(&mut budget, wait);
    }

    /// Sends the count of records dropped since the last one sent, if there are any.
    fn say_dropped(&self, budget: &mut Budget, wait: Duration) {
        if budget.dropped == 0 {
            return;
        }
        let message = format!(
            "key=\"{}\" client=\"{}\" dropped={} reason=\"records not sent: rate limit or \
             slow syslog\"",
            escape_truncated(budget.key.as_bytes(), MAX_FIELD_BYTES),
            budget
                .client
                .as_deref()
                .map_or_else(|| "-".to_owned(), escape),
            budget.dropped
        );
        if self.sink.send(Severity::Warning, &message, wait) {
            budget.dropped = 0;
        }
    }
}

impl Drop for Auditor<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

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
    /// The request acted (or was allowed to try), or the config was refused: the record is
    /// never rate-limited (see [`Auditor`]).
    pub acted: bool,
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

    pub fn severity(&self) -> Severity {
        match self.decision {
            Decision::Allow => Severity::Info,
            Decision::Deny | Decision::Invalid => Severity::Warning,
        }
    }

    /// Whether it is the record of a request that acted (or tried to), or of a config
    /// refused: such records are never rate-limited.
    pub fn acted(&self) -> bool {
        self.acted
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

#[cfg(test)]
mod tests {
    use super::*;
    // The log reader's split, from the rig the end-to-end suites check records with.
    use dromaius_rig::direct::message_fields;

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
            acted: false,
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
            let names: Vec<String> = message_fields(&message)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
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
}
