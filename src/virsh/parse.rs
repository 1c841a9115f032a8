//! What virsh prints, read into facts: the listing of every domain, every domain's state,
//! and a failed run's words as a [`Fault`] (unreachable, console in use, no such domain).
//! virsh's output is a daemon's words about names users chose: a name that would break a
//! line is dropped, not guessed at, and every word shown to a user is made terminal-safe.

use crate::escape::terminal_safe;
use crate::hypervisor::{Fault, Target, Uuid};

/// One line of [`listing_argv`]'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub uuid: Uuid,
    /// The id of an active domain (`None`: shut off).
    pub id: Option<u32>,
    pub name: String,
}

impl Listed {
    /// Running, paused, ...: anything but shut off.
    pub fn is_active(&self) -> bool {
        self.id.is_some()
    }
}

/// Parses `virsh list --all --id --uuid --name`. A name holding a newline would spill onto
/// a line of its own; such a domain is dropped rather than guessed at.
pub fn parse_listing(stdout: &str) -> Vec<Listed> {
    let mut domains: Vec<Listed> = Vec::new();
    let mut last_was_spilled = false;
    for line in stdout.split('\n') {
        let parsed = line.split_once(' ').and_then(|(uuid, rest)| {
            let (id, name) = rest.split_once(' ')?;
            let id = match id {
                "-" => None,
                digits if digits.bytes().all(|b| b.is_ascii_digit()) => Some(digits.parse().ok()?),
                _ => return None,
            };
            Some(Listed {
                uuid: Uuid::parse(uuid)?,
                id,
                name: name.to_owned(),
            })
        });
        match parsed {
            Some(entry) => {
                domains.push(entry);
                last_was_spilled = false;
            }
            None if line.is_empty() => {}
            None => {
                if !last_was_spilled {
                    domains.pop();
                }
                last_was_spilled = true;
            }
        }
    }
    domains
}

/// Parses `virsh domstats --state` into (name, state) pairs, with states worded as
/// `virsh domstate` words them.
pub fn parse_states(stdout: &str) -> Vec<(String, &'static str)> {
    let mut states = Vec::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if let Some(name) = line
            .strip_prefix("Domain: '")
            .and_then(|rest| rest.strip_suffix('\''))
        {
            current = Some(name.to_owned());
        } else if let Some(code) = line.trim_start().strip_prefix("state.state=") {
            if let Some(name) = current.take() {
                states.push((name, state_word(code)));
            }
        }
    }
    states
}

/// virDomainState as `virsh domstate` prints it.
fn state_word(code: &str) -> &'static str {
    match code.trim() {
        "0" => "no state",
        "1" => "running",
        "2" => "idle",
        "3" => "paused",
        "4" => "in shutdown",
        "5" => "shut off",
        "6" => "crashed",
        "7" => "pmsuspended",
        _ => "unknown",
    }
}

/// virsh's output, safe for a terminal, with the UUID it was given shown as the name the
/// user knows.
pub fn as_the_user_knows_it(text: &str, target: &Target<'_>) -> String {
    match &target.uuid {
        Some(uuid) => terminal_safe(&text.replace(uuid.as_str(), target.name)),
        None => terminal_safe(text),
    }
}

/// Reads a failed run's stderr (`status`: how it ended, for when it said nothing).
pub fn fault(stderr: &str, status: &str, target: Option<&Target<'_>>) -> Fault {
    let shown = match target {
        Some(target) => as_the_user_knows_it(stderr, target),
        None => terminal_safe(stderr),
    };
    let words: Vec<&str> = shown.lines().filter(|line| !is_noise(line)).collect();
    let words = words.join("\n");
    if stderr.contains("failed to connect to the hypervisor") {
        Fault::Unreachable(words)
    } else if stderr.contains("Active console session exists") {
        Fault::ConsoleBusy(words)
    } else if target.is_some_and(|t| names_missing(stderr, t)) {
        Fault::NotFound
    } else {
        Fault::Failed {
            words,
            status: status.to_owned(),
        }
    }
}

/// Whether virsh says it found no domain for what it was given (`error: failed to get
/// domain 'X'`, with X the name or UUID it was given, then perhaps libvirt's own "Domain not
/// found" line). Any other error line (access denied, say) is not "no such domain".
fn names_missing(stderr: &str, target: &Target<'_>) -> bool {
    let given = target.uuid.as_ref().map_or(target.name, Uuid::as_str);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    errors.first() == Some(&format!("error: failed to get domain '{given}'").as_str())
        && errors[1..]
            .iter()
            .all(|line| line.starts_with("error: Domain not found"))
}

/// Lines of virsh output that say nothing to the user.
fn is_noise(line: &str) -> bool {
    line.trim().is_empty() || line.starts_with("Authorization not available")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";

    fn by_uuid(name: &str) -> Target<'_> {
        Target {
            name,
            uuid: Uuid::parse(UUID),
        }
    }

    fn find<'a>(listing: &'a [Listed], name: &str) -> Option<(&'a str, bool)> {
        listing
            .iter()
            .find(|d| d.name == name)
            .map(|d| (d.uuid.as_str(), d.is_active()))
    }

    #[test]
    fn listing_parses_names_as_they_are() {
        let out = "6695eb01-f6a4-8304-79aa-97f2502e193f 1 test\n\
                   1c26ef96-2259-4182-8a59-ac38b2b550c3 - -x\n\
                   a6f77d46-b31d-487e-b696-50ffa06dc1cb 12 1\n\
                   b6f77d46-b31d-487e-b696-50ffa06dc1cb -  with space\n\n";
        let listing = parse_listing(out);
        assert_eq!(listing.len(), 4);
        assert_eq!(
            find(&listing, "1"),
            Some(("a6f77d46-b31d-487e-b696-50ffa06dc1cb", true))
        );
        assert_eq!(
            find(&listing, "-x"),
            Some(("1c26ef96-2259-4182-8a59-ac38b2b550c3", false))
        );
        assert_eq!(
            find(&listing, " with space"),
            Some(("b6f77d46-b31d-487e-b696-50ffa06dc1cb", false))
        );
        assert_eq!(find(&listing, "2"), None);
        assert_eq!(find(&listing, "6695eb01-f6a4-8304-79aa-97f2502e193f"), None);
        assert_eq!(find(&listing, "Test"), None);
        assert_eq!(
            parse_listing("6695eb01-f6a4-8304-79aa-97f2502e193f x1 test\n"),
            []
        );
    }

    #[test]
    fn a_name_spilling_over_lines_is_dropped_not_guessed() {
        // A domain named "a\nb" must not be taken for a domain named "a".
        let out = "6695eb01-f6a4-8304-79aa-97f2502e193f - a\nb\n\
                   1c26ef96-2259-4182-8a59-ac38b2b550c3 3 c\n";
        let listing = parse_listing(out);
        assert_eq!(find(&listing, "a"), None);
        assert!(find(&listing, "c").is_some());
        assert_eq!(listing.len(), 1);
    }

    #[test]
    fn states_parse_from_domstats() {
        let out = "Domain: '-x'\n  state.state=5\n  state.reason=0\n\n\
                   Domain: 'test'\n  state.state=1\n  state.reason=0\n\n\
                   Domain: 'it's'\n  state.state=3\n  state.reason=0\n\n";
        assert_eq!(
            parse_states(out),
            [
                ("-x".to_owned(), "shut off"),
                ("test".to_owned(), "running"),
                ("it's".to_owned(), "paused")
            ]
        );
    }

    #[test]
    fn virsh_words_are_read_into_faults() {
        let target = by_uuid("web1");
        let cases = [
            (
                "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/x': No such file or directory\n",
                Fault::Unreachable(
                    "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/x': No such file or directory".into(),
                ),
            ),
            (
                "Authorization not available. Check if polkit service is running\nerror: operation failed: Active console session exists for this domain\n",
                Fault::ConsoleBusy(
                    "error: operation failed: Active console session exists for this domain".into(),
                ),
            ),
            (
                "error: Domain '6695eb01-f6a4-8304-79aa-97f2502e193f' is already active\n",
                Fault::Failed {
                    words: "error: Domain 'web1' is already active".into(),
                    status: "exit status: 1".into(),
                },
            ),
            (
                "error: \x1b]0;x\x07\n\n",
                Fault::Failed {
                    words: "error: \\x1b]0;x\\x07".into(),
                    status: "exit status: 1".into(),
                },
            ),
            (
                "",
                Fault::Failed {
                    words: String::new(),
                    status: "exit status: 1".into(),
                },
            ),
            (
                "error: failed to get domain '6695eb01-f6a4-8304-79aa-97f2502e193f'\n",
                Fault::NotFound,
            ),
            (
                "error: failed to get domain '6695eb01-f6a4-8304-79aa-97f2502e193f'\nerror: Domain not found: no domain with matching uuid '6695eb01-f6a4-8304-79aa-97f2502e193f'\n",
                Fault::NotFound,
            ),
            (
                "error: failed to get domain '6695eb01-f6a4-8304-79aa-97f2502e193f'\nerror: access denied: x\n",
                Fault::Failed {
                    words: "error: failed to get domain 'web1'\nerror: access denied: x".into(),
                    status: "exit status: 1".into(),
                },
            ),
            (
                "error: failed to get domain 'web1'\n",
                Fault::Failed {
                    words: "error: failed to get domain 'web1'".into(),
                    status: "exit status: 1".into(),
                },
            ),
        ];
        for (stderr, expected) in cases {
            assert_eq!(
                fault(stderr, "exit status: 1", Some(&target)),
                expected,
                "{stderr:?}"
            );
        }
    }
}
