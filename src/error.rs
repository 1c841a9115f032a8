//! The exit statuses of the contract, and the one error type that carries them.
//!
//! Every way a request can fail is an [`Error`] whose variant carries the facts (the
//! domain, the hypervisor, the command, libvirt's own words, the underlying fault), never a
//! sentence: [`Error::status`] is its exit status and its `Display` holds every message the
//! user can be shown. Printing is the user channel's (`system::channel::report`), in one
//! place. Everything a user sent is escaped where the message is made, here.

use std::fmt;

use crate::action::{Action, Needs};
use crate::config::ConfigError;
use crate::escape::escape;
use crate::graphics::NotRelayed;
use crate::hypervisor::Fault;
use crate::request::ParseError;

/// An exit status of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: done.
    Ok,
    /// 1: virsh ran and failed, or the request cannot be carried out as asked.
    Failed,
    /// 2: the request could not be parsed.
    Usage,
    /// 69: virsh or libvirt could not be reached.
    Unavailable,
    /// 77: not allowed.
    Denied,
    /// 78: the config is missing, unreadable or invalid.
    Config,
    /// 124: the command ran past `timeout_secs`.
    TimedOut,
    /// 130: interrupted (Ctrl-C, hang-up) while a command ran.
    Interrupted,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Usage => 2,
            Status::Unavailable => 69,
            Status::Denied => 77,
            Status::Config => 78,
            Status::TimedOut => 124,
            Status::Interrupted => 130,
        }
    }
}

impl From<Status> for std::process::ExitCode {
    fn from(status: Status) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// What was being done when libvirt failed: the command (or `lookup`, `list`), the domain
/// it was about, the hypervisor when the key's grants span several (it is then named), and
/// the `timeout_secs` in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doing {
    pub command: &'static str,
    pub domain: Option<String>,
    pub hypervisor: Option<String>,
    pub timeout_secs: u64,
}

/// Why an attachment (console, display) was ended while it lasted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The config no longer allows this command on this domain there.
    Revoked { action: Action, domain: String },
    /// The config can no longer be read.
    ConfigGone(ConfigError),
}

impl fmt::Display for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revocation::Revoked { action, domain } => write!(
                f,
                "access to {} on {} was revoked",
                action.name(),
                escape(domain)
            ),
            Revocation::ConfigGone(refused) => {
                write!(f, "the config can no longer be read ({refused})")
            }
        }
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The line is not a request (2).
    Usage(ParseError),
    /// The administrator's command line asks for something that means nothing (2).
    Arguments(&'static str),
    /// Not allowed (77). Always the same words: whether the domain exists, whether the key is
    /// known, is not the user's to learn.
    Denied,
    /// The config cannot be used (78); `ends_session` when a session was open.
    Config {
        refused: ConfigError,
        ends_session: bool,
    },
    /// libvirt (or virsh) failed at what was being done; the status is the fault's.
    Libvirt { fault: Fault, doing: Box<Doing> },
    /// Defined on several of the grant's hypervisors, and not active on exactly one (1).
    Ambiguous {
        domain: String,
        action: Action,
        defined: Vec<String>,
        active: Vec<String>,
    },
    /// A hypervisor that may run the domain could not be asked, so it is not started
    /// (two QEMUs on one disk): 69, or 124 when it was a timeout.
    StartUnsafe { domain: String, why: Box<Error> },
    /// The channel cannot carry this action (1), decided before anything ran.
    Unfit {
        action: Action,
        domain: String,
        needs: Needs,
        at_prompt: bool,
    },
    /// `display` of a domain on a hypervisor that is not on this host (1).
    RemoteDisplay { domain: String, hypervisor: String },
    /// libvirt's answer names no display dromaius relays (1).
    NoDisplay { domain: String, why: NotRelayed },
    /// The display could not be connected to (1).
    DisplayUnreachable {
        domain: String,
        endpoint: String,
        why: String,
    },
    /// The client hung up while the display was relayed (130).
    DisplayInterrupted,
    /// The display reached named another desktop than the domain's (1): its name.
    WrongDisplay { domain: String, named: String },
    /// An attachment was ended because access to it ended (77).
    Revoked {
        why: Revocation,
        attachment: Action,
        domain: String,
    },
    /// One failure per hypervisor: the last one's status, every one's words.
    Several(Vec<Error>),
}

impl Error {
    pub fn status(&self) -> Status {
        match self {
            Error::Usage(_) | Error::Arguments(_) => Status::Usage,
            Error::Denied | Error::Revoked { .. } => Status::Denied,
            Error::Config { .. } => Status::Config,
            Error::Libvirt { fault, .. } => fault_status(fault),
            Error::StartUnsafe { why, .. } => match why.status() {
                Status::TimedOut => Status::TimedOut,
                _ => Status::Unavailable,
            },
            Error::DisplayInterrupted => Status::Interrupted,
            Error::Ambiguous { .. }
            | Error::Unfit { .. }
            | Error::RemoteDisplay { .. }
            | Error::NoDisplay { .. }
            | Error::DisplayUnreachable { .. }
            | Error::WrongDisplay { .. } => Status::Failed,
            Error::Several(errors) => errors.last().map_or(Status::Failed, Error::status),
        }
    }

    /// Several errors as one: nothing for none, itself for one.
    pub fn combined(mut errors: Vec<Error>) -> Result<(), Error> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Several(errors)),
        }
    }

    /// Whether an attachment ended this way was revoked (its record says so).
    pub fn is_revoked(&self) -> bool {
        matches!(
            self,
            Error::Revoked { .. }
                | Error::Libvirt {
                    fault: Fault::Revoked(_),
                    ..
                }
        )
    }
}

fn fault_status(fault: &Fault) -> Status {
    match fault {
        Fault::CannotRun(_) | Fault::Unreachable(_) => Status::Unavailable,
        Fault::TimedOut => Status::TimedOut,
        Fault::Interrupted => Status::Interrupted,
        Fault::Revoked(_) => Status::Denied,
        Fault::NotFound | Fault::ConsoleBusy(_) | Fault::Failed { .. } => Status::Failed,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(error) => write!(f, "{error}; type \"help\" for the commands you may use"),
            Error::Arguments(why) => f.write_str(why),
            Error::Denied => f.write_str("permission denied"),
            Error::Config {
                refused,
                ends_session,
            } => {
                write!(f, "{refused}")?;
                if *ends_session {
                    f.write_str("; the session ends")?;
                }
                Ok(())
            }
            Error::Libvirt { fault, doing } => fault_words(f, fault, doing),
            Error::Ambiguous {
                domain,
                action,
                defined,
                active,
            } => ambiguous_words(f, domain, *action, defined, active),
            Error::StartUnsafe { domain, why } => write!(
                f,
                "start {} refused: the domain may be running where it could not be looked \
                 up\n{why}",
                escape(domain)
            ),
            Error::Unfit {
                action,
                domain,
                needs,
                at_prompt,
            } => unfit_words(f, *action, &escape(domain), *needs, *at_prompt),
            Error::RemoteDisplay { domain, hypervisor } => write!(
                f,
                "display {}: {} is not on this host, and only a hypervisor on this host has \
                 its graphical console relayed (its 127.0.0.1 is not ours)",
                escape(domain),
                escape(hypervisor)
            ),
            Error::NoDisplay { domain, why } => write!(f, "display {}: {why}", escape(domain)),
            Error::DisplayUnreachable {
                domain,
                endpoint,
                why,
            } => write!(
                f,
                "display {}: cannot connect to its display at {}: {why}",
                escape(domain),
                escape(endpoint)
            ),
            Error::DisplayInterrupted => f.write_str("display interrupted"),
            Error::WrongDisplay { domain, named } => write!(
                f,
                "display {}: the display reached names itself {}, not this domain's; closed \
                 (another display took its place: try again)",
                escape(domain),
                escape(named)
            ),
            Error::Revoked {
                why,
                attachment,
                domain,
            } => write!(
                f,
                "{why}; the {} of {} was closed",
                attachment.name(),
                escape(domain)
            ),
            Error::Several(errors) => {
                let text: Vec<String> = errors.iter().map(Error::to_string).collect();
                f.write_str(&text.join("\n"))
            }
        }
    }
}

impl std::error::Error for Error {}

/// Why a domain defined on several hypervisors is not acted on.
fn ambiguous_words(
    f: &mut fmt::Formatter<'_>,
    domain: &str,
    action: Action,
    defined: &[String],
    active: &[String],
) -> fmt::Result {
    let running = if active.is_empty() {
        "active on none of them".to_owned()
    } else {
        format!("active on {}", labels(active))
    };
    write!(
        f,
        "\"{}\" is defined on {} and {running}: refusing to {} it (a domain must be defined \
         on one hypervisor, or active on exactly one)",
        escape(domain),
        labels(defined),
        action.name()
    )
}

/// Hypervisor names, escaped, as a list in a sentence.
fn labels(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| escape(n)).collect();
    names.join(", ")
}

/// What a fault means for the user, for what was being done.
fn fault_words(f: &mut fmt::Formatter<'_>, fault: &Fault, doing: &Doing) -> fmt::Result {
    let mut what = match &doing.domain {
        Some(domain) => format!("{} {}", doing.command, escape(domain)),
        None => doing.command.to_owned(),
    };
    let on = doing.hypervisor.as_deref().map(escape);
    if let Some(on) = &on {
        what.push_str(&format!(" on {on}"));
    }
    // virsh's own words for one of several hypervisors say which one they are about.
    let named = |words: &str| match &on {
        Some(on) => words
            .lines()
            .map(|line| format!("{on}: {line}"))
            .collect::<Vec<_>>()
            .join("\n"),
        None => words.to_owned(),
    };
    let domain = escape(doing.domain.as_deref().unwrap_or_default());
    match fault {
        Fault::CannotRun(why) => f.write_str(why),
        Fault::Unreachable(words) if words.is_empty() => {
            write!(f, "{what}: libvirt could not be reached")
        }
        Fault::Unreachable(words) => f.write_str(&named(words)),
        Fault::TimedOut => write!(
            f,
            "{what} took longer than {} s and was stopped",
            doing.timeout_secs
        ),
        Fault::Interrupted => write!(f, "{} interrupted", doing.command),
        Fault::NotFound => write!(f, "no domain named \"{domain}\""),
        Fault::ConsoleBusy(words) => write!(
            f,
            "{}\nthe console of {domain} is in use by another session",
            named(words)
        ),
        Fault::Failed { words, status } if words.is_empty() => {
            write!(f, "virsh {} failed ({status})", doing.command)
        }
        Fault::Failed { words, .. } => f.write_str(&named(words)),
        Fault::Revoked(why) => write!(f, "{why}; the {} of {domain} was closed", doing.command),
    }
}

/// Why the channel cannot carry `action`, and how to ask so that it can.
fn unfit_words(
    f: &mut fmt::Formatter<'_>,
    action: Action,
    shown: &str,
    needs: Needs,
    at_prompt: bool,
) -> fmt::Result {
    match needs {
        Needs::Terminal => f.write_str(
            "console needs a terminal: connect with ssh -t (and the key needs the pty option)",
        ),
        Needs::FileOrPipe => write!(
            f,
            "screenshot writes an image to stdout, which is a terminal here: redirect it to a \
             file, e.g. ssh dromaius@HOST screenshot {shown} > {shown}.png"
        ),
        Needs::RawChannel if at_prompt => write!(
            f,
            "{} is a request of its own: ssh -T dromaius@HOST {} {shown}, started by a viewer's \
             helper (see USAGE.md, which your administrator has as \
             /usr/share/doc/dromaius/USAGE.md), not at the prompt",
            action.name(),
            action.name()
        ),
        Needs::RawChannel => write!(
            f,
            "{} needs the channel to itself without a terminal: connect with ssh -T \
             dromaius@HOST {} {shown}",
            action.name(),
            action.name()
        ),
        Needs::Nothing => Ok(()),
    }
}

/// The one-line form of an error, for a report that gives each hypervisor one line.
pub fn one_line(error: &Error) -> String {
    error.to_string().lines().collect::<Vec<_>>().join(" / ")
}
