//! One request, start to finish: reload → judge → place → act → tell → record.
//!
//! [`Gateway::handle`] is the single path every request takes, whether it came from
//! `SSH_ORIGINAL_COMMAND`, a piped line, the interactive prompt or a go-dromaius `-cmd`.
//! Each step is a call into the module that owns it: the config is read again
//! (`ConfigSource`), the policy judges (`policy::judge_line`), `placement` picks the
//! hypervisor, libvirt acts (`hypervisor::Libvirt`), the user is told (`User`), and the
//! audit records it (`audit::Auditor`). Everything beyond the gateway is reached through
//! the narrow interfaces of [`effects`], so its tests use fakes.

mod act;
mod complete;
pub mod effects;
mod record;
#[cfg(test)]
mod tests;
mod viewer;
mod watch;

use std::cell::{Cell, Ref, RefCell};
use std::time::Instant;

use crate::audit::{AuditSink, Auditor};
use crate::config::{Config, ConfigError};
use crate::error::{Error, Status};
use crate::policy::{self, Judgement, Subject};
use crate::request::{ParseError, Verb};
use crate::session::{Handled, Line};
use crate::sshkey::auth_info::Identity;

pub use act::Reply;
pub use effects::{Clock, ConfigSource, Effects, User};

/// Who is asking: the key (from `--key`, or the Unix user), a go-dromaius `-host` binding,
/// the client's address (`SSH_CONNECTION`) and which key or certificate logged in, if sshd
/// said.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub key: String,
    pub bound: Option<String>,
    pub client: Option<String>,
    pub identity: Option<Identity>,
}

/// A config that cannot be used before any gateway could start: the user is told, the
/// refusal is recorded (to `audit`: with no config there is no `syslog_socket` of its own),
/// and the invocation ends with 78.
pub fn refuse_config(
    who: &Who,
    user: &dyn User,
    audit: &dyn AuditSink,
    refused: ConfigError,
) -> Status {
    user.report(&Error::Config {
        refused,
        ends_session: false,
    });
    Auditor::new(audit, Instant::now()).record(&record::config_refused(who), Instant::now());
    Status::Config
}

/// The gateway of one invocation: who asks, through what, under which config.
pub struct Gateway<'e> {
    who: Who,
    effects: Effects<'e>,
    auditor: Auditor<'e>,
    /// The config as last read.
    config: RefCell<Config>,
    /// The config was read for the request in hand (a one-shot request reads it once);
    /// otherwise it is read again before the next request.
    fresh: Cell<bool>,
}

impl<'e> Gateway<'e> {
    /// `config` is the config as just read; `fresh` when the next request is the one it was
    /// read for (a one-shot request), so it need not be read twice.
    pub fn new(who: Who, effects: Effects<'e>, config: Config, fresh: bool) -> Gateway<'e> {
        Gateway {
            who,
            auditor: Auditor::new(effects.audit, Instant::now()),
            effects,
            config: RefCell::new(config),
            fresh: Cell::new(fresh),
        }
    }

    /// Handles one line. `None` for a blank line, which asks for nothing.
    pub fn handle(&self, line: &Line) -> Option<Handled> {
        if let Err(refused) = self.reload() {
            self.effects.user.report(&refused);
            self.record_config_refused();
            return Some(Handled {
                status: Status::Config,
                end_session: true,
            });
        }
        let config = self.config();
        let subject = self.subject(&config);
        let channel = self.effects.user.channel();
        let judgement = match line {
            Line::Text(bytes) => policy::judge_line(&subject, bytes, channel)?,
            Line::TooLong(length) => Judgement::Invalid(ParseError::TooLong(*length)),
            Line::NotUtf8 => Judgement::Invalid(ParseError::NotUtf8),
        };
        self.log_decision(&judgement);
        let reply = self.carry_out(&subject, &judgement);
        self.effects.user.say(&reply.shown);
        if let Err(error) = &reply.result {
            self.effects.user.report(error);
        }
        self.record(line, &judgement, &reply);
        Some(Handled {
            status: reply.status(),
            end_session: judgement == Judgement::Session(Verb::Exit) || self.effects.user.hung_up(),
        })
    }

    /// Reads the config again before a request (a grant removed, changed or expired takes
    /// effect now), unless it was read for this very request. A config that no longer
    /// loads ends the session.
    fn reload(&self) -> Result<(), Error> {
        if self.fresh.take() {
            return Ok(());
        }
        let refused = match self.effects.config.load() {
            Ok(config) => {
                *self.config.borrow_mut() = config;
                return Ok(());
            }
            Err(refused) => refused,
        };
        Err(Error::Config {
            refused,
            ends_session: true,
        })
    }

    /// Who asks, judged by `config` (the config as last read), now.
    fn subject<'c>(&self, config: &'c Config) -> Subject<'c> {
        Subject::at(
            config,
            &self.who.key,
            self.who.bound.as_deref(),
            self.effects.clock.now(),
        )
    }

    /// The config as last read.
    pub fn config(&self) -> Ref<'_, Config> {
        self.config.borrow()
    }

    /// Who the prompt names: the short name of the bound `-host` (up to its first dot, as
    /// go-dromaius did), otherwise the key.
    pub fn session_name(&self) -> String {
        match &self.who.bound {
            Some(host) => host
                .split('.')
                .next()
                .filter(|short| !short.is_empty())
                .unwrap_or(host)
                .to_owned(),
            None => self.who.key.clone(),
        }
    }
}
