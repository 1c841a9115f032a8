//! The argument vectors dromaius hands virsh: complete, with the domain as its own word
//! after `--domain`, by UUID unless its name can only be read as a name.

use std::ffi::OsString;
use std::path::Path;

use crate::action::Action;
use crate::graphics::Protocol;
use crate::hypervisor::Target;

/// `--connect URI [--readonly]`: the start of every argv.
pub fn connection(connect: &str, read_only: bool) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["--connect".into(), connect.into()];
    if read_only {
        argv.push("--readonly".into());
    }
    argv
}

/// Lists every domain on `connect` as `UUID ID NAME` lines (`-` for the id of an inactive
/// domain).
pub fn listing_argv(connect: &str) -> Vec<OsString> {
    let mut argv = connection(connect, true);
    argv.extend(["list", "--all", "--id", "--uuid", "--name"].map(OsString::from));
    argv
}

/// The state of every domain on `connect`, in one call, for `list`.
pub fn states_argv(connect: &str) -> Vec<OsString> {
    let mut argv = connection(connect, true);
    argv.extend(["domstats", "--state"].map(OsString::from));
    argv
}

/// The keys `ctrl-alt-del` presses, in order (released in reverse), in virsh's default
/// (Linux) key code set.
pub const CTRL_ALT_DEL: [&str; 3] = ["KEY_LEFTCTRL", "KEY_LEFTALT", "KEY_DELETE"];

/// Carries out `action` on the target: by UUID when it has one, by name otherwise.
/// `console` gets `--safe` and never `--force`: forcing would take over another user's
/// session on the console. `display` never asks `--include-password`.
/// (`screenshot` is [`screenshot_argv`]: it needs a file.)
pub fn action_argv(connect: &str, action: Action, target: &Target<'_>) -> Vec<OsString> {
    let mut argv = connection(connect, action.is_read_only());
    argv.push(action.virsh_command().into());
    if action == Action::Console {
        argv.push("--safe".into());
    }
    argv.push("--domain".into());
    argv.push(match &target.uuid {
        Some(uuid) => uuid.as_str().into(),
        None => target.name.into(),
    });
    if action == Action::CtrlAltDel {
        argv.extend(CTRL_ALT_DEL.map(OsString::from));
    }
    argv
}

/// Where the target's graphical display of `protocol` is (`domdisplay --type`), or its
/// first display. Read-only, so never with a password.
pub fn display_argv(
    connect: &str,
    target: &Target<'_>,
    protocol: Option<Protocol>,
) -> Vec<OsString> {
    let mut argv = action_argv(connect, Action::Display, target);
    if let Some(protocol) = protocol {
        argv.extend(["--type", protocol.name()].map(OsString::from));
    }
    argv
}

/// Takes a screenshot of the target into `file` (which virsh creates, or truncates and
/// follows if it is a link: it must be in a directory only we can write).
pub fn screenshot_argv(connect: &str, target: &Target<'_>, file: &Path) -> Vec<OsString> {
    let mut argv = action_argv(connect, Action::Screenshot, target);
    argv.push("--file".into());
    argv.push(file.into());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";
    use crate::hypervisor::Uuid;

    fn words(argv: &[OsString]) -> Vec<&str> {
        argv.iter()
            .map(|a| a.to_str().unwrap_or("<non-utf8>"))
            .collect()
    }

    fn by_uuid(name: &str) -> Target<'_> {
        Target {
            name,
            uuid: Uuid::parse(UUID),
        }
    }

    #[test]
    fn action_argv_is_complete_and_acts_by_uuid() {
        let connect = "qemu:///system";
        let cases: &[(Action, &[&str])] = &[
            (
                Action::Start,
                &["--connect", connect, "start", "--domain", UUID],
            ),
            (
                Action::Shutdown,
                &["--connect", connect, "shutdown", "--domain", UUID],
            ),
            (
                Action::Reboot,
                &["--connect", connect, "reboot", "--domain", UUID],
            ),
            (
                Action::Reset,
                &["--connect", connect, "reset", "--domain", UUID],
            ),
            (
                Action::Destroy,
                &["--connect", connect, "destroy", "--domain", UUID],
            ),
            (
                Action::Status,
                &[
                    "--connect",
                    connect,
                    "--readonly",
                    "domstate",
                    "--domain",
                    UUID,
                ],
            ),
            (
                Action::Console,
                &["--connect", connect, "console", "--safe", "--domain", UUID],
            ),
            (
                Action::Suspend,
                &["--connect", connect, "suspend", "--domain", UUID],
            ),
            (
                Action::Resume,
                &["--connect", connect, "resume", "--domain", UUID],
            ),
            (
                Action::CtrlAltDel,
                &[
                    "--connect",
                    connect,
                    "send-key",
                    "--domain",
                    UUID,
                    "KEY_LEFTCTRL",
                    "KEY_LEFTALT",
                    "KEY_DELETE",
                ],
            ),
            (
                Action::Display,
                &[
                    "--connect",
                    connect,
                    "--readonly",
                    "domdisplay",
                    "--domain",
                    UUID,
                ],
            ),
        ];
        for (action, expected) in cases {
            let argv = action_argv(connect, *action, &by_uuid("2"));
            assert_eq!(words(&argv), *expected);
            // Never one argument (a command script), never --force.
            assert!(argv.len() > 1);
            assert!(!words(&argv).contains(&"--force"));
        }
    }

    #[test]
    fn a_display_is_asked_read_only_of_a_protocol_or_the_first() {
        let target = by_uuid("2");
        let connect = "qemu:///system";
        let head = [
            "--connect",
            connect,
            "--readonly",
            "domdisplay",
            "--domain",
            UUID,
        ];
        assert_eq!(words(&display_argv(connect, &target, None)), head);
        for protocol in [Protocol::Vnc, Protocol::Spice] {
            let argv = display_argv(connect, &target, Some(protocol));
            let mut expected = head.to_vec();
            expected.extend(["--type", protocol.name()]);
            assert_eq!(words(&argv), expected);
            assert!(!words(&argv).contains(&"--include-password"));
        }
    }

    #[test]
    fn a_screenshot_goes_to_the_file_given() {
        assert_eq!(
            words(&screenshot_argv(
                "qemu:///system",
                &by_uuid("2"),
                Path::new("/tmp/dromaius-screenshot-1/screen")
            )),
            [
                "--connect",
                "qemu:///system",
                "screenshot",
                "--domain",
                UUID,
                "--file",
                "/tmp/dromaius-screenshot-1/screen"
            ]
        );
    }

    #[test]
    fn a_name_goes_after_domain_as_its_own_word() {
        let target = Target {
            name: "--force",
            uuid: None,
        };
        assert_eq!(
            words(&action_argv("test:///default", Action::Console, &target)),
            [
                "--connect",
                "test:///default",
                "console",
                "--safe",
                "--domain",
                "--force"
            ]
        );
    }

    #[test]
    fn listing_argv_are_read_only() {
        assert_eq!(
            words(&listing_argv("test:///default")),
            [
                "--connect",
                "test:///default",
                "--readonly",
                "list",
                "--all",
                "--id",
                "--uuid",
                "--name"
            ]
        );
        assert_eq!(
            words(&states_argv("test:///default")),
            [
                "--connect",
                "test:///default",
                "--readonly",
                "domstats",
                "--state"
            ]
        );
    }
}
