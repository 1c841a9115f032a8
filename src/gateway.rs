//! One request, start to finish: parse → judge → run → audit.
//!
//! [`Gateway::handle`] is the single path every request takes, whether it came from
//! `SSH_ORIGINAL_COMMAND`, a piped line, the interactive prompt or a go-dromaius `-cmd`.
//! This module owns the user-facing messages and exit statuses; parsing, deciding and
//! running virsh are each delegated to the module that owns them.

use std::io::{IsTerminal, Write};

use crate::action::Action;
use crate::audit::{self, Audit, Record};
use crate::config::Config;
use crate::escape::{escape, terminal_safe};
use crate::policy::{Decision, DenyReason, Subject};
use crate::request::{self, ParseError, Request, Verb};
use crate::virsh::{self, Captured, RunError, Uuid, Virsh};

/// Exit statuses, as in the contract.
pub mod status {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNAVAILABLE: u8 = 69;
    pub const DENIED: u8 = 77;
    pub const CONFIG: u8 = 78;
    pub const TIMED_OUT: u8 = 124;
    pub const INTERRUPTED: u8 = 130;
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    pub status: u8,
    /// `exit`/`quit`, or the client hung up: the session ends here.
    pub end_session: bool,
}

pub struct Gateway<'c> {
    config: &'c Config,
    subject: Subject<'c>,
    virsh: Virsh,
    audit: Audit,
    client: Option<String>,
}

impl<'c> Gateway<'c> {
    pub fn new(config: &'c Config, subject: Subject<'c>, client: Option<String>) -> Gateway<'c> {
        Gateway {
            config,
            virsh: Virsh::new(&config.virsh),
            audit: Audit::connect(&config.syslog_socket),
            subject,
            client,
        }
    }

    /// Handles one request line. `None` for a blank line, which asks for nothing.
    pub fn handle(&self, line: &[u8]) -> Option<Handled> {
        // Until the record is sent, a hang-up must not end the process under us.
        let _in_hand = crate::sys::request_in_hand();
        let request = match request::parse(line) {
            Ok(None) => return None,
            Ok(Some(request)) => request,
            Err(error) => return Some(self.refuse_invalid(line, None, &error)),
        };
        let handled = match judge(&self.subject, &request) {
            Judgement::Invalid(error) => {
                self.refuse_invalid(line, request.domain.as_deref(), &error)
            }
            Judgement::Deny(domain, reason) => {
                self.refuse_denied(&request, domain.as_deref(), reason)
            }
            Judgement::Allow(verb, domain, connect, _) => {
                let status = self.run(verb, domain.as_deref(), connect);
                self.log(
                    verb.name().as_bytes(),
                    domain.as_deref(),
                    audit::Decision::Allow,
                    status,
                    None,
                );
                Handled {
                    status,
                    end_session: verb == Verb::Exit || crate::sys::hung_up(),
                }
            }
        };
        Some(handled)
    }

    fn refuse_invalid(&self, line: &[u8], domain: Option<&str>, error: &ParseError) -> Handled {
        say_error(&format!(
            "{error}; type \"help\" for the commands you may use"
        ));
        self.log(
            line,
            domain,
            audit::Decision::Invalid,
            status::USAGE,
            Some(&error.to_string()),
        );
        Handled {
            status: status::USAGE,
            end_session: crate::sys::hung_up(),
        }
    }

    fn refuse_denied(
        &self,
        request: &Request,
        domain: Option<&str>,
        reason: DenyReason,
    ) -> Handled {
        // The same words for every denial: whether the domain exists, whether the key is
        // known, is not the user's to learn.
        say_error("permission denied");
        let reason = match reason {
            DenyReason::UnknownKey => "key not in config",
            DenyReason::OutsideBoundDomain => "outside the session's bound domain",
            DenyReason::NoMatchingGrant => "no grant matches",
        };
        let command = request.verb.name().as_bytes();
        self.log(
            command,
            domain,
            audit::Decision::Deny,
            status::DENIED,
            Some(reason),
        );
        Handled {
            status: status::DENIED,
            end_session: crate::sys::hung_up(),
        }
    }

    fn log(
        &self,
        command: &[u8],
        domain: Option<&str>,
        decision: audit::Decision,
        outcome: u8,
        reason: Option<&str>,
    ) {
        self.audit.record(&Record {
            key: self.subject.key(),
            client: self.client.as_deref(),
            command,
            domain,
            decision,
            outcome,
            reason,
        });
    }

    /// Carries out an allowed request and returns its exit status.
    fn run(&self, verb: Verb, domain: Option<&str>, connect: &str) -> u8 {
        match (verb, domain) {
            (Verb::Exit, _) => status::OK,
            (Verb::Help, _) => {
                say(&self.help_text());
                status::OK
            }
            (Verb::List, _) => self.list(),
            (Verb::Act(action), Some(domain)) => self.act(action, domain, connect),
            (Verb::Act(action), None) => {
                say_error(&ParseError::MissingDomain(action).to_string());
                status::USAGE
            }
        }
    }

    fn act(&self, action: Action, domain: &str, connect: &str) -> u8 {
        if action.is_interactive() && !std::io::stdin().is_terminal() {
            say_error(
                "console needs a terminal: connect with ssh -t (and the key needs the pty option)",
            );
            return status::FAILED;
        }
        let deadline = virsh::deadline_after(self.config.timeout);
        let listing = match self.virsh.run(&virsh::uuid_listing_argv(connect), deadline) {
            Ok(captured) if captured.success() => virsh::parse_uuid_listing(&captured.stdout),
            other => return self.failure(other, action.name(), domain, None),
        };
        let Some(uuid) = virsh::find_uuid(&listing, domain) else {
            say_error(&format!("no domain named \"{}\"", escape(domain)));
            return status::FAILED;
        };
        let argv = virsh::action_argv(connect, action, uuid);
        let result = if action.is_interactive() {
            self.virsh.run_attached(&argv)
        } else {
            self.virsh.run(&argv, deadline)
        };
        match result {
            Ok(captured) if captured.success() => {
                say(&name_for_uuid(&captured.stdout, uuid, domain));
                status::OK
            }
            other => self.failure(other, action.name(), domain, Some(uuid)),
        }
    }

    /// Reports a virsh run that did not succeed and returns the status for it.
    fn failure(
        &self,
        result: Result<Captured, RunError>,
        command: &str,
        domain: &str,
        uuid: Option<&Uuid>,
    ) -> u8 {
        match result {
            Err(RunError::CannotRun(error)) => {
                say_error(&format!(
                    "cannot run {}: {error}",
                    escape(&self.virsh.path().to_string_lossy())
                ));
                status::UNAVAILABLE
            }
            Err(RunError::TimedOut) => {
                say_error(&format!(
                    "{command} {} took longer than {} s and was stopped",
                    escape(domain),
                    self.config.timeout.as_secs()
                ));
                status::TIMED_OUT
            }
            Err(RunError::Interrupted) => {
                say_error(&format!("{command} interrupted"));
                status::INTERRUPTED
            }
            Ok(captured) => {
                let stderr = match uuid {
                    Some(uuid) => name_for_uuid(&captured.stderr, uuid, domain),
                    None => terminal_safe(&captured.stderr),
                };
                let mut shown = false;
                for line in stderr.lines().filter(|l| !is_noise(l)) {
                    say_error(line);
                    shown = true;
                }
                if virsh::is_unreachable(&captured.stderr) {
                    return status::UNAVAILABLE;
                }
                if captured.stderr.contains("Active console session exists") {
                    say_error(&format!(
                        "the console of {} is in use by another session",
                        escape(domain)
                    ));
                } else if !shown {
                    say_error(&format!("virsh {command} failed ({})", captured.status));
                }
                status::FAILED
            }
        }
    }

    fn list(&self) -> u8 {
        let deadline = virsh::deadline_after(self.config.timeout);
        let mut rows: Vec<(String, &'static str)> = Vec::new();
        let mut result = status::OK;
        for connect in self.subject.connects() {
            match self.virsh.run(&virsh::states_argv(connect), deadline) {
                Ok(captured) if captured.success() => rows.extend(
                    virsh::parse_states(&captured.stdout)
                        .into_iter()
                        .filter(|(name, _)| self.subject.may_list(name, connect)),
                ),
                other => result = self.failure(other, "list", "", None),
            }
        }
        rows.sort();
        let width = rows
            .iter()
            .map(|(name, _)| escape(name).len())
            .max()
            .unwrap_or(0);
        let mut text = String::new();
        for (name, state) in rows {
            text.push_str(&format!("{:width$}  {state}\n", escape(&name)));
        }
        say(&text);
        result
    }

    /// `help`: only the commands this key can use somewhere.
    pub fn help_text(&self) -> String {
        let optional = self.subject.implied_domain().is_some();
        let domain = if optional { "[DOMAIN]" } else { "DOMAIN" };
        let usable = self.subject.usable_actions();
        let mut text = String::from("Commands:\n");
        if usable.is_empty() {
            text.push_str("  (no command on any domain is granted to this key)\n");
        }
        for action in usable.iter() {
            text.push_str(&format!(
                "  {:<18}{}\n",
                format!("{} {domain}", action.name()),
                action.summary()
            ));
        }
        text.push_str(&format!(
            "  {:<18}{}\n",
            "list", "the domains you may use, with their state"
        ));
        text.push_str(&format!("  {:<18}{}\n", "help", "this text"));
        text.push_str(&format!("  {:<18}{}\n", "exit, quit", "end the session"));
        text
    }
}

/// What the gateway decides for a parsed request, before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement<'c> {
    /// Run it: the verb, the domain (the one typed or the implied one), the libvirt URI,
    /// and which of the key's grants allowed it (`None`: no grant is needed, or `AllowedHosts`).
    Allow(Verb, Option<String>, &'c str, Option<usize>),
    Deny(Option<String>, DenyReason),
    Invalid(ParseError),
}

/// Decides a parsed request for `subject`; no effects. `explain` asks the same question.
pub fn judge<'c>(subject: &Subject<'c>, request: &Request) -> Judgement<'c> {
    let verb = request.verb;
    if verb == Verb::Exit {
        return Judgement::Allow(verb, None, "", None);
    }
    if !subject.is_known() {
        return Judgement::Deny(request.domain.clone(), DenyReason::UnknownKey);
    }
    let Verb::Act(action) = verb else {
        return Judgement::Allow(verb, None, "", None);
    };
    let Some(domain) = request.domain.clone().or_else(|| subject.implied_domain()) else {
        return Judgement::Invalid(ParseError::MissingDomain(action));
    };
    match subject.decide(action, &domain) {
        Decision::Allow { connect, grant } => Judgement::Allow(verb, Some(domain), connect, grant),
        Decision::Deny(reason) => Judgement::Deny(Some(domain), reason),
    }
}

/// virsh names the domain by the UUID it was given; show the user the name they know.
fn name_for_uuid(text: &str, uuid: &Uuid, name: &str) -> String {
    terminal_safe(&text.replace(uuid.as_str(), name))
}

/// Lines of virsh output that say nothing to the user.
fn is_noise(line: &str) -> bool {
    line.trim().is_empty() || line.starts_with("Authorization not available")
}

/// Writes to stdout, trailing blank lines trimmed. A closed stdout (`... | head -1`) is not
/// an error of the request's.
pub fn say(text: &str) {
    let text = text.trim_end_matches(['\n', ' ']);
    if text.is_empty() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// Writes one `dromaius: ` line to stderr. Callers escape what the user sent.
pub fn say_error(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "dromaius: {text}");
}

impl Gateway<'_> {
    /// A line too long to be a request, of which only the length was kept.
    pub fn handle_too_long(&self, length: usize) -> Option<Handled> {
        let _in_hand = crate::sys::request_in_hand();
        let error = ParseError::TooLong(length);
        Some(self.refuse_invalid(b"(too long)", None, &error))
    }
}

/// What the interactive prompt asks of the gateway besides requests: the name it shows and
/// what Tab offers. Completion is not a request (it is not audited and runs nothing but a
/// read-only listing), so it offers only what this key could use anyway: never a command
/// outside its grants, never a domain it may not run that command on.
impl Gateway<'_> {
    /// Who the prompt names: the short name of the bound `-host` (up to its first dot, as
    /// go-dromaius did), otherwise the key.
    pub fn session_name(&self) -> String {
        match self.subject.bound() {
            Some(host) => host
                .split('.')
                .next()
                .filter(|short| !short.is_empty())
                .unwrap_or(host)
                .to_owned(),
            None => self.subject.key().to_owned(),
        }
    }

    /// The command words this key may use on some domain, then the session words it may use.
    pub fn command_words(&self) -> Vec<&'static str> {
        let mut words: Vec<&'static str> = self
            .subject
            .usable_actions()
            .iter()
            .map(Action::name)
            .collect();
        if self.subject.is_known() {
            words.extend(["list", "help"]);
        }
        words.extend(["exit", "quit"]);
        words
    }

    /// The existing domains this key may run `action` on, sorted: one read-only listing per
    /// connect URI, each name kept only if the grant that allows it looks it up on that URI.
    /// Anything that goes wrong offers nothing rather than an error.
    pub fn completable_domains(&self, action: Action) -> Vec<String> {
        if !self.subject.usable_actions().contains(action) || crate::sys::hung_up() {
            return Vec::new();
        }
        // A Tab that waits a minute for a stuck libvirt is worse than no completion.
        let deadline = virsh::deadline_after(self.config.timeout.min(COMPLETION_TIMEOUT));
        let mut names = Vec::new();
        for connect in self.subject.connects() {
            let listing = match self.virsh.run(&virsh::uuid_listing_argv(connect), deadline) {
                Ok(captured) if captured.success() => virsh::parse_uuid_listing(&captured.stdout),
                _ => continue,
            };
            names.extend(listing.into_iter().map(|(_, name)| name).filter(|name| {
                matches!(self.subject.decide(action, name),
                    Decision::Allow { connect: granted, .. } if granted == connect)
            }));
        }
        names.sort();
        names.dedup();
        names
    }

    /// A line from the terminal that was not valid UTF-8 (the prompt cannot keep its bytes).
    pub fn handle_not_utf8(&self) -> Option<Handled> {
        Some(self.refuse_invalid(b"(not UTF-8)", None, &ParseError::NotUtf8))
    }
}

/// How long Tab may wait for the listings it completes from.
const COMPLETION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
