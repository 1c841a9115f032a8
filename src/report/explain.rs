//! `explain`: the decision the gateway would take for one request, and the reason.
//!
//! The request goes through `policy::judge_line`, the very function the gateway acts on,
//! so the answer cannot drift from what a user would get. This module only
//! words the answer: which grant allowed it (index and line), or, for a denial, what each
//! grant of the key lacked. It runs nothing and looks nothing up in libvirt.

use std::fmt::Write as _;

use crate::action::{Action, Needs};
use crate::config::Config;
use crate::error::Status;
use crate::escape::escape;
use crate::policy::{Allowed, Channel, DenyReason, Judgement, Subject, judge_line};

/// `explain` judges a request as any channel would carry it; what the action needs of the
/// channel it says on its own line.
const ANY_CHANNEL: Channel = Channel {
    stdin_is_terminal: false,
    stdout_is_terminal: false,
    one_shot: true,
};
use crate::request::Verb;

/// The answer: exit status and the text for stdout (or, for status 2, for stderr).
#[derive(Debug, PartialEq, Eq)]
pub struct Explanation {
    pub status: Status,
    pub text: String,
}

/// Explains `words` (the request as the user would type it, split into arguments) for
/// `key`. `file` is the config's name, for the line references.
pub fn explain(config: &Config, file: &str, key: &str, words: &[String]) -> Explanation {
    explain_at(config, file, key, words, crate::expiry::now())
}

/// [`explain`] as of `now` (Unix seconds).
pub fn explain_at(
    config: &Config,
    file: &str,
    key: &str,
    words: &[String],
    now: i64,
) -> Explanation {
    let line = words.join(" ");
    let subject = Subject::at(config, key, None, now);
    let shown_key = escape(key);
    let mut text = String::new();
    let status = match judge_line(&subject, line.as_bytes(), ANY_CHANNEL) {
        None => return invalid("the request is empty".into()),
        Some(Judgement::Invalid(error)) => return invalid(error.to_string()),
        Some(Judgement::Session(verb)) => {
            let _ = match verb {
                Verb::Exit => writeln!(text, "allowed: {} ends a session", verb.name()),
                _ => writeln!(
                    text,
                    "allowed: {} is always allowed; it shows only what key \"{shown_key}\" may use",
                    verb.name()
                ),
            };
            Status::Ok
        }
        Some(Judgement::Allowed(allowed)) => {
            write_allowed(&mut text, config, key, &allowed);
            Status::Ok
        }
        Some(Judgement::Denied {
            verb,
            domain,
            reason,
        }) => {
            write_denial(
                &mut text,
                &subject,
                file,
                key,
                verb,
                domain.as_deref(),
                reason,
            );
            Status::Denied
        }
    };
    Explanation { status, text }
}

fn write_allowed(text: &mut String, config: &Config, key: &str, allowed: &Allowed<'_>) {
    let implied = if allowed.implied {
        " (the key's only domain, implied)"
    } else {
        ""
    };
    let _ = write!(
        text,
        "allowed: {} on \"{}\"{implied} for key \"{}\"",
        allowed.action.name(),
        escape(&allowed.domain),
        escape(key)
    );
    let grant = allowed
        .grant
        .and_then(|index| Some((index, config.keys.get(key)?.get(index)?)));
    match grant {
        Some((index, grant)) => {
            let _ = writeln!(text, " by {}", grant_named(config, index, grant));
        }
        None => {
            let _ = writeln!(text, " by AllowedHosts");
        }
    }
    let described = |id: &crate::config::HypervisorId| {
        let hypervisor = config.hypervisor(*id);
        match &hypervisor.name {
            Some(name) => format!("{} ({})", escape(name), escape(&hypervisor.uri)),
            None => escape(&hypervisor.uri),
        }
    };
    match allowed.hypervisors {
        [one] => {
            let _ = writeln!(text, "  virsh acts on it through {}", described(one));
        }
        several => {
            let all: Vec<String> = several.iter().map(described).collect();
            let _ = writeln!(
                text,
                "  looked up on {}, all at once; virsh acts where it is defined (where it is \
                 active, if more than one defines it)",
                all.join(", ")
            );
        }
    }
    let _ = match allowed.action.needs() {
        Needs::Nothing => Ok(()),
        Needs::Terminal => writeln!(text, "  it needs a terminal: ssh -t"),
        Needs::FileOrPipe => writeln!(
            text,
            "  the image goes to stdout, which must be a file or a pipe (ssh ... > shot.png)"
        ),
        Needs::RawChannel => writeln!(
            text,
            "  one-shot only, at ssh -T, never at the prompt; relayed only from a hypervisor \
             on this host"
        ),
    };
    if allowed.action == Action::Display {
        for id in allowed.hypervisors {
            let at = config.hypervisor(*id);
            if !at.is_local() {
                let _ = writeln!(
                    text,
                    "  on {} it is refused (1): that hypervisor is not on this host",
                    described(id)
                );
            }
        }
    }
}

fn invalid(reason: String) -> Explanation {
    Explanation {
        status: Status::Usage,
        text: format!("invalid request: {reason} (the gateway would answer 2)\n"),
    }
}

/// `grant #N (FILE:LINE)`, with the group whose entry holds it, if any.
pub(super) fn grant_named(config: &Config, index: usize, grant: &crate::config::Grant) -> String {
    let group = grant
        .group
        .as_deref()
        .map(|g| format!(", group {}", escape(g)))
        .unwrap_or_default();
    format!("grant #{} ({}{group})", index + 1, config.place_of(grant))
}

fn write_denial(
    text: &mut String,
    subject: &Subject<'_>,
    file: &str,
    key: &str,
    verb: Verb,
    domain: Option<&str>,
    reason: DenyReason,
) {
    let config = subject.config();
    let shown_key = escape(key);
    let what = match (verb, domain) {
        (verb, Some(domain)) => format!("{} on \"{}\"", verb.name(), escape(domain)),
        (verb, None) => verb.name().to_string(),
    };
    let _ = match reason {
        DenyReason::UnknownKey => writeln!(
            text,
            "denied: {what}: key \"{shown_key}\" is not in {file}, so every request with it is refused"
        ),
        DenyReason::OutsideBoundDomain => writeln!(
            text,
            "denied: {what}: outside the domain the session is bound to"
        ),
        DenyReason::NoMatchingGrant => writeln!(
            text,
            "denied: {what}: no grant of key \"{shown_key}\" allows it"
        ),
    };
    if reason == DenyReason::NoMatchingGrant {
        let (Verb::Act(action), Some(domain)) = (verb, domain) else {
            return;
        };
        for (index, grant) in config.keys.get(key).into_iter().flatten().enumerate() {
            let domain_ok = grant.matches_domain(domain);
            let command_ok = grant.commands.contains(action);
            let why = match (domain_ok, command_ok) {
                (false, false) => "neither the domain nor the command matches",
                (false, true) => "the domain matches none of its patterns",
                (true, false) => "the domain matches, but not the command",
                (true, true) => "matches",
            };
            let why = match grant
                .expires
                .as_ref()
                .filter(|_| subject.has_expired(grant))
            {
                Some(expiry) => format!("{why}, but it expired: {}", escape(&expiry.to_string())),
                None => why.to_owned(),
            };
            let _ = writeln!(text, "  {}: {why}", grant_named(config, index, grant));
        }
        if config.keys.get(key).is_some_and(Vec::is_empty) {
            let _ = writeln!(text, "  the key has no grants");
        }
    }
    let _ = writeln!(
        text,
        "  the user is told only \"permission denied\" (77), whether or not the domain exists"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"{
  "keys": {
    "alice": [
      { "domains": ["alice-*"], "commands": ["start", "status"] },
      { "domains": ["shared-db"], "commands": ["status"], "connect": "test:///default" }
    ],
    "solo": [ { "domains": ["only"] } ],
    "none": []
  }
}"#;

    fn run(key: &str, words: &[&str]) -> (u8, String) {
        let config = crate::config::parse(CONFIG, Path::new("c.json")).unwrap();
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let e = explain(&config, "c.json", key, &words);
        (e.status.code(), e.text)
    }

    #[test]
    fn explain_says_where_a_fleet_request_acts() {
        let config = crate::config::parse(
            r#"{"hypervisors": {"hv1": "qemu+ssh://gw@hv1/system", "hv2": "qemu+tls://hv2/system"},
                "keys": {"ops": [{"domains": ["web*"], "connect": ["hv1", "hv2"]},
                                 {"domains": ["db"], "connect": "hv2"}]}}"#,
            Path::new("f.json"),
        )
        .unwrap();
        let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let text = explain(&config, "f.json", "ops", &words(&["start", "web1"])).text;
        assert!(
            text.contains(
                "looked up on hv1 (qemu+ssh://gw@hv1/system), hv2 (qemu+tls://hv2/system), \
                 all at once; virsh acts where it is defined"
            ),
            "{text}"
        );
        let text = explain(&config, "f.json", "ops", &words(&["status", "db"])).text;
        assert!(
            text.contains("virsh acts on it through hv2 (qemu+tls://hv2/system)"),
            "{text}"
        );
    }

    #[test]
    fn explain_table() {
        let cases: &[(&str, &[&str], u8, &str)] = &[
            (
                "alice",
                &["start", "alice-web"],
                0,
                "allowed: start on \"alice-web\" for key \"alice\" by grant #1 (c.json:4)\n  virsh acts on it through qemu:///system\n",
            ),
            (
                "alice",
                &["status shared-db"],
                0,
                "by grant #2 (c.json:5)\n  virsh acts on it through test:///default\n",
            ),
            (
                "alice",
                &["destroy", "alice-web"],
                77,
                "denied: destroy on \"alice-web\": no grant of key \"alice\" allows it\n  grant #1 (c.json:4): the domain matches, but not the command\n  grant #2 (c.json:5): neither the domain nor the command matches\n",
            ),
            (
                "alice",
                &["status", "bob-db"],
                77,
                "grant #1 (c.json:4): the domain matches none of its patterns",
            ),
            (
                "mallory",
                &["status", "x"],
                77,
                "key \"mallory\" is not in c.json",
            ),
            ("mallory", &["list"], 77, "denied: list: key \"mallory\""),
            ("none", &["status", "x"], 77, "the key has no grants"),
            ("alice", &["list"], 0, "allowed: list is always allowed"),
            ("alice", &["help"], 0, "allowed: help is always allowed"),
            ("mallory", &["exit"], 0, "allowed: exit ends a session"),
            (
                "solo",
                &["reset"],
                0,
                "allowed: reset on \"only\" (the key's only domain, implied) for key \"solo\" by grant #1 (c.json:7)",
            ),
            (
                "alice",
                &["start"],
                2,
                "invalid request: start needs a domain",
            ),
            (
                "alice",
                &["check"],
                2,
                "invalid request: unknown command \"check\"",
            ),
            ("alice", &["start", "a b"], 2, "too many words"),
            ("alice", &["start", "a\u{1b}"], 2, "control character"),
            ("alice", &["   "], 2, "the request is empty"),
            ("alice", &["list", "x"], 2, "list takes no domain"),
        ];
        for (key, words, status, fragment) in cases {
            let (got_status, text) = run(key, words);
            assert_eq!(got_status, *status, "{key} {words:?}: {text}");
            assert!(
                text.contains(fragment),
                "{key} {words:?}:\n{text}\nwanted {fragment:?}"
            );
        }
    }
}
