//! What the audit says of a request: one record per request (two for `display`: its start
//! and its end), every field escaped by `audit`, and for `--debug` each decision with the
//! grant that took it.

use std::time::Instant;

use crate::audit::{self, Record};
use crate::config::HypervisorId;
use crate::error::Status;
use crate::policy::{DenyReason, Judgement};
use crate::session::Line;

use super::{Gateway, Reply, Who};

impl Gateway<'_> {
    /// The record of one request.
    pub(super) fn record(&self, line: &Line, judgement: &Judgement<'_>, reply: &Reply) {
        let raw: &[u8] = match line {
            Line::Text(bytes) => bytes,
            Line::TooLong(_) => b"(too long)",
            Line::NotUtf8 => b"(not UTF-8)",
        };
        let invalid_reason;
        let (command, domain, decision, reason): (&[u8], Option<&str>, _, _) = match judgement {
            Judgement::Invalid(error) => {
                invalid_reason = error.to_string();
                let reason = Some(invalid_reason.as_str());
                (raw, None, audit::Decision::Invalid, reason)
            }
            Judgement::Denied {
                verb,
                domain,
                reason,
            } => (
                verb.name().as_bytes(),
                domain.as_deref(),
                audit::Decision::Deny,
                Some(deny_reason(*reason)),
            ),
            Judgement::Session(verb) => {
                (verb.name().as_bytes(), None, audit::Decision::Allow, None)
            }
            Judgement::Allowed(allowed) => (
                allowed.action.name().as_bytes(),
                Some(allowed.domain.as_str()),
                audit::Decision::Allow,
                reply.ended,
            ),
        };
        let hypervisor = self.fleet_label(reply.acted_on);
        self.send(&Record {
            command,
            domain,
            decision,
            outcome: reply.status().code(),
            reason,
            hypervisor: hypervisor.as_deref(),
            relay: reply.traffic.map(|traffic| audit::Relay::End {
                to_guest: traffic.to_display,
                to_viewer: traffic.to_viewer,
                lasted: traffic.lasted,
            }),
            acted: matches!(judgement, Judgement::Allowed(_)),
            ..self.blank_record()
        });
    }

    /// The record that says a display relay has begun, and to where.
    pub(super) fn record_display_start(&self, domain: &str, at: HypervisorId, endpoint: &str) {
        let hypervisor = self.fleet_label(Some(at));
        self.send(&Record {
            command: b"display",
            domain: Some(domain),
            decision: audit::Decision::Allow,
            outcome: Status::Ok.code(),
            hypervisor: hypervisor.as_deref(),
            relay: Some(audit::Relay::Start { endpoint }),
            acted: true,
            ..self.blank_record()
        });
    }

    /// The record of a config that was refused: no request ran.
    pub(super) fn record_config_refused(&self) {
        self.send(&config_refused(&self.who));
    }

    /// The record of a viewer's tunnel: to `domain`'s display when one was named and
    /// granted, a denial naming what was `asked` otherwise.
    pub(super) fn record_tunnel(&self, domain: Option<&str>, asked: &str, reply: &Reply) {
        let refusal = format!("no granted display at {asked}");
        let hypervisor = self.fleet_label(reply.acted_on);
        self.send(&Record {
            command: b"display",
            domain,
            decision: match domain {
                Some(_) => audit::Decision::Allow,
                None => audit::Decision::Deny,
            },
            outcome: reply.status().code(),
            reason: match domain {
                Some(_) => reply.ended,
                None => Some(&refusal),
            },
            hypervisor: hypervisor.as_deref(),
            relay: reply.traffic.map(|traffic| audit::Relay::End {
                to_guest: traffic.to_display,
                to_viewer: traffic.to_viewer,
                lasted: traffic.lasted,
            }),
            acted: true,
            ..self.blank_record()
        });
    }

    /// A listing made for Tab completion, which is audited like a `list`.
    pub(super) fn record_completion_listing(&self, command: &str) {
        self.send(&Record {
            command: command.as_bytes(),
            decision: audit::Decision::Allow,
            reason: Some("tab completion"),
            ..self.blank_record()
        });
    }

    fn send(&self, record: &Record<'_>) {
        self.auditor.record(record, Instant::now());
    }

    /// A record of this session with nothing requested yet.
    fn blank_record(&self) -> Record<'_> {
        blank_record(&self.who)
    }

    /// The hypervisor acted on, named in records when the config is a fleet.
    fn fleet_label(&self, at: Option<HypervisorId>) -> Option<String> {
        let config = self.config();
        at.filter(|_| config.is_fleet())
            .map(|id| config.hypervisor(id).label())
    }

    /// For the administrator's `--debug`: each decision, with the grant that took it. (The
    /// debug log escapes the whole line.)
    pub(super) fn log_decision(&self, judgement: &Judgement<'_>) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let key = &self.who.key;
        match judgement {
            Judgement::Allowed(allowed) => {
                let config = self.config();
                let by = match allowed.grant.and_then(|index| {
                    let grant = config.keys.get(key)?.get(index)?;
                    Some((index, config.place_of(grant)))
                }) {
                    Some((index, place)) => format!("grant #{} ({place})", index + 1),
                    None => "AllowedHosts".into(),
                };
                log::debug!(
                    "key {key}: {} on {} allowed by {by}",
                    allowed.action.name(),
                    allowed.domain
                );
            }
            Judgement::Denied {
                verb,
                domain,
                reason,
            } => log::debug!(
                "key {key}: {} on {} denied: {}",
                verb.name(),
                domain.as_deref().unwrap_or("-"),
                deny_reason(*reason)
            ),
            Judgement::Session(verb) => log::debug!("key {key}: {} allowed", verb.name()),
            Judgement::Invalid(error) => log::debug!("key {key}: invalid request: {error}"),
        }
    }
}

/// A record of `who`'s session with nothing requested yet.
fn blank_record(who: &Who) -> Record<'_> {
    Record {
        key: &who.key,
        client: who.client.as_deref(),
        command: b"-",
        domain: None,
        decision: audit::Decision::Allow,
        outcome: Status::Ok.code(),
        reason: None,
        hypervisor: None,
        relay: None,
        identity: who.identity.as_ref(),
        acted: false,
    }
}

/// The record of a config refused, for `who`: no request ran.
pub(super) fn config_refused(who: &Who) -> Record<'_> {
    Record {
        decision: audit::Decision::Deny,
        outcome: Status::Config.code(),
        reason: Some("config refused"),
        acted: true,
        ..blank_record(who)
    }
}

/// What the audit says a denial was for (the administrator's eyes only).
pub fn deny_reason(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::UnknownKey => "key not in config",
        DenyReason::OutsideBoundDomain => "outside the session's bound domain",
        DenyReason::NoMatchingGrant => "no grant matches",
    }
}
