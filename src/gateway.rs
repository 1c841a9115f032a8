//! One request, start to finish: judge → carry out → report → audit.
//!
//! [`Gateway::handle`] is the single path every request takes, whether it came from
//! `SSH_ORIGINAL_COMMAND`, a piped line, the interactive prompt or a go-dromaius `-cmd`.
//! The judgement is the library's (`policy::judge_line`); libvirt is reached through the
//! [`Libvirt`] interface; this module decides what each outcome means for the user: which
//! words, which exit status, what `list`, `help` and completion may show.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::action::{Action, ActionSet};
use crate::audit::{self, Audit, Record};
use crate::config::{Config, Hypervisor};
use crate::error::{self, Error, Status};
use crate::escape::escape;
use crate::hypervisor::{Fault, Libvirt, Target};
use crate::lookup;
use crate::output::say;
use crate::policy::{self, Allowed, DenyReason, Judgement, Subject};
use crate::request::{ParseError, Verb};
use crate::session::{Handled, Line};

/// How long Tab may wait for the listings it completes from: a Tab that waits a minute for
/// a stuck libvirt is worse than no completion.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether stdin and stdout are terminals: `console` needs one on stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    pub stdin: bool,
    pub stdout: bool,
}

/// Who is asking, from where, and under which config.
pub struct Gateway<'a> {
    config: Config,
    config_path: PathBuf,
    key: String,
    /// go-dromaius `-host`: the one domain this session may act on.
    bound: Option<String>,
    /// `SSH_CONNECTION`'s client address, for the audit.
    client: Option<String>,
    libvirt: &'a dyn Libvirt,
    audit: Audit,
    terminal: Terminal,
}

/// What carrying out a request produced: text for stdout, and how it ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub shown: String,
    pub result: Result<(), Error>,
}

impl Reply {
    fn done(shown: String) -> Reply {
        Reply {
            shown,
            result: Ok(()),
        }
    }

    fn failed(error: Error) -> Reply {
        Reply {
            shown: String::new(),
            result: Err(error),
        }
    }
}

impl From<Result<String, Error>> for Reply {
    fn from(result: Result<String, Error>) -> Reply {
        match result {
            Ok(shown) => Reply::done(shown),
            Err(error) => Reply::failed(error),
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
        libvirt: &'a dyn Libvirt,
        terminal: Terminal,
    ) -> Gateway<'a> {
        Gateway {
            audit: Audit::connect(&config.syslog_socket),
            config,
            config_path,
            key,
            bound,
            client,
            libvirt,
            terminal,
        }
    }

    fn subject(&self) -> Subject<'_> {
        Subject::new(&self.config, &self.key, self.bound.as_deref())
    }

    /// Handles one line. `None` for a blank line, which asks for nothing.
    pub fn handle(&self, line: &Line) -> Option<Handled> {
        // Until the record is sent, a hang-up must not end the process under us.
        let _in_hand = crate::sys::request_in_hand();
        let subject = self.subject();
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
        self.record(line, &judgement, status);
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
            Judgement::Allowed(allowed) => self.act(allowed).into(),
        }
    }

    fn act(&self, allowed: &Allowed<'_>) -> Result<String, Error> {
        let Allowed { action, domain, .. } = allowed;
        if action.is_interactive() && !self.terminal.stdin {
            return Err(Error::Failed(
                "console needs a terminal: connect with ssh -t (and the key needs the pty option)"
                    .into(),
            ));
        }
        let deadline = Instant::now() + self.config.timeout;
        let at = self.hypervisor_of(allowed);
        let explain = |fault| self.explain(fault, action.name(), domain);
        let target = if lookup::is_only_a_name(domain) {
            // virsh cannot read this name as an id or a UUID: it goes as it is, one run.
            Target {
                name: domain,
                uuid: None,
            }
        } else {
            match self.libvirt.lookup(at, domain, deadline).map_err(explain)? {
                Some(found) => Target {
                    name: domain,
                    uuid: found.uuid,
                },
                None => return Err(self.explain(Fault::NotFound, action.name(), domain)),
            }
        };
        if action.is_interactive() {
            self.libvirt.console(at, &target).map_err(explain)?;
            return Ok(String::new());
        }
        self.libvirt
            .act(at, *action, &target, deadline)
            .map_err(explain)
    }

    /// The hypervisor an allowed action acts on.
    fn hypervisor_of(&self, allowed: &Allowed<'_>) -> &Hypervisor {
        let id = allowed
            .hypervisors
            .first()
            .copied()
            .unwrap_or_else(|| self.config.connect[0]);
        self.config.hypervisor(id)
    }

    /// What a fault means for the user, for `command` on `domain` (empty for `list`).
    fn explain(&self, fault: Fault, command: &str, domain: &str) -> Error {
        let what = if domain.is_empty() {
            command.to_owned()
        } else {
            format!("{command} {}", escape(domain))
        };
        match fault {
            Fault::CannotRun(why) => Error::Unavailable(why),
            Fault::Unreachable(words) if words.is_empty() => {
                Error::Unavailable(format!("{what}: libvirt could not be reached"))
            }
            Fault::Unreachable(words) => Error::Unavailable(words),
            Fault::TimedOut => Error::TimedOut(format!(
                "{what} took longer than {} s and was stopped",
                self.config.timeout.as_secs()
            )),
            Fault::Interrupted => Error::Interrupted(format!("{command} interrupted")),
            Fault::NotFound => Error::Failed(format!("no domain named \"{}\"", escape(domain))),
            Fault::ConsoleBusy(words) => Error::Failed(format!(
                "{words}\nthe console of {} is in use by another session",
                escape(domain)
            )),
            Fault::Failed { words, status } if words.is_empty() => {
                Error::Failed(format!("virsh {command} failed ({status})"))
            }
            Fault::Failed { words, .. } => Error::Failed(words),
        }
    }

    /// `list`: every existing domain this key may act on, with its state, from one listing
    /// per hypervisor. A hypervisor that fails is reported; the others are still listed.
    fn list(&self, subject: &Subject<'_>) -> Reply {
        let deadline = Instant::now() + self.config.timeout;
        let mut rows: Vec<(String, &'static str)> = Vec::new();
        let mut errors = Vec::new();
        for id in subject.hypervisors() {
            match self.libvirt.states(self.config.hypervisor(id), deadline) {
                Ok(states) => rows.extend(
                    states
                        .into_iter()
                        .filter(|(name, _)| subject.may_list(name, id)),
                ),
                Err(fault) => errors.push(self.explain(fault, "list", "")),
            }
        }
        rows.sort();
        Reply {
            shown: list_text(&rows),
            result: combined(errors),
        }
    }

    /// The audit record of one request.
    fn record(&self, line: &Line, judgement: &Judgement<'_>, status: Status) {
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
                None,
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
                    let grant = self.config.keys.get(&self.key)?.get(index)?;
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
        let subject = self.subject();
        let mut words: Vec<&'static str> =
            subject.usable_actions().iter().map(Action::name).collect();
        if subject.is_known() {
            words.extend(["list", "help"]);
        }
        words.extend(["exit", "quit"]);
        words
    }

    fn domains(&self, action: Action) -> Vec<String> {
        let subject = self.subject();
        if !subject.usable_actions().contains(action) || crate::sys::hung_up() {
            return Vec::new();
        }
        let deadline = Instant::now() + self.config.timeout.min(COMPLETION_TIMEOUT);
        let only: ActionSet = [action].into_iter().collect();
        let mut names: Vec<String> = Vec::new();
        for id in subject.hypervisors() {
            let Ok(states) = self.libvirt.states(self.config.hypervisor(id), deadline) else {
                continue;
            };
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

/// `help`: only the commands this key can use somewhere.
pub fn help_text(subject: &Subject<'_>) -> String {
    let optional = subject.implied_domain().is_some();
    let domain = if optional { "[DOMAIN]" } else { "DOMAIN" };
    let usable = subject.usable_actions();
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

/// `list`'s table: names (escaped) in a column as wide as the widest, then the state.
pub fn list_text(rows: &[(String, &'static str)]) -> String {
    let width = rows
        .iter()
        .map(|(name, _)| escape(name).len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (name, state) in rows {
        text.push_str(&format!("{:width$}  {state}\n", escape(name)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{Found, Uuid};
    use crate::prompt::Completions;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::path::Path;

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
        "none": []
      }
    }"#;

    /// A fake libvirt: domains per URI, faults per URI, and every call it was asked.
    #[derive(Default)]
    struct Fake {
        domains: HashMap<String, Vec<(String, &'static str)>>,
        faults: HashMap<String, Fault>,
        /// The answer to every `act` and `console`, if not the default success.
        act_fault: Option<Fault>,
        calls: RefCell<Vec<String>>,
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
            self.calls.borrow().clone()
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
        fn lookup(&self, at: &Hypervisor, name: &str, _: Instant) -> Result<Option<Found>, Fault> {
            self.calls
                .borrow_mut()
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
            self.calls
                .borrow_mut()
                .push(format!("{} {} {}", action.name(), at.uri, target.name));
            self.fault(&at.uri)?;
            if let Some(fault) = &self.act_fault {
                return Err(fault.clone());
            }
            self.exists(at, target)?;
            Ok(format!("did {} on {}", action.name(), target.name))
        }

        fn console(&self, at: &Hypervisor, target: &Target<'_>) -> Result<(), Fault> {
            self.calls
                .borrow_mut()
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
            self.calls.borrow_mut().push(format!("states {}", at.uri));
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
            fake,
            Terminal {
                stdin: terminal,
                stdout: terminal,
            },
        )
    }

    fn ask(gateway: &Gateway<'_>, line: &str) -> Reply {
        let subject = gateway.subject();
        let judgement = policy::judge_line(&subject, line.as_bytes()).unwrap();
        gateway.carry_out(&subject, &judgement)
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
            let terminal = Terminal {
                stdin: false,
                stdout: false,
            };
            let k = Gateway::new(
                config,
                "t.json".into(),
                "k".into(),
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
        assert_eq!(
            ask(&alice, "list"),
            Reply::done(
                "alice-db  shut off\nalice-web  running\nlab-1      paused\n"
                    .replace("alice-db  ", "alice-db   ")
            )
        );
        assert_eq!(fake.calls(), ["states test:///one", "states test:///two"]);
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
                shown: "alice-web  running\n".into(),
                result: Err(Error::TimedOut(
                    "list took longer than 7 s and was stopped".into()
                )),
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
        assert!(help.contains("destroy DOMAIN"), "{help}");
        assert_eq!(
            alice.domains(Action::Start),
            ["alice-web", "lab-1", "lab-2"]
        );
        assert_eq!(alice.domains(Action::Destroy), ["lab-1", "lab-2"]);
        assert_eq!(alice.commands().len(), 11);
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

    #[test]
    fn list_text_aligns_escaped_names() {
        assert_eq!(
            list_text(&[("a".into(), "running"), ("b\u{1b}".into(), "shut off")]),
            "a      running\nb\\x1b  shut off\n"
        );
        assert_eq!(list_text(&[]), "");
    }
}
