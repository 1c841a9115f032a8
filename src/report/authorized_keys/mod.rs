//! `check --authorized-keys`: reads an `authorized_keys` file the way sshd does and finds
//! the lines that would not do what a dromaius line should.
//!
//! For every line that runs dromaius: the forced command is this binary by an absolute
//! path, its arguments are ones dromaius accepts, its `--key` is in the config (or its
//! go-dromaius `-host` is in `AllowedHosts`), it reads the config being checked, port,
//! agent and X11 forwarding are off (`restrict`), and a key granted `console` gets a pty.
//! For every line: it parses, it has a forced command, and its public key is not on an
//! earlier line (sshd would only ever use the first). Nothing here reads files; the caller
//! hands in the text and a way to resolve paths.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::ffi::OsString;

use crate::action::Action;
use crate::cli::{self, ArgsError, GatewayArgs, Invocation};
use crate::config::Config;
use crate::escape::escape;
use crate::policy::Subject;
mod parse;

use parse::{parse_line, parse_principal_line, shell_words};

/// One finding, tied to a line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based.
    pub line: usize,
    /// Problems fail the check; notes only inform.
    pub problem: bool,
    pub message: String,
}

/// What the lint compares the file against.
pub struct Context<'a> {
    pub config: &'a Config,
    /// The config file being checked, resolved (canonical).
    pub config_path: &'a Path,
    /// This dromaius binary, resolved (canonical).
    pub binary: &'a Path,
    /// Resolves a path as the system would (`fs::canonicalize`); `None` if it does not exist.
    pub resolve: &'a dyn Fn(&Path) -> Option<PathBuf>,
}

/// Counts for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub keys: usize,
    pub dromaius_lines: usize,
}

/// Lints a whole `authorized_keys` file; findings come in line order.
pub fn lint(text: &str, context: &Context<'_>) -> (Vec<Finding>, Counts) {
    lint_lines(text, context, Kind::AuthorizedKeys)
}

/// Lints a whole `AuthorizedPrincipalsFile` (`options principal` on each line, for
/// certificates); findings come in line order.
pub fn lint_principals(text: &str, context: &Context<'_>) -> (Vec<Finding>, Counts) {
    lint_lines(text, context, Kind::Principals)
}

/// Which of sshd's two files a text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AuthorizedKeys,
    Principals,
}

fn lint_lines(text: &str, context: &Context<'_>, kind: Kind) -> (Vec<Finding>, Counts) {
    let mut findings = Vec::new();
    let mut counts = Counts::default();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let mut report = |problem: bool, message: String| {
            findings.push(Finding {
                line: number,
                problem,
                message,
            })
        };
        let line = raw.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = match kind {
            Kind::AuthorizedKeys => parse_line(line).map(|entry| {
                (
                    entry.options,
                    format!("{} {}", entry.key.kind, entry.key.base64),
                )
            }),
            Kind::Principals => parse_principal_line(line),
        };
        let (options, identity) = match parsed {
            Ok(parsed) => parsed,
            Err(why) => {
                report(true, format!("sshd cannot use this line: {why}"));
                continue;
            }
        };
        counts.keys += 1;
        if let Some(first) = first_seen.get(&identity) {
            let what = match kind {
                Kind::AuthorizedKeys => "public key",
                Kind::Principals => "principal",
            };
            report(
                true,
                format!("the same {what} is on line {first}; sshd only ever uses the first"),
            );
        } else {
            first_seen.insert(identity, number);
        }
        let dromaius = lint_entry(&options, context, &mut |problem, message| {
            findings.push(Finding {
                line: number,
                problem,
                message,
            })
        });
        if dromaius {
            counts.dromaius_lines += 1;
        }
    }
    (findings, counts)
}

/// What the options leave enabled, applied left to right as sshd does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Allowed {
    port_forwarding: bool,
    agent_forwarding: bool,
    x11_forwarding: bool,
    pty: bool,
}

fn allowed(options: &[(String, Option<String>)]) -> Allowed {
    let mut allowed = Allowed {
        port_forwarding: true,
        agent_forwarding: true,
        x11_forwarding: true,
        pty: true,
    };
    for (name, _) in options {
        match name.as_str() {
            "restrict" => {
                allowed = Allowed {
                    port_forwarding: false,
                    agent_forwarding: false,
                    x11_forwarding: false,
                    pty: false,
                }
            }
            "port-forwarding" => allowed.port_forwarding = true,
            "no-port-forwarding" => allowed.port_forwarding = false,
            "agent-forwarding" => allowed.agent_forwarding = true,
            "no-agent-forwarding" => allowed.agent_forwarding = false,
            "x11-forwarding" => allowed.x11_forwarding = true,
            "no-x11-forwarding" => allowed.x11_forwarding = false,
            "pty" => allowed.pty = true,
            "no-pty" => allowed.pty = false,
            _ => {}
        }
    }
    allowed
}

/// Checks one parsed line; returns whether it runs dromaius.
fn lint_entry(
    options: &[(String, Option<String>)],
    context: &Context<'_>,
    report: &mut dyn FnMut(bool, String),
) -> bool {
    let Some(words) = forced_words(options, report) else {
        return false;
    };
    if !lint_program(&words[0], context, report) {
        return false;
    }
    lint_arguments(&words, options, context, report);
    true
}

/// The words of the forced command, at least one; `None`, said why, when there is no
/// forced command or it is not plain words.
fn forced_words(
    options: &[(String, Option<String>)],
    report: &mut dyn FnMut(bool, String),
) -> Option<Vec<String>> {
    let Some(command) = options
        .iter()
        .find(|(name, _)| name == "command")
        .and_then(|(_, value)| value.as_deref())
    else {
        report(
            true,
            "no command= option: this key gets a shell on the account \
             (unless sshd_config forces a command for it)"
                .into(),
        );
        return None;
    };
    let words = match shell_words(command) {
        Ok(words) => words,
        Err(why) => {
            report(
                true,
                format!("the forced command {why}; write it as plain words so it can be checked"),
            );
            return None;
        }
    };
    if words.is_empty() {
        report(true, "the forced command is empty".into());
        return None;
    }
    Some(words)
}

/// Whether the forced command runs dromaius at all; if it does, whether it is this binary
/// by an absolute path.
fn lint_program(
    program: &str,
    context: &Context<'_>,
    report: &mut dyn FnMut(bool, String),
) -> bool {
    let resolved = (context.resolve)(Path::new(program));
    let is_this_binary = resolved.as_deref() == Some(context.binary);
    let named_dromaius = Path::new(program).file_name() == Some("dromaius".as_ref());
    if !is_this_binary && !named_dromaius {
        report(
            false,
            format!(
                "runs \"{}\", not dromaius; not checked further",
                escape(program)
            ),
        );
        return false;
    }
    if !program.starts_with('/') {
        report(
            true,
            format!(
                "the command path \"{}\" is not absolute: the shell would look it up in PATH",
                escape(program)
            ),
        );
    } else if !is_this_binary {
        let found = match &resolved {
            Some(path) => format!("which is {}", escape(&path.to_string_lossy())),
            None => "which does not exist".into(),
        };
        report(
            true,
            format!(
                "runs \"{}\" ({found}), not this dromaius ({})",
                escape(program),
                escape(&context.binary.to_string_lossy())
            ),
        );
    }
    true
}

/// What the gateway itself would make of the words (the same function decides), then the
/// forwarding the options leave on and what the gateway would do with the line.
fn lint_arguments(
    words: &[String],
    options: &[(String, Option<String>)],
    context: &Context<'_>,
    report: &mut dyn FnMut(bool, String),
) {
    let gateway = match cli::parse(words.iter().map(OsString::from)) {
        Ok(Invocation::Gateway(gateway)) => gateway,
        Ok(Invocation::Admin { .. }) => {
            report(
                true,
                "runs an administrator subcommand, not the gateway".into(),
            );
            return;
        }
        Err(ArgsError::Meaningless(why)) => {
            lint_forwarding(options, report);
            report(true, format!("{why}: dromaius refuses it"));
            return;
        }
        Err(error) => {
            report(
                true,
                format!("dromaius would refuse its arguments: {error}"),
            );
            return;
        }
    };
    let allowed = lint_forwarding(options, report);
    lint_gateway(allowed, context, &gateway, report);
}

/// Forwarding left on is a problem whatever the command; returns what the options allow.
fn lint_forwarding(
    options: &[(String, Option<String>)],
    report: &mut dyn FnMut(bool, String),
) -> Allowed {
    let allowed = allowed(options);
    let open: Vec<&str> = [
        (allowed.port_forwarding, "port"),
        (allowed.agent_forwarding, "agent"),
        (allowed.x11_forwarding, "X11"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect();
    if !open.is_empty() {
        report(
            true,
            format!(
                "{} forwarding is allowed: add restrict (a port forward reaches every VNC \
                 console on the host's loopback)",
                open.join(", ")
            ),
        );
    }

    allowed
}

/// What the gateway would do with this line: which config it reads, as which key.
fn lint_gateway(
    allowed: Allowed,
    context: &Context<'_>,
    gateway: &GatewayArgs,
    report: &mut dyn FnMut(bool, String),
) {
    let config_path = &gateway.config;
    if config_path.is_relative() {
        report(
            false,
            format!(
                "reads the config \"{}\" relative to the account's home directory; \
                 make sure that is the file checked here",
                escape(&config_path.to_string_lossy())
            ),
        );
    } else if (context.resolve)(config_path).as_deref() != Some(context.config_path) {
        report(
            true,
            format!(
                "reads the config {}, not the one checked here ({}): its key was not checked",
                escape(&config_path.to_string_lossy()),
                escape(&context.config_path.to_string_lossy())
            ),
        );
        return;
    }

    let identity = match (&gateway.key, &gateway.bound) {
        (Some(key), _) => key.clone(),
        (None, Some(host)) => {
            if !context.config.allowed_hosts.iter().any(|h| h == host) {
                report(
                    true,
                    format!(
                        "-host {} is not in AllowedHosts: it works only if the account's \
                         Unix user is a key granted that domain",
                        escape(host)
                    ),
                );
            }
            return lint_pty(
                allowed,
                Subject::new(context.config, "", Some(host)),
                "-host session",
                report,
            );
        }
        (None, None) => {
            report(
                true,
                "no --key: requests are made as the account's Unix user, the same for every \
                 key of the account"
                    .into(),
            );
            return;
        }
    };
    let subject = Subject::new(context.config, &identity, gateway.bound.as_deref());
    if !context.config.keys.contains_key(&identity) {
        report(
            true,
            format!(
                "--key {} is not in the config: every request with this key is refused",
                escape(&identity)
            ),
        );
        return;
    }
    lint_pty(
        allowed,
        subject,
        &format!("key {}", escape(&identity)),
        report,
    );
}

fn lint_pty(
    allowed: Allowed,
    subject: Subject<'_>,
    who: &str,
    report: &mut dyn FnMut(bool, String),
) {
    if subject.usable_actions().contains(Action::Console) && !allowed.pty {
        report(
            true,
            format!("{who} is granted console, but the line allows no pty: add pty after restrict"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::parse::parse_options;
    use super::*;
    use crate::sshkey::tests::{ECDSA256, ED25519};

    const CONFIG: &str = r#"{
      "AllowedHosts": ["vhost1"],
      "keys": {
        "alice": [{ "domains": ["alice-*"], "commands": ["start", "status", "console"] }],
        "bob": [{ "domains": ["bob-*"], "commands": ["status"] }]
      }
    }"#;
    const BIN: &str = "/usr/bin/dromaius";
    const CHECKED: &str = "/etc/dromaius/dromaius.json";

    fn run(text: &str) -> (Vec<(usize, bool, String)>, Counts) {
        let config = crate::config::parse(CONFIG, Path::new(CHECKED)).unwrap();
        // The "file system": these paths exist; /usr/local/bin/dromaius is a link to BIN.
        let resolve = |path: &Path| -> Option<PathBuf> {
            match path.to_str()? {
                "/usr/local/bin/dromaius" | BIN => Some(PathBuf::from(BIN)),
                "/opt/old/dromaius" => Some(PathBuf::from("/opt/old/dromaius")),
                "/etc/dromaius/../dromaius/dromaius.json" | CHECKED => Some(PathBuf::from(CHECKED)),
                "/etc/dromaius/other.json" => Some(PathBuf::from("/etc/dromaius/other.json")),
                _ => None,
            }
        };
        let context = Context {
            config: &config,
            config_path: Path::new(CHECKED),
            binary: Path::new(BIN),
            resolve: &resolve,
        };
        let (findings, counts) = lint(text, &context);
        (
            findings
                .into_iter()
                .map(|f| (f.line, f.problem, f.message))
                .collect(),
            counts,
        )
    }

    fn problems_of(line: &str) -> Vec<String> {
        run(line)
            .0
            .into_iter()
            .filter(|(_, problem, _)| *problem)
            .map(|(_, _, m)| m)
            .collect()
    }

    #[test]
    fn good_lines_have_no_problem() {
        let ecdsa_no_comment = ECDSA256.rsplit_once(' ').unwrap().0;
        for line in [
            format!("command=\"{BIN} --key alice\",restrict,pty {ED25519}"),
            format!("command=\"{BIN} --key bob\",restrict {ED25519}"),
            format!(
                "restrict,command=\"/usr/local/bin/dromaius --key bob --config {CHECKED}\" {ED25519}"
            ),
            format!(
                "command=\"{BIN} --key=alice\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding {ED25519}"
            ),
            format!("COMMAND=\"{BIN} --key 'bob'\",RESTRICT {ecdsa_no_comment}"),
            format!(
                "command=\"{BIN} -cmd interactive -host vhost1 -config {CHECKED}\",restrict,pty {ED25519}"
            ),
            format!("from=\"10.0.0.0/8\",command=\"{BIN} --key bob\",restrict {ED25519}"),
        ] {
            assert_eq!(problems_of(&line), Vec::<String>::new(), "{line}");
        }
    }

    #[test]
    fn each_rule_names_its_problem() {
        let cases: Vec<(String, &str)> = vec![
            (
                format!("command=\"{BIN} --key mallory\",restrict {ED25519}"),
                "--key mallory is not in the config",
            ),
            (
                format!("command=\"{BIN} --key alice\",restrict {ED25519}"),
                "granted console, but the line allows no pty",
            ),
            (
                format!("command=\"{BIN} --key alice\",restrict,pty,no-pty {ED25519}"),
                "allows no pty",
            ),
            (
                format!("command=\"{BIN} --key bob\" {ED25519}"),
                "port, agent, X11 forwarding is allowed",
            ),
            (
                format!("command=\"{BIN} --key bob\",restrict,port-forwarding {ED25519}"),
                "port forwarding is allowed",
            ),
            (
                format!(
                    "command=\"{BIN} --key bob\",no-port-forwarding,no-agent-forwarding {ED25519}"
                ),
                "X11 forwarding",
            ),
            (
                format!("command=\"dromaius --key bob\",restrict {ED25519}"),
                "not absolute",
            ),
            (
                format!("command=\"/opt/old/dromaius --key bob\",restrict {ED25519}"),
                "not this dromaius",
            ),
            (
                format!("command=\"/nowhere/dromaius --key bob\",restrict {ED25519}"),
                "does not exist",
            ),
            (
                format!(
                    "command=\"{BIN} --key bob --config /etc/dromaius/other.json\",restrict {ED25519}"
                ),
                "not the one checked here",
            ),
            (
                format!("command=\"{BIN} --kee bob\",restrict {ED25519}"),
                "would refuse its arguments",
            ),
            (
                format!("command=\"{BIN} check\",restrict {ED25519}"),
                "administrator subcommand",
            ),
            (format!("command=\"{BIN}\",restrict {ED25519}"), "no --key"),
            (
                format!("command=\"{BIN} -cmd start -config {CHECKED}\",restrict {ED25519}"),
                "-cmd needs -host DOMAIN: dromaius refuses it",
            ),
            (
                format!(
                    "command=\"{BIN} -cmd interactive -host vhost2 -config {CHECKED}\",restrict,pty {ED25519}"
                ),
                "not in AllowedHosts",
            ),
            (
                format!(
                    "command=\"{BIN} -cmd interactive -host vhost1 -config {CHECKED}\",restrict {ED25519}"
                ),
                "-host session is granted console",
            ),
            (
                format!("command=\"{BIN} --key bob; sh\",restrict {ED25519}"),
                "uses shell syntax (;)",
            ),
            (
                format!("command=\"{BIN} --key $USER\",restrict {ED25519}"),
                "uses shell syntax ($)",
            ),
            (
                format!("command=\"{BIN} --key \\\"$USER\\\"\",restrict {ED25519}"),
                "expands $",
            ),
            (format!("command=\"\",restrict {ED25519}"), "empty"),
            (format!("restrict {ED25519}"), "no command= option"),
            (ED25519.to_string(), "no command= option"),
            (
                format!("command=\"{BIN} --key bob\",restrict,bogus {ED25519}"),
                "unknown option \"bogus\"",
            ),
            (
                format!("command=\"{BIN} --key bob,restrict {ED25519}"),
                "not closed",
            ),
            (
                format!("command={BIN},restrict {ED25519}"),
                "must be in double quotes",
            ),
            (format!("command,restrict {ED25519}"), "needs a value"),
            (format!("restrict=\"x\" {ED25519}"), "takes no value"),
            (
                format!("command=\"{BIN} --key bob\",restrict,command=\"/bin/sh\" {ED25519}"),
                "more than one command=",
            ),
            (
                format!("command=\"{BIN} --key bob\",restrict,"),
                "no public key",
            ),
            (
                format!("command=\"{BIN} --key bob\",restrict ssh-ed25519 AAAA"),
                "does not hold",
            ),
        ];
        for (line, expected) in cases {
            let problems = problems_of(&line);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{line}\nexpected {expected:?} in {problems:?}"
            );
        }
    }

    #[test]
    fn findings_name_their_lines_and_duplicates_point_back() {
        let text = format!(
            "# dromaius keys\n\ncommand=\"{BIN} --key bob\",restrict {ED25519}\n\
             command=\"/usr/bin/rsync --server\",restrict {ECDSA256}\n   \n\
             command=\"{BIN} --key alice\",restrict,pty {ED25519}\n"
        );
        let (findings, counts) = run(&text);
        assert_eq!(
            counts,
            Counts {
                keys: 3,
                dromaius_lines: 2
            }
        );
        assert_eq!(
            findings,
            [
                (
                    4,
                    false,
                    "runs \"/usr/bin/rsync\", not dromaius; not checked further".into()
                ),
                (
                    6,
                    true,
                    "the same public key is on line 3; sshd only ever uses the first".into()
                ),
            ]
        );
    }

    #[test]
    fn options_apply_left_to_right_like_sshd() {
        let parse = |text: &str| allowed(&parse_options(text).unwrap());
        assert!(!parse("restrict").pty);
        assert!(parse("restrict,pty").pty);
        assert!(!parse("pty,restrict").pty);
        assert!(parse("no-port-forwarding,port-forwarding").port_forwarding);
        let quoted = parse_options(r#"command="a \"b\" c\d",from="x,y""#).unwrap();
        assert_eq!(quoted[0].1.as_deref(), Some(r#"a "b" c\d"#));
        assert_eq!(quoted[1].1.as_deref(), Some("x,y"));
    }

    #[test]
    fn shell_words_table() {
        let ok: &[(&str, &[&str])] = &[
            (
                "/usr/bin/dromaius --key alice",
                &["/usr/bin/dromaius", "--key", "alice"],
            ),
            ("  a\t b  ", &["a", "b"]),
            ("a 'b c' \"d e\"", &["a", "b c", "d e"]),
            ("a'b'\"c\"", &["abc"]),
            ("a ''", &["a", ""]),
            ("a '$x;y'", &["a", "$x;y"]),
        ];
        for (command, words) in ok {
            let expected: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            assert_eq!(shell_words(command), Ok(expected), "{command}");
        }
        for bad in [
            "a;b", "a|b", "a&b", "a>b", "a<b", "$x", "`x`", "a*", "a?", "~/x", "a#b", "a\\ b",
            "(a)", "{a}", "a\nb", "'a", "\"a", "\"$x\"", "a!b",
        ] {
            assert!(shell_words(bad).is_err(), "{bad:?}");
        }
    }
}
