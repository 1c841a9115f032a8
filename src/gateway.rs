//! One request, start to finish: judge → carry out → report → audit.
//!
//! [`Gateway::handle`] is the single path every request takes, whether it came from
//! `SSH_ORIGINAL_COMMAND`, a piped line, the interactive prompt or a go-dromaius `-cmd`.
//! The judgement is the library's (`policy::judge_line`); libvirt is reached through the
//! [`Libvirt`] interface; this module decides what each outcome means for the user: which
//! words, which exit status, what `list`, `help` and completion may show.

use std::cell::{Cell, Ref, RefCell};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::action::{Action, ActionSet, Needs};
use crate::audit::{self, Audit, Record};
use crate::config::{Config, Hypervisor, HypervisorId};
use crate::error::{self, Error, Status};
use crate::escape::escape;
use crate::graphics;
use crate::hypervisor::{Fault, Libvirt, Target};
use crate::identity::Identity;
use crate::lookup;
use crate::output::say;
use crate::policy::{self, Allowed, DenyReason, Judgement, Subject};
use crate::relay;
use crate::request::{ParseError, Verb};
use crate::session::{Handled, Line};

/// How long Tab may wait for the listings it completes from: a Tab that waits a minute for
/// a stuck libvirt is worse than no completion.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(5);

/// The SSH channel the requests come on: whether its ends are terminals, and whether it
/// carries one request only. `console` needs a terminal on stdin, `screenshot` a stdout
/// that is not one, `display` a one-shot channel with neither (see `action::Needs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub stdin_is_terminal: bool,
    pub stdout_is_terminal: bool,
    pub one_shot: bool,
}

/// Who is asking, from where, and under which config.
pub struct Gateway<'a> {
    /// The config as last read: in a session it is read again before every request, so
    /// that access the administrator removed ends with the next request.
    config: RefCell<Config>,
    /// Whether the config has been read for a request yet (the first one uses the config
    /// the gateway started with).
    started: Cell<bool>,
    config_path: PathBuf,
    key: String,
    /// go-dromaius `-host`: the one domain this session may act on.
    bound: Option<String>,
    /// `SSH_CONNECTION`'s client address, for the audit.
    client: Option<String>,
    /// Which key or certificate logged in, if sshd said (for the audit).
    identity: Option<Identity>,
    libvirt: &'a dyn Libvirt,
    audit: Audit,
    channel: Channel,
}

/// What carrying out a request produced: text for stdout, how it ended, where it acted,
/// and for an attachment how it ended and what passed (for the audit).
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub shown: String,
    pub result: Result<(), Error>,
    pub acted_on: Option<HypervisorId>,
    pub ended: Option<&'static str>,
    pub traffic: Option<relay::Traffic>,
}

impl Reply {
    fn done(shown: String) -> Reply {
        Reply {
            shown,
            result: Ok(()),
            acted_on: None,
            ended: None,
            traffic: None,
        }
    }

    fn failed(error: Error) -> Reply {
        Reply {
            result: Err(error),
            ..Reply::done(String::new())
        }
    }

    /// The reply of an action that reached a hypervisor (or tried to).
    fn acted(result: Result<String, Error>, acted_on: Option<HypervisorId>) -> Reply {
        let ended = matches!(result, Err(Error::Revoked(_))).then_some("revoked while attached");
        let reply = match result {
            Ok(shown) => Reply::done(shown),
            Err(error) => Reply::failed(error),
        };
        Reply {
            acted_on,
            ended,
            ..reply
        }
    }
}

impl<'a> Gateway<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        config_path: PathBuf,
        key: String,
        bound: Option<String>,
        client: Option<String>,
        identity: Option<Identity>,
        libvirt: &'a dyn Libvirt,
        channel: Channel,
    ) -> Gateway<'a> {
        Gateway {
            audit: Audit::connect(&config.syslog_socket),
            config: RefCell::new(config),
            started: Cell::new(false),
            config_path,
            key,
            bound,
            client,
            identity,
            libvirt,
            channel,
        }
    }

    /// The config as last read.
    fn config(&self) -> Ref<'_, Config> {
        self.config.borrow()
    }

    /// Reads the config again (before a session's second and later requests): a grant
    /// removed, changed or expired takes effect now. A config that no longer loads ends the
    /// session (78); the refusal is reported and audited.
    fn reread(&self) -> Result<(), Handled> {
        if !self.started.replace(true) {
            return Ok(());
        }
        match crate::config::load_for_key(&self.config_path, &self.key) {
            Ok(fresh) => {
                *self.config.borrow_mut() = fresh;
                Ok(())
            }
            Err(refused) => {
                let error = Error::Config(format!("{refused}; the session ends"));
                error::report(&error);
                self.audit.record(&Record {
                    key: &self.key,
                    client: self.client.as_deref(),
                    command: b"-",
                    domain: None,
                    decision: audit::Decision::Deny,
                    outcome: Status::Config.code(),
                    reason: Some("config refused"),
                    hypervisor: None,
                    relay: None,
                    identity: self.identity.as_ref(),
                });
                Err(Handled {
                    status: Status::Config,
                    end_session: true,
                })
            }
        }
    }

    /// Handles one line. `None` for a blank line, which asks for nothing.
    pub fn handle(&self, line: &Line) -> Option<Handled> {
        // Until the record is sent, a hang-up must not end the process under us.
        let _in_hand = crate::sys::request_in_hand();
        if let Err(ended) = self.reread() {
            return Some(ended);
        }
        let config = self.config();
        let subject = Subject::new(&config, &self.key, self.bound.as_deref());
        let judgement = match line {
            Line::Text(bytes) => policy::judge_line(&subject, bytes)?,
            Line::TooLong(length) => Judgement::Invalid(ParseError::TooLong(*length)),
            Line::NotUtf8 => Judgement::Invalid(ParseError::NotUtf8),
        };
        self.log_decision(&judgement);
        let reply = self.carry_out(&subject, &judgement);
        say(&reply.shown);
        let status = match &reply.result {
            Ok(()) => Status::Ok,
            Err(error) => {
                error::report(error);
                error.status()
            }
        };
        self.record(line, &judgement, status, &reply);
        Some(Handled {
            status,
            end_session: judgement == Judgement::Session(Verb::Exit) || crate::sys::hung_up(),
        })
    }

    /// Carries out what was judged. Runs nothing for a refusal.
    pub fn carry_out(&self, subject: &Subject<'_>, judgement: &Judgement<'_>) -> Reply {
        match judgement {
            Judgement::Invalid(error) => Reply::failed(Error::Usage(format!(
                "{error}; type \"help\" for the commands you may use"
            ))),
            Judgement::Denied { .. } => Reply::failed(Error::Denied),
            Judgement::Session(Verb::Exit) => Reply::done(String::new()),
            Judgement::Session(Verb::Help) => Reply::done(help_text(subject)),
            Judgement::Session(_) => self.list(subject),
            Judgement::Allowed(allowed) => self.act(allowed),
        }
    }

    /// Carries out an allowed action; says where it acted (for the audit).
    fn act(&self, allowed: &Allowed<'_>) -> Reply {
        let Allowed { action, domain, .. } = allowed;
        if let Err(error) = self.fits_channel(*action, domain) {
            return Reply::failed(error);
        }
        let (id, target, left) = match self.locate(allowed) {
            Ok(located) => located,
            Err(error) => return Reply::failed(error),
        };
        let config = self.config();
        let at = config.hypervisor(id);
        let fleet = allowed.hypervisors.len() > 1;
        let explain = |fault| self.explain(fault, action.name(), domain, fleet.then_some(at));
        let watch = Attached {
            config_path: &self.config_path,
            key: &self.key,
            bound: self.bound.as_deref(),
            action: *action,
            domain,
            at,
        };
        let deadline = Instant::now() + left;
        let result = match action {
            Action::Console => self
                .libvirt
                .console(at, &target, &watch)
                .map(|()| String::new())
                .map_err(explain),
            Action::Display => {
                return self.display(allowed, id, &target, deadline, &watch, &explain);
            }
            Action::Screenshot => self
                .libvirt
                .screenshot(at, &target, deadline, &mut std::io::stdout().lock())
                .map(|_| String::new())
                .map_err(explain),
            _ => self
                .libvirt
                .act(at, *action, &target, deadline)
                .map_err(explain),
        };
        Reply::acted(result, Some(id))
    }

    /// Refuses, before anything runs, an action the channel cannot carry.
    fn fits_channel(&self, action: Action, domain: &str) -> Result<(), Error> {
        let channel = self.channel;
        let shown = escape(domain);
        let why = match action.needs() {
            Needs::Nothing => return Ok(()),
            Needs::Terminal if channel.stdin_is_terminal => return Ok(()),
            Needs::Terminal => {
                "console needs a terminal: connect with ssh -t (and the key needs the pty option)"
                    .to_owned()
            }
            Needs::FileOrPipe if !channel.stdout_is_terminal => return Ok(()),
            Needs::FileOrPipe => format!(
                "screenshot writes an image to stdout, which is a terminal here: redirect it \
                 to a file, e.g. ssh dromaius@HOST screenshot {shown} > {shown}.png"
            ),
            Needs::RawChannel if !channel.one_shot => format!(
                "display is a request of its own: ssh -T dromaius@HOST display {shown}, \
                 started by a VNC viewer's helper (see USAGE.md, which your administrator has as \
                 /usr/share/doc/dromaius/USAGE.md), not at the prompt"
            ),
            Needs::RawChannel if channel.stdin_is_terminal || channel.stdout_is_terminal => {
                format!(
                    "display needs the channel to itself without a terminal: connect with \
                     ssh -T dromaius@HOST display {shown}"
                )
            }
            Needs::RawChannel => return Ok(()),
        };
        Err(Error::Failed(why))
    }

    /// `display`: relays the domain's VNC display over stdin and stdout until either side
    /// closes, the client hangs up, or revocation ends it. Only for a hypervisor on this
    /// host; its start is audited here, its end with the request.
    fn display(
        &self,
        allowed: &Allowed<'_>,
        id: HypervisorId,
        target: &Target<'_>,
        deadline: Instant,
        watch: &Attached<'_>,
        explain: &dyn Fn(Fault) -> Error,
    ) -> Reply {
        let at = watch.at;
        let domain: &str = &allowed.domain;
        let shown = escape(domain);
        let failed = |why: String| Reply::acted(Err(Error::Failed(why)), Some(id));
        if !at.is_local() {
            return failed(format!(
                "display {shown}: {} is not on this host, and only a hypervisor on this host \
                 has its graphical console relayed (its 127.0.0.1 is not ours)",
                escape(&at.label())
            ));
        }
        let said = match self.libvirt.display(at, target, deadline) {
            Ok(said) => said,
            Err(fault) => return Reply::acted(Err(explain(fault)), Some(id)),
        };
        let endpoint = match graphics::endpoint(&said) {
            Ok(endpoint) => endpoint,
            Err(why) => return failed(format!("display {shown}: {why}")),
        };
        let mut socket = match relay::connect(&endpoint, deadline) {
            Ok(socket) => socket,
            Err(error) => {
                return failed(format!(
                    "display {shown}: cannot connect to its display at {}: {}",
                    escape(&endpoint.to_string()),
                    relay::why_not(&error)
                ));
            }
        };
        let endpoint_text = endpoint.to_string();
        self.audit_display_start(allowed, id, &endpoint_text);
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let (ending, traffic) = relay::relay(
            stdin.as_fd(),
            stdout.as_fd(),
            socket.as_mut(),
            watch,
            &crate::sys::hung_up,
        );
        let result = match &ending {
            relay::Ending::ViewerClosed | relay::Ending::DisplayClosed => Ok(String::new()),
            relay::Ending::HungUp => Err(Error::Interrupted("display interrupted".into())),
            relay::Ending::Revoked(why) => Err(Error::Revoked(format!(
                "{why}; the display of {shown} was closed"
            ))),
        };
        Reply {
            ended: Some(ending.word()),
            traffic: Some(traffic),
            ..Reply::acted(result, Some(id))
        }
    }

    /// The record that says a display relay has begun, and to where.
    fn audit_display_start(&self, allowed: &Allowed<'_>, id: HypervisorId, endpoint: &str) {
        let config = self.config();
        self.audit.record(&Record {
            key: &self.key,
            client: self.client.as_deref(),
            command: allowed.action.name().as_bytes(),
            domain: Some(&allowed.domain),
            decision: audit::Decision::Allow,
            outcome: Status::Ok.code(),
            reason: None,
            hypervisor: config
                .is_fleet()
                .then(|| config.hypervisor(id).label())
                .as_deref(),
            relay: Some(audit::Relay::Start { endpoint }),
            identity: self.identity.as_ref(),
        });
    }

    /// Where an allowed action acts: the hypervisor, the domain as virsh is to be given it,
    /// and how much of that hypervisor's `timeout_secs` is left.
    ///
    /// One hypervisor: a name virsh can read only as a name is acted on as it is, any other
    /// is looked up first. Several: the domain is looked up on each, read-only, all at once,
    /// and acted on where it is defined; defined on more than one, where it is active if
    /// exactly one is. A domain is never started while a hypervisor that may run it cannot
    /// be asked, nor when two hypervisors define it and neither runs it (two QEMUs on one
    /// disk).
    fn locate<'r>(
        &self,
        allowed: &'r Allowed<'_>,
    ) -> Result<(HypervisorId, Target<'r>, Duration), Error> {
        let Allowed {
            action,
            domain,
            hypervisors,
            ..
        } = allowed;
        let domain: &str = domain;
        let timeout = self.config().timeout;
        let ids: &[HypervisorId] = if hypervisors.is_empty() {
            &self.config().connect
        } else {
            hypervisors
        };
        if let [id] = ids {
            let config = self.config();
            let at = config.hypervisor(*id);
            if lookup::is_only_a_name(domain) {
                // virsh cannot read this name as an id or a UUID: it goes as it is, one run.
                let target = Target {
                    name: domain,
                    uuid: None,
                };
                return Ok((*id, target, timeout));
            }
            let started = Instant::now();
            let explain = |fault| self.explain(fault, action.name(), domain, None);
            return match self
                .libvirt
                .lookup(at, domain, started + timeout)
                .map_err(explain)?
            {
                Some(found) => Ok((
                    *id,
                    Target {
                        name: domain,
                        uuid: found.uuid,
                    },
                    timeout.saturating_sub(started.elapsed()),
                )),
                None => Err(explain(Fault::NotFound)),
            };
        }

        let libvirt = self.libvirt;
        let answers = self.on_each(ids, timeout, |at, deadline| {
            libvirt.lookup(at, domain, deadline)
        });
        let mut found = Vec::new();
        let mut unanswered = Vec::new();
        for (id, answer, took) in answers {
            match answer {
                Ok(Some(here)) => found.push((id, here, took)),
                Ok(None) => {}
                Err(fault) => unanswered.push((id, fault)),
            }
        }
        let labels = |ids: &mut dyn Iterator<Item = HypervisorId>| -> String {
            let names: Vec<String> = ids.map(|id| self.config().hypervisor(id).label()).collect();
            names.join(", ")
        };
        let shown = escape(domain);
        if *action == Action::Start && !unanswered.is_empty() {
            let why = unanswered
                .into_iter()
                .map(|(id, fault)| {
                    self.explain(fault, "lookup", domain, Some(self.config().hypervisor(id)))
                })
                .collect();
            let detail = combined(why).err().unwrap_or(Error::Denied);
            let text = format!(
                "start {shown} refused: the domain may be running where it could not be \
                 looked up\n{detail}"
            );
            return Err(match detail {
                Error::TimedOut(_) => Error::TimedOut(text),
                _ => Error::Unavailable(text),
            });
        }
        let chosen = match found.len() {
            0 if unanswered.is_empty() => {
                return Err(Error::Failed(format!("no domain named \"{shown}\"")));
            }
            0 => {
                let why: Vec<Error> = unanswered
                    .into_iter()
                    .map(|(id, fault)| {
                        self.explain(
                            fault,
                            action.name(),
                            domain,
                            Some(self.config().hypervisor(id)),
                        )
                    })
                    .collect();
                return Err(combined(why).err().unwrap_or(Error::Denied));
            }
            1 => found.swap_remove(0),
            _ => {
                let active: Vec<usize> = (0..found.len()).filter(|i| found[*i].1.active).collect();
                if let [only] = active[..] {
                    found.swap_remove(only)
                } else {
                    let defined = labels(&mut found.iter().map(|(id, _, _)| *id));
                    let running = if active.is_empty() {
                        "active on none of them".to_owned()
                    } else {
                        format!(
                            "active on {}",
                            labels(&mut active.iter().map(|i| found[*i].0))
                        )
                    };
                    return Err(Error::Failed(format!(
                        "\"{shown}\" is defined on {defined} and {running}: refusing to {} it \
                         (a domain must be defined on one hypervisor, or active on exactly one)",
                        action.name()
                    )));
                }
            }
        };
        let (id, here, took) = chosen;
        let target = Target {
            name: domain,
            uuid: here.uuid,
        };
        Ok((id, target, timeout.saturating_sub(took)))
    }

    /// [`crate::hypervisor::ask_each`] on the config as last read.
    fn on_each<T: Send>(
        &self,
        ids: &[HypervisorId],
        timeout: Duration,
        ask: impl Fn(&Hypervisor, Instant) -> Result<T, Fault> + Sync,
    ) -> Vec<(HypervisorId, Result<T, Fault>, Duration)> {
        crate::hypervisor::ask_each(&self.config(), ids, timeout, ask)
    }

    /// What a fault means for the user, for `command` on `domain` (empty for `list`), on
    /// `at` when the user's grants span more than one hypervisor (it is then named).
    fn explain(&self, fault: Fault, command: &str, domain: &str, at: Option<&Hypervisor>) -> Error {
        let mut what = if domain.is_empty() {
            command.to_owned()
        } else {
            format!("{command} {}", escape(domain))
        };
        let on = at.map(|h| escape(&h.label()));
        if let Some(on) = &on {
            what.push_str(&format!(" on {on}"));
        }
        // virsh's own words for one of several hypervisors say which one they are about.
        let named = |words: String| match &on {
            Some(on) => words
                .lines()
                .map(|line| format!("{on}: {line}"))
                .collect::<Vec<_>>()
                .join("\n"),
            None => words,
        };
        match fault {
            Fault::CannotRun(why) => Error::Unavailable(why),
            Fault::Unreachable(words) if words.is_empty() => {
                Error::Unavailable(format!("{what}: libvirt could not be reached"))
            }
            Fault::Unreachable(words) => Error::Unavailable(named(words)),
            Fault::TimedOut => Error::TimedOut(format!(
                "{what} took longer than {} s and was stopped",
                self.config().timeout.as_secs()
            )),
            Fault::Interrupted => Error::Interrupted(format!("{command} interrupted")),
            Fault::NotFound => Error::Failed(format!("no domain named \"{}\"", escape(domain))),
            Fault::ConsoleBusy(words) => Error::Failed(format!(
                "{}\nthe console of {} is in use by another session",
                named(words),
                escape(domain)
            )),
            Fault::Failed { words, status } if words.is_empty() => {
                Error::Failed(format!("virsh {command} failed ({status})"))
            }
            Fault::Failed { words, .. } => Error::Failed(named(words)),
            Fault::Revoked(why) => Error::Revoked(format!(
                "{why}; the {command} of {} was closed",
                escape(domain)
            )),
        }
    }

    /// `list`: every existing domain this key may act on, with its state, from one listing
    /// per hypervisor, all at once. A hypervisor that fails is named; the others are still
    /// listed. When the key's grants span more than one hypervisor, a third column says
    /// which each domain is on (a name defined on two is listed once for each).
    fn list(&self, subject: &Subject<'_>) -> Reply {
        let ids = subject.hypervisors();
        let fleet = ids.len() > 1;
        let mut rows: Vec<(String, &'static str, String)> = Vec::new();
        let mut errors = Vec::new();
        let libvirt = self.libvirt;
        let answers = self.on_each(&ids, self.config().timeout, |at, deadline| {
            libvirt.states(at, deadline)
        });
        for (id, answer, _) in answers {
            let config = self.config();
            let at = config.hypervisor(id);
            match answer {
                Ok(states) => rows.extend(
                    states
                        .into_iter()
                        .filter(|(name, _)| subject.may_list(name, id))
                        .map(|(name, state)| {
                            (name, state, if fleet { at.label() } else { String::new() })
                        }),
                ),
                // Always named: a list that is short of one hypervisor must say which.
                Err(fault) => errors.push(self.explain(fault, "list", "", Some(at))),
            }
        }
        rows.sort();
        Reply {
            result: combined(errors),
            ..Reply::done(list_text(&rows))
        }
    }

    /// The audit record of one request.
    fn record(&self, line: &Line, judgement: &Judgement<'_>, status: Status, reply: &Reply) {
        let raw: &[u8] = match line {
            Line::Text(bytes) => bytes,
            Line::TooLong(_) => b"(too long)",
            Line::NotUtf8 => b"(not UTF-8)",
        };
        let invalid_reason;
        let (command, domain, decision, reason): (&[u8], Option<&str>, _, _) = match judgement {
            Judgement::Invalid(error) => {
                invalid_reason = error.to_string();
                (
                    raw,
                    None,
                    audit::Decision::Invalid,
                    Some(invalid_reason.as_str()),
                )
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
        self.audit.record(&Record {
            key: &self.key,
            client: self.client.as_deref(),
            command,
            domain,
            decision,
            outcome: status.code(),
            reason,
            hypervisor: reply
                .acted_on
                .filter(|_| self.config().is_fleet())
                .map(|id| self.config().hypervisor(id).label())
                .as_deref(),
            relay: reply.traffic.map(|traffic| audit::Relay::End {
                to_guest: traffic.to_display,
                to_viewer: traffic.to_viewer,
                lasted: traffic.lasted,
            }),
            identity: self.identity.as_ref(),
        });
    }

    /// For the administrator's `--debug`: each decision, with the grant that took it. (The
    /// debug log escapes the whole line.)
    fn log_decision(&self, judgement: &Judgement<'_>) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let key = &self.key;
        match judgement {
            Judgement::Allowed(allowed) => {
                let by = match allowed.grant.and_then(|index| {
                    let config = self.config();
                    let grant = config.keys.get(&self.key)?.get(index)?;
                    Some((index, grant.line))
                }) {
                    Some((index, line)) => format!(
                        "grant #{} ({}:{line})",
                        index + 1,
                        self.config_path.to_string_lossy()
                    ),
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

    /// Who the prompt names: the short name of the bound `-host` (up to its first dot, as
    /// go-dromaius did), otherwise the key.
    pub fn session_name(&self) -> String {
        match &self.bound {
            Some(host) => host
                .split('.')
                .next()
                .filter(|short| !short.is_empty())
                .unwrap_or(host)
                .to_owned(),
            None => self.key.clone(),
        }
    }
}

/// Completion is not a request (it is not audited and runs nothing but a read-only
/// listing), so it offers only what this key could use anyway: never a command outside its
/// grants, never a domain it may not run that command on.
impl crate::prompt::Completions for Gateway<'_> {
    fn commands(&self) -> Vec<&'static str> {
        let config = self.config();
        let subject = Subject::new(&config, &self.key, self.bound.as_deref());
        // What this channel cannot carry (display, screenshot at a terminal) is not offered.
        let mut words: Vec<&'static str> = subject
            .usable_actions()
            .iter()
            .filter(|action| self.fits_channel(*action, "").is_ok())
            .map(Action::name)
            .collect();
        if subject.is_known() {
            words.extend(["list", "help"]);
        }
        words.extend(["exit", "quit"]);
        words
    }

    fn domains(&self, action: Action) -> Vec<String> {
        let config = self.config();
        let subject = Subject::new(&config, &self.key, self.bound.as_deref());
        if !subject.usable_actions().contains(action) || crate::sys::hung_up() {
            return Vec::new();
        }
        let only: ActionSet = [action].into_iter().collect();
        let timeout = config.timeout.min(COMPLETION_TIMEOUT);
        let libvirt = self.libvirt;
        let answers = self.on_each(&subject.hypervisors(), timeout, |at, deadline| {
            libvirt.states(at, deadline)
        });
        let mut names: Vec<String> = Vec::new();
        for (id, answer, _) in answers {
            let Ok(states) = answer else { continue };
            names.extend(
                states
                    .into_iter()
                    .map(|(name, _)| name)
                    .filter(|name| subject.may_use_on(name, id, only)),
            );
        }
        names.sort();
        names.dedup();
        names
    }
}

/// An attachment's watch: the config is read again, and the attachment may go on while
/// the same decision would still allow it on the same hypervisor.
struct Attached<'w> {
    config_path: &'w std::path::Path,
    key: &'w str,
    bound: Option<&'w str>,
    action: Action,
    domain: &'w str,
    at: &'w Hypervisor,
}

impl crate::hypervisor::Watch for Attached<'_> {
    fn still_allowed(&self) -> Result<(), String> {
        let config = crate::config::load_for_key(self.config_path, self.key)
            .map_err(|refused| format!("the config can no longer be read ({refused})"))?;
        let subject = Subject::new(&config, self.key, self.bound);
        match subject.decide(self.action, self.domain) {
            policy::Decision::Allow { hypervisors, .. }
                if hypervisors
                    .iter()
                    .any(|id| config.hypervisor(*id).uri == self.at.uri) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "access to {} on {} was revoked",
                self.action.name(),
                escape(self.domain)
            )),
        }
    }
}

/// One error for several (one per hypervisor that failed): the last one's status, every
/// one's words.
fn combined(errors: Vec<Error>) -> Result<(), Error> {
    let Some(last) = errors.last() else {
        return Ok(());
    };
    if errors.len() == 1 {
        return Err(last.clone());
    }
    let text: Vec<String> = errors.iter().map(Error::to_string).collect();
    let text = text.join("\n");
    Err(match last {
        Error::Unavailable(_) => Error::Unavailable(text),
        Error::TimedOut(_) => Error::TimedOut(text),
        Error::Interrupted(_) => Error::Interrupted(text),
        Error::Config(_) => Error::Config(text),
        Error::Usage(_) => Error::Usage(text),
        Error::Denied => Error::Denied,
        Error::Failed(_) => Error::Failed(text),
        Error::Revoked(_) => Error::Revoked(text),
    })
}

/// What the audit says a denial was for (the administrator's eyes only).
fn deny_reason(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::UnknownKey => "key not in config",
        DenyReason::OutsideBoundDomain => "outside the session's bound domain",
        DenyReason::NoMatchingGrant => "no grant matches",
    }
}

/// `help`: only the commands this key can use somewhere, each with its line of help in a
/// column past the longest.
pub fn help_text(subject: &Subject<'_>) -> String {
    let optional = subject.implied_domain().is_some();
    let domain = if optional { "[DOMAIN]" } else { "DOMAIN" };
    let usable = subject.usable_actions();
    let mut rows: Vec<(String, &str)> = usable
        .iter()
        .map(|action| (format!("{} {domain}", action.name()), action.summary()))
        .collect();
    rows.extend([
        ("list".into(), "the domains you may use, with their state"),
        ("help".into(), "this text"),
        ("exit, quit".into(), "end the session"),
    ]);
    let width = rows
        .iter()
        .map(|(usage, _)| usage.len() + 2)
        .max()
        .unwrap_or(0)
        .max(18);
    let mut text = String::from("Commands:\n");
    if usable.is_empty() {
        text.push_str("  (no command on any domain is granted to this key)\n");
    }
    for (usage, summary) in rows {
        text.push_str(&format!("  {usage:<width$}{summary}\n"));
    }
    text.push_str(
        "More, with ssh lines for Linux, macOS and Windows: USAGE.md (your administrator has \
         it as /usr/share/doc/dromaius/USAGE.md)\n",
    );
    text
}

/// `list`'s table: names (escaped) in a column as wide as the widest, then the state, then
/// (for a fleet) the hypervisor.
pub fn list_text(rows: &[(String, &'static str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(name, _, _)| escape(name).len())
        .max()
        .unwrap_or(0);
    let state_width = rows
        .iter()
        .map(|(_, state, _)| state.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (name, state, at) in rows {
        if at.is_empty() {
            text.push_str(&format!("{:width$}  {state}\n", escape(name)));
        } else {
            text.push_str(&format!(
                "{:width$}  {state:state_width$}  {}\n",
                escape(name),
                escape(at)
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{Found, Uuid};
    use crate::prompt::Completions;
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Mutex;

    const CONFIG: &str = r#"{
      "connect": "test:///one",
      "timeout_secs": 7,
      "syslog_socket": "/nonexistent/dromaius-test.sock",
      "keys": {
        "alice": [
          { "domains": ["alice-*"], "commands": ["start", "status", "console"] },
          { "domains": ["lab-?"], "connect": "test:///two" }
        ],
        "solo": [ { "domains": ["only"] } ],
        "viewer": [
          { "domains": ["desk-*"], "commands": ["display", "screenshot", "ctrl-alt-del", "suspend", "resume"] },
          { "domains": ["far-*"], "commands": ["display", "screenshot"], "connect": "qemu+ssh://hv.example/system" }
        ],
        "none": []
      }
    }"#;

    /// The channel: stdin and stdout terminals or not, one request or a session.
    fn channel(terminal: bool, one_shot: bool) -> Channel {
        Channel {
            stdin_is_terminal: terminal,
            stdout_is_terminal: terminal,
            one_shot,
        }
    }

    /// A fake libvirt: domains per URI, faults per URI, and every call it was asked.
    #[derive(Default)]
    struct Fake {
        domains: HashMap<String, Vec<(String, &'static str)>>,
        faults: HashMap<String, Fault>,
        /// The answer to every `act` and `console`, if not the default success.
        act_fault: Option<Fault>,
        /// What `display` answers.
        display_at: String,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn with(uri: &str, domains: &[(&str, &'static str)]) -> Fake {
            let mut fake = Fake::default();
            fake.domains.insert(
                uri.into(),
                domains.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect(),
            );
            fake
        }

        fn add(mut self, uri: &str, domains: &[(&str, &'static str)]) -> Fake {
            self.domains.insert(
                uri.into(),
                domains.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect(),
            );
            self
        }

        fn uuid_of(name: &str) -> Uuid {
            let sum: u32 = name.bytes().map(u32::from).sum();
            Uuid::parse(&format!("00000000-0000-0000-0000-{sum:012x}")).unwrap()
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }

        /// A target by name must exist, as virsh would find out; one by UUID was found.
        fn exists(&self, at: &Hypervisor, target: &Target<'_>) -> Result<(), Fault> {
            let known = self
                .domains
                .get(&at.uri)
                .is_some_and(|d| d.iter().any(|(n, _)| n == target.name));
            if target.uuid.is_none() && !known {
                return Err(Fault::NotFound);
            }
            Ok(())
        }

        fn fault(&self, uri: &str) -> Result<(), Fault> {
            match self.faults.get(uri) {
                Some(fault) => Err(fault.clone()),
                None => Ok(()),
            }
        }
    }

    impl Libvirt for Fake {
        fn screenshot(
            &self,
            at: &Hypervisor,
            target: &Target<'_>,
            _: Instant,
            _: &mut dyn std::io::Write,
        ) -> Result<u64, Fault> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("screenshot {} {}", at.uri, target.name));
            self.fault(&at.uri)?;
            self.exists(at, target)?;
            Ok(0)
        }

        fn display(
            &self,
            at: &Hypervisor,
            target: &Target<'_>,
            _: Instant,
        ) -> Result<String, Fault> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("display {} {}", at.uri, target.name));
            self.fault(&at.uri)?;
            if let Some(fault) = &self.act_fault {
                return Err(fault.clone());
            }
            self.exists(at, target)?;
            Ok(self.display_at.clone())
        }

        fn lookup(&self, at: &Hypervisor, name: &str, _: Instant) -> Result<Option<Found>, Fault> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("lookup {} {name}", at.uri));
            self.fault(&at.uri)?;
            Ok(self
                .domains
                .get(&at.uri)
                .and_then(|d| d.iter().find(|(n, _)| n == name))
                .map(|(n, state)| Found {
                    uuid: Some(Fake::uuid_of(n)),
                    active: *state != "shut off",
                }))
        }

        fn act(
            &self,
            at: &Hypervisor,
            action: Action,
            target: &Target<'_>,
            _: Instant,
        ) -> Result<String, Fault> {
            self.calls.lock().unwrap().push(format!(
                "{} {} {}",
                action.name(),
                at.uri,
                target.name
            ));
            self.fault(&at.uri)?;
            if let Some(fault) = &self.act_fault {
                return Err(fault.clone());
            }
            self.exists(at, target)?;
            Ok(format!("did {} on {}", action.name(), target.name))
        }

        fn console(
            &self,
            at: &Hypervisor,
            target: &Target<'_>,
            _: &dyn crate::hypervisor::Watch,
        ) -> Result<(), Fault> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("console {} {}", at.uri, target.name));
            self.fault(&at.uri)?;
            match &self.act_fault {
                Some(fault) => Err(fault.clone()),
                None => self.exists(at, target),
            }
        }

        fn states(
            &self,
            at: &Hypervisor,
            _: Instant,
        ) -> Result<Vec<(String, &'static str)>, Fault> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("states {}", at.uri));
            self.fault(&at.uri)?;
            Ok(self.domains.get(&at.uri).cloned().unwrap_or_default())
        }
    }

    fn gateway<'a>(fake: &'a Fake, key: &str, terminal: bool) -> Gateway<'a> {
        let config = crate::config::parse(CONFIG, Path::new("t.json")).unwrap();
        Gateway::new(
            config,
            PathBuf::from("t.json"),
            key.into(),
            None,
            None,
            None,
            fake,
            channel(terminal, true),
        )
    }

    /// What a line got, without where it acted (see [`acted_on`]).
    fn ask(gateway: &Gateway<'_>, line: &str) -> Reply {
        Reply {
            acted_on: None,
            ..replied(gateway, line)
        }
    }

    fn replied(gateway: &Gateway<'_>, line: &str) -> Reply {
        let config = gateway.config();
        let subject = Subject::new(&config, &gateway.key, gateway.bound.as_deref());
        let judgement = policy::judge_line(&subject, line.as_bytes()).unwrap();
        gateway.carry_out(&subject, &judgement)
    }

    /// Where a line acted, by the hypervisor's label.
    fn acted_on(gateway: &Gateway<'_>, line: &str) -> Option<String> {
        replied(gateway, line)
            .acted_on
            .map(|id| gateway.config().hypervisor(id).label())
    }

    fn failed(error: Error) -> Reply {
        Reply::failed(error)
    }

    #[test]
    fn a_name_virsh_reads_only_as_a_name_takes_one_run() {
        let fake = Fake::with("test:///one", &[("alice-web", "shut off")]);
        let alice = gateway(&fake, "alice", false);
        assert_eq!(
            ask(&alice, "start alice-web"),
            Reply::done("did start on alice-web".into())
        );
        assert_eq!(fake.calls(), ["start test:///one alice-web"]);
        // A grant's own connect is where its domains are acted on.
        let fake = Fake::with("test:///two", &[("lab-1", "running")]);
        let alice = gateway(&fake, "alice", false);
        assert_eq!(ask(&alice, "destroy lab-1").result, Ok(()));
        assert_eq!(fake.calls(), ["destroy test:///two lab-1"]);
    }

    #[test]
    fn a_name_virsh_could_read_as_an_id_or_uuid_is_looked_up_first() {
        for name in [
            "2",
            "+2",
            "02",
            "-0",
            "deadbeef",
            "6695eb01-f6a4-8304-79aa-97f2502e193f",
        ] {
            let fake = Fake::with("test:///x", &[(name, "running")]);
            let text = format!(
                r#"{{"connect": "test:///x", "syslog_socket": "/nonexistent/s", "keys": {{"k": [{{"domains": ["{name}"]}}]}}}}"#
            );
            let config = crate::config::parse(&text, Path::new("t.json")).unwrap();
            let terminal = channel(false, true);
            let k = Gateway::new(
                config,
                "t.json".into(),
                "k".into(),
                None,
                None,
                None,
                &fake,
                terminal,
            );
            assert_eq!(ask(&k, &format!("reset {name}")).result, Ok(()), "{name}");
            assert_eq!(
                fake.calls(),
                [
                    format!("lookup test:///x {name}"),
                    format!("reset test:///x {name}")
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn refusals_run_nothing_and_say_the_same_whether_the_domain_exists() {
        let fake = Fake::with("test:///one", &[("bob-web", "running")]);
        let alice = gateway(&fake, "alice", false);
        for line in [
            "destroy alice-web",
            "start bob-web",
            "start no-such",
            "status lab-1x",
        ] {
            assert_eq!(ask(&alice, line), failed(Error::Denied), "{line}");
        }
        let stranger = gateway(&fake, "mallory", false);
        for line in ["status bob-web", "list", "help"] {
            assert_eq!(ask(&stranger, line), failed(Error::Denied), "{line}");
        }
        assert_eq!(ask(&stranger, "exit"), Reply::done(String::new()));
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    }

    #[test]
    fn each_fault_has_its_words_and_status() {
        let cases: Vec<(Fault, Error)> = vec![
            (
                Fault::CannotRun("cannot run /usr/bin/virsh: No such file".into()),
                Error::Unavailable("cannot run /usr/bin/virsh: No such file".into()),
            ),
            (
                Fault::Unreachable("error: failed to connect to the hypervisor".into()),
                Error::Unavailable("error: failed to connect to the hypervisor".into()),
            ),
            (
                Fault::Unreachable(String::new()),
                Error::Unavailable("start alice-web: libvirt could not be reached".into()),
            ),
            (
                Fault::TimedOut,
                Error::TimedOut("start alice-web took longer than 7 s and was stopped".into()),
            ),
            (
                Fault::Interrupted,
                Error::Interrupted("start interrupted".into()),
            ),
            (
                Fault::NotFound,
                Error::Failed("no domain named \"alice-web\"".into()),
            ),
            (
                Fault::Failed {
                    words: "error: Domain is already active".into(),
                    status: "exit status: 1".into(),
                },
                Error::Failed("error: Domain is already active".into()),
            ),
            (
                Fault::Failed {
                    words: String::new(),
                    status: "exit status: 3".into(),
                },
                Error::Failed("virsh start failed (exit status: 3)".into()),
            ),
        ];
        for (fault, expected) in cases {
            let mut fake = Fake::with("test:///one", &[("alice-web", "shut off")]);
            fake.act_fault = Some(fault.clone());
            let alice = gateway(&fake, "alice", false);
            assert_eq!(
                ask(&alice, "start alice-web"),
                failed(expected.clone()),
                "{fault:?}"
            );
            // The same fault in the lookup means the same to the user.
            let mut fake = Fake::with("test:///one", &[("alice-web", "shut off")]);
            fake.faults.insert("test:///one".into(), fault.clone());
            let alice = gateway(&fake, "alice", false);
            assert_eq!(
                ask(&alice, "start alice-web"),
                failed(expected),
                "{fault:?}"
            );
        }
    }

    #[test]
    fn a_missing_domain_is_named_and_nothing_acts() {
        let fake = Fake::with("test:///one", &[("alice-db", "running")]);
        let alice = gateway(&fake, "alice", false);
        assert_eq!(
            ask(&alice, "start alice-web"),
            failed(Error::Failed("no domain named \"alice-web\"".into()))
        );
        assert_eq!(fake.calls(), ["start test:///one alice-web"]);
        let hostile = ask(&alice, "status alice-\"q\"\u{e9}");
        assert_eq!(
            hostile,
            failed(Error::Failed(
                "no domain named \"alice-\\\"q\\\"\\xc3\\xa9\"".into()
            ))
        );
    }

    #[test]
    fn the_console_needs_a_terminal_and_a_free_console() {
        let fake = Fake::with("test:///one", &[("alice-web", "running")]);
        let piped = gateway(&fake, "alice", false);
        assert_eq!(
            ask(&piped, "console alice-web"),
            failed(Error::Failed(
                "console needs a terminal: connect with ssh -t (and the key needs the pty option)"
                    .into()
            ))
        );
        assert!(fake.calls().is_empty());
        let at_terminal = gateway(&fake, "alice", true);
        assert_eq!(
            ask(&at_terminal, "console alice-web"),
            Reply::done(String::new())
        );
        let mut busy = Fake::with("test:///one", &[("alice-web", "running")]);
        busy.act_fault = Some(Fault::ConsoleBusy(
            "error: operation failed: Active console session exists for this domain".into(),
        ));
        let at_terminal = gateway(&busy, "alice", true);
        assert_eq!(
            ask(&at_terminal, "console alice-web"),
            failed(Error::Failed(
                "error: operation failed: Active console session exists for this domain\n\
                 the console of alice-web is in use by another session"
                    .into()
            ))
        );
    }

    #[test]
    fn list_shows_only_granted_domains_of_each_hypervisor() {
        let fake = Fake::with(
            "test:///one",
            &[
                ("alice-web", "running"),
                ("bob-web", "running"),
                ("lab-1", "shut off"),
                ("alice-db", "shut off"),
            ],
        )
        .add(
            "test:///two",
            &[
                ("lab-1", "paused"),
                ("alice-x", "running"),
                ("lab-22", "running"),
            ],
        );
        let alice = gateway(&fake, "alice", false);
        // alice's grants span two hypervisors: a third column says which.
        assert_eq!(
            ask(&alice, "list"),
            Reply::done(
                "alice-db   shut off  test:///one\n\
                 alice-web  running   test:///one\n\
                 lab-1      paused    test:///two\n"
                    .into()
            )
        );
        let mut calls = fake.calls();
        calls.sort();
        assert_eq!(calls, ["states test:///one", "states test:///two"]);
        // One hypervisor: two columns.
        let fake = Fake::with("test:///one", &[("only", "running"), ("other", "running")]);
        let solo = gateway(&fake, "solo", false);
        assert_eq!(ask(&solo, "list"), Reply::done("only  running\n".into()));
    }

    #[test]
    fn list_names_a_failing_hypervisor_and_lists_the_others() {
        let mut fake = Fake::with("test:///one", &[("alice-web", "running")])
            .add("test:///two", &[("lab-1", "paused")]);
        fake.faults.insert("test:///two".into(), Fault::TimedOut);
        let alice = gateway(&fake, "alice", false);
        assert_eq!(
            ask(&alice, "list"),
            Reply {
                result: Err(Error::TimedOut(
                    "list on test:///two took longer than 7 s and was stopped".into()
                )),
                ..Reply::done("alice-web  running  test:///one\n".into())
            }
        );
    }

    #[test]
    fn help_and_completion_offer_only_what_the_key_may_use() {
        let fake = Fake::with(
            "test:///one",
            &[
                ("alice-web", "running"),
                ("bob-web", "running"),
                ("lab-1", "running"),
            ],
        )
        .add(
            "test:///two",
            &[("lab-1", "running"), ("lab-2", "shut off")],
        );
        let alice = gateway(&fake, "alice", false);
        let help = ask(&alice, "help").shown;
        assert!(help.contains("start DOMAIN"), "{help}");
        assert!(help.contains("/usr/share/doc/dromaius/USAGE.md"), "{help}");
        assert!(help.contains("destroy DOMAIN"), "{help}");
        assert_eq!(
            alice.domains(Action::Start),
            ["alice-web", "lab-1", "lab-2"]
        );
        assert_eq!(alice.domains(Action::Destroy), ["lab-1", "lab-2"]);
        // At a terminal, where completion happens, every one of alice's seven commands fits.
        assert_eq!(gateway(&fake, "alice", true).commands().len(), 11);
        assert!(!alice.commands().contains(&"console"));
        let solo = gateway(&fake, "solo", false);
        let help = ask(&solo, "help").shown;
        assert!(help.contains("start [DOMAIN]"), "{help}");
        assert_eq!(solo.domains(Action::Start), [] as [&str; 0]);
        let none = gateway(&fake, "none", false);
        assert!(
            ask(&none, "help")
                .shown
                .contains("(no command on any domain")
        );
        assert_eq!(none.commands(), ["list", "help", "exit", "quit"]);
        assert!(none.domains(Action::Status).is_empty());
        let stranger = gateway(&fake, "mallory", false);
        assert_eq!(stranger.commands(), ["exit", "quit"]);
        assert!(stranger.domains(Action::Start).is_empty());
    }

    #[test]
    fn an_implied_domain_and_invalid_requests() {
        let fake = Fake::with("test:///one", &[("only", "running")]);
        let solo = gateway(&fake, "solo", false);
        assert_eq!(ask(&solo, "reset"), Reply::done("did reset on only".into()));
        let alice = gateway(&fake, "alice", false);
        assert_eq!(
            ask(&alice, "start"),
            failed(Error::Usage(
                "start needs a domain; type \"help\" for the commands you may use".into()
            ))
        );
        assert_eq!(
            ask(&alice, "define x"),
            failed(Error::Usage(
                "unknown command \"define\"; type \"help\" for the commands you may use".into()
            ))
        );
    }

    const FLEET: &str = r#"{
      "hypervisors": { "hv1": "test:///one", "hv2": "test:///two", "hv3": "test:///three" },
      "connect": "hv1",
      "timeout_secs": 7,
      "syslog_socket": "/nonexistent/dromaius-test.sock",
      "keys": { "ops": [ { "domains": ["*"], "connect": ["hv1", "hv2", "hv3"] } ] }
    }"#;

    fn fleet(fake: &Fake) -> Gateway<'_> {
        let config = crate::config::parse(FLEET, Path::new("f.json")).unwrap();
        let terminal = channel(false, true);
        Gateway::new(
            config,
            "f.json".into(),
            "ops".into(),
            None,
            None,
            None,
            fake,
            terminal,
        )
    }

    /// The calls that acted (not the lookups), in order.
    fn actions(fake: &Fake) -> Vec<String> {
        fake.calls()
            .into_iter()
            .filter(|c| !c.starts_with("lookup") && !c.starts_with("states"))
            .collect()
    }

    #[test]
    fn a_fleet_acts_where_the_domain_is_defined() {
        let fake = Fake::with("test:///one", &[("web1", "shut off")])
            .add("test:///two", &[("web2", "running")])
            .add("test:///three", &[]);
        let ops = fleet(&fake);
        assert_eq!(ask(&ops, "start web1").result, Ok(()));
        assert_eq!(ask(&ops, "destroy web2").result, Ok(()));
        assert_eq!(
            actions(&fake),
            ["start test:///one web1", "destroy test:///two web2"]
        );
        assert_eq!(acted_on(&ops, "status web2").as_deref(), Some("hv2"));
        // Looked up on every hypervisor, each once.
        let lookups = fake
            .calls()
            .iter()
            .filter(|c| c.starts_with("lookup"))
            .count();
        assert_eq!(lookups, 9);
        assert_eq!(
            ask(&ops, "status nowhere"),
            failed(Error::Failed("no domain named \"nowhere\"".into()))
        );
    }

    #[test]
    fn a_domain_two_hypervisors_define_is_acted_on_where_it_is_active_only() {
        let fake = Fake::with("test:///one", &[("db", "running"), ("twice", "shut off")])
            .add("test:///two", &[("db", "shut off"), ("twice", "shut off")])
            .add(
                "test:///three",
                &[("twice", "running"), ("thrice", "paused")],
            );
        let ops = fleet(&fake);
        assert_eq!(acted_on(&ops, "destroy db").as_deref(), Some("hv1"));
        assert_eq!(acted_on(&ops, "start db").as_deref(), Some("hv1"));
        // Both shut off: never started (two QEMUs on one disk), whichever the command.
        let fake = Fake::with("test:///one", &[("db", "shut off")])
            .add("test:///two", &[("db", "shut off")])
            .add("test:///three", &[]);
        let ops = fleet(&fake);
        for command in ["start", "status", "reset"] {
            assert_eq!(
                ask(&ops, &format!("{command} db")),
                failed(Error::Failed(format!(
                    "\"db\" is defined on hv1, hv2 and active on none of them: refusing to \
                     {command} it (a domain must be defined on one hypervisor, or active on \
                     exactly one)"
                ))),
                "{command}"
            );
        }
        assert!(actions(&fake).is_empty(), "{:?}", fake.calls());
        // Active on two: refused too.
        let fake = Fake::with("test:///one", &[("db", "running")])
            .add("test:///two", &[("db", "paused")])
            .add("test:///three", &[]);
        let ops = fleet(&fake);
        let refused = ask(&ops, "destroy db").result;
        assert!(
            matches!(&refused, Err(Error::Failed(text)) if text.contains("active on hv1, hv2")),
            "{refused:?}"
        );
        assert!(actions(&fake).is_empty());
    }

    #[test]
    fn an_unreachable_hypervisor_blocks_start_and_nothing_else() {
        let mut fake = Fake::with("test:///one", &[("web1", "shut off")])
            .add("test:///two", &[])
            .add("test:///three", &[]);
        fake.faults.insert(
            "test:///two".into(),
            Fault::Unreachable("error: failed to connect to the hypervisor".into()),
        );
        let ops = fleet(&fake);
        assert_eq!(
            ask(&ops, "start web1"),
            failed(Error::Unavailable(
                "start web1 refused: the domain may be running where it could not be looked \
                 up\nhv2: error: failed to connect to the hypervisor"
                    .into()
            ))
        );
        assert!(actions(&fake).is_empty());
        // Anything but start acts where the domain was found.
        assert_eq!(acted_on(&ops, "status web1").as_deref(), Some("hv1"));
        // Found nowhere that answered: the hypervisor that did not answer is named.
        assert_eq!(
            ask(&ops, "destroy web9"),
            failed(Error::Unavailable(
                "hv2: error: failed to connect to the hypervisor".into()
            ))
        );
        // A hypervisor that did not answer in time: 124, named.
        let mut fake = Fake::with("test:///one", &[("web1", "shut off")])
            .add("test:///two", &[])
            .add("test:///three", &[]);
        fake.faults.insert("test:///three".into(), Fault::TimedOut);
        let ops = fleet(&fake);
        assert_eq!(
            ask(&ops, "start web1"),
            failed(Error::TimedOut(
                "start web1 refused: the domain may be running where it could not be looked \
                 up\nlookup web1 on hv3 took longer than 7 s and was stopped"
                    .into()
            ))
        );
        let listed = ask(&ops, "list");
        assert_eq!(listed.shown, "web1  shut off  hv1\n");
        assert_eq!(
            listed.result,
            Err(Error::TimedOut(
                "list on hv3 took longer than 7 s and was stopped".into()
            ))
        );
    }

    #[test]
    fn list_text_aligns_escaped_names() {
        assert_eq!(
            list_text(&[
                ("a".into(), "running", String::new()),
                ("b\u{1b}".into(), "shut off", String::new())
            ]),
            "a      running\nb\\x1b  shut off\n"
        );
        assert_eq!(list_text(&[]), "");
    }

    fn viewer<'a>(fake: &'a Fake, channel: Channel) -> Gateway<'a> {
        let config = crate::config::parse(CONFIG, Path::new("t.json")).unwrap();
        Gateway::new(
            config,
            PathBuf::from("t.json"),
            "viewer".into(),
            None,
            None,
            None,
            fake,
            channel,
        )
    }

    #[test]
    fn the_new_commands_reach_libvirt_as_themselves() {
        let fake = Fake::with("test:///one", &[("desk-1", "running")]);
        let at_pipe = viewer(&fake, channel(false, false));
        for command in ["suspend", "resume", "ctrl-alt-del"] {
            assert_eq!(
                ask(&at_pipe, &format!("{command} desk-1")),
                Reply::done(format!("did {command} on desk-1"))
            );
        }
        assert_eq!(ask(&at_pipe, "screenshot desk-1").result, Ok(()));
        assert_eq!(
            fake.calls(),
            [
                "suspend test:///one desk-1",
                "resume test:///one desk-1",
                "ctrl-alt-del test:///one desk-1",
                "screenshot test:///one desk-1"
            ]
        );
        // Granted by name only: alice's grants, without them in `commands`, do not have them.
        let alice = gateway(&fake, "alice", false);
        for line in ["suspend lab-1", "screenshot lab-1", "display lab-1"] {
            assert_eq!(ask(&alice, line), failed(Error::Denied), "{line}");
        }
    }

    #[test]
    fn what_the_channel_cannot_carry_is_refused_before_anything_runs() {
        let fake = Fake::with("test:///one", &[("desk-1", "running")]);
        let refused = |gateway: &Gateway<'_>, line: &str, words: &str| {
            let reply = ask(gateway, line);
            match &reply.result {
                Err(Error::Failed(text)) => assert!(text.contains(words), "{text}"),
                other => panic!("{line}: {other:?}"),
            }
        };
        let at_terminal = viewer(&fake, channel(true, true));
        refused(&at_terminal, "screenshot desk-1", "desk-1 > desk-1.png");
        refused(&at_terminal, "display desk-1", "ssh -T");
        let in_a_session = viewer(&fake, channel(false, false));
        refused(&in_a_session, "display desk-1", "not at the prompt");
        let alice_at_pipe = gateway(&fake, "alice", false);
        refused(&alice_at_pipe, "console alice-web", "ssh -t");
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    }

    #[test]
    fn display_is_relayed_only_from_a_hypervisor_on_this_host() {
        let fake = Fake::with("qemu+ssh://hv.example/system", &[("far-1", "running")]);
        let one_shot = viewer(&fake, channel(false, true));
        let reply = ask(&one_shot, "display far-1");
        match &reply.result {
            Err(Error::Failed(text)) => assert!(
                text.contains("qemu+ssh://hv.example/system is not on this host"),
                "{text}"
            ),
            other => panic!("{other:?}"),
        }
        // Nothing was asked of the remote hypervisor: its answer would name its loopback.
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        // A screenshot comes through libvirt itself: that works from anywhere.
        assert_eq!(ask(&one_shot, "screenshot far-1").result, Ok(()));
    }

    #[test]
    fn display_refuses_what_libvirt_says_it_cannot_relay() {
        let mut fake = Fake::with("test:///one", &[("desk-1", "running")]);
        let cases = [
            ("vnc://:secret@127.0.0.1:0", "credentials"),
            ("spice://127.0.0.1:5930", "only VNC"),
            ("vnc://hv.example:0", "host name hv.example"),
            ("", "not a display address"),
        ];
        for (said, words) in cases {
            fake.display_at = said.into();
            let one_shot = viewer(&fake, channel(false, true));
            match ask(&one_shot, "display desk-1").result {
                Err(Error::Failed(text)) => {
                    assert!(text.contains(words), "{said}: {text}");
                    assert!(!text.contains("secret"), "{text}");
                }
                other => panic!("{said}: {other:?}"),
            }
        }
        fake.act_fault = Some(Fault::Failed {
            words: "error: No graphical display found".into(),
            status: "exit status: 1".into(),
        });
        let one_shot = viewer(&fake, channel(false, true));
        assert_eq!(
            ask(&one_shot, "display desk-1").result,
            Err(Error::Failed("error: No graphical display found".into()))
        );
    }

    #[test]
    fn help_names_the_new_commands_only_where_granted() {
        let fake = Fake::default();
        let shown = ask(&viewer(&fake, channel(false, false)), "help").shown;
        for command in ["display", "screenshot", "ctrl-alt-del", "suspend", "resume"] {
            assert!(
                shown.contains(&format!("  {command} ")),
                "{command}: {shown}"
            );
        }
        assert!(!shown.contains("  start "), "{shown}");
        let alice = ask(&gateway(&fake, "alice", false), "help").shown;
        assert!(!alice.contains("display"), "{alice}");
        // The prompt does not offer what it would refuse.
        let at_prompt = viewer(&fake, channel(true, false));
        assert_eq!(
            at_prompt.commands(),
            [
                "suspend",
                "resume",
                "ctrl-alt-del",
                "list",
                "help",
                "exit",
                "quit"
            ]
        );
    }
}
