//! The things a grant can allow a key to do to one domain, and what each needs.
//!
//! This is the vocabulary shared by the config (which commands a grant names), the request
//! parser (which word the user typed) and the virsh argv builder. Session words that act on
//! no single domain (`list`, `help`, `exit`, `quit`) are not actions; they live in `request`.
//!
//! A grant without `commands` allows the seven original actions ([`ActionSet::DEFAULT`]);
//! every action added since is granted only by name, so that an upgrade never widens what an
//! existing config allows.

use serde::Deserialize;

/// A command that acts on exactly one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Shutdown,
    Reboot,
    Reset,
    Destroy,
    Console,
    Status,
    Suspend,
    Resume,
    #[serde(rename = "ctrl-alt-del")]
    CtrlAltDel,
    Screenshot,
    Display,
}

/// What an action needs of the SSH channel it was asked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: its output is text.
    Nothing,
    /// The user's terminal on stdin (`ssh -t`): the serial console.
    Terminal,
    /// A stdout that is not a terminal: binary output (an image) for a file or a pipe.
    FileOrPipe,
    /// The whole channel to itself, neither end a terminal: a one-shot request at
    /// `ssh -T`, whose stdin and stdout carry another protocol (VNC).
    RawChannel,
}

impl Action {
    /// Every action, in the order `help` shows them.
    pub const ALL: [Action; 12] = [
        Action::Start,
        Action::Shutdown,
        Action::Reboot,
        Action::Reset,
        Action::Destroy,
        Action::Console,
        Action::Status,
        Action::Suspend,
        Action::Resume,
        Action::CtrlAltDel,
        Action::Screenshot,
        Action::Display,
    ];

    /// The word a user types and a config names.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Shutdown => "shutdown",
            Action::Reboot => "reboot",
            Action::Reset => "reset",
            Action::Destroy => "destroy",
            Action::Console => "console",
            Action::Status => "status",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::CtrlAltDel => "ctrl-alt-del",
            Action::Screenshot => "screenshot",
            Action::Display => "display",
        }
    }

    pub fn from_word(word: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.name() == word)
    }

    /// The virsh command that carries this action out.
    pub fn virsh_command(self) -> &'static str {
        match self {
            Action::Status => "domstate",
            Action::CtrlAltDel => "send-key",
            Action::Display => "domdisplay",
            other => other.name(),
        }
    }

    /// One line for `help`.
    pub fn summary(self) -> &'static str {
        match self {
            Action::Start => "boot the domain",
            Action::Shutdown => "ask the guest to power off (ACPI)",
            Action::Reboot => "ask the guest to reboot (ACPI)",
            Action::Reset => "hard reset, like the reset button",
            Action::Destroy => "hard power off",
            Action::Console => "attach to the serial console (needs ssh -t; Ctrl+] leaves)",
            Action::Status => "print the domain's state",
            Action::Suspend => "pause the guest's CPUs",
            Action::Resume => "let a paused guest run again",
            Action::CtrlAltDel => "press Ctrl+Alt+Del on the guest's keyboard",
            Action::Screenshot => "the guest's screen as a PNG on stdout (ssh ... > shot.png)",
            Action::Display => "relay the graphical console (VNC) over ssh -T, for a viewer",
        }
    }

    /// What the action needs of the channel; refused up front when it is not so.
    pub fn needs(self) -> Needs {
        match self {
            Action::Console => Needs::Terminal,
            Action::Screenshot => Needs::FileOrPipe,
            Action::Display => Needs::RawChannel,
            _ => Needs::Nothing,
        }
    }

    /// Whether it lasts as long as the user stays (`timeout_secs` does not apply) and is
    /// watched while it lasts, so that revocation ends it.
    pub fn is_attachment(self) -> bool {
        matches!(self, Action::Console | Action::Display)
    }

    /// Whether the action only reads, so that virsh connects read-only. `display` is one:
    /// a read-only connection cannot be given a VNC password, so none is ever printed.
    pub fn is_read_only(self) -> bool {
        matches!(self, Action::Status | Action::Display)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of actions, as a grant's `commands` or the union of a key's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActionSet(u16);

impl ActionSet {
    pub const ALL: ActionSet = ActionSet((1 << Action::ALL.len()) - 1);
    /// What a grant without `commands` allows, and what an `AllowedHosts` session may do:
    /// the seven original actions, start to status.
    pub const DEFAULT: ActionSet = ActionSet((1 << (Action::Status as u16 + 1)) - 1);
    pub const EMPTY: ActionSet = ActionSet(0);

    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    pub fn insert(&mut self, action: Action) {
        self.0 |= action.bit();
    }

    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self == ActionSet::EMPTY
    }

    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        let mut set = ActionSet::EMPTY;
        for action in iter {
            set.insert(action);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_nothing_else_parses() {
        for action in Action::ALL {
            assert_eq!(Action::from_word(action.name()), Some(action));
            let json = format!("\"{}\"", action.name());
            assert_eq!(serde_json::from_str::<Action>(&json).ok(), Some(action));
        }
        for word in [
            "",
            "START",
            "Start",
            "domstate",
            "list",
            "start ",
            "--start",
            "define",
            "send-key",
            "ctrlaltdel",
            "ctrl_alt_del",
            "Ctrl-Alt-Del",
            "domdisplay",
            "vnc",
            "screenshot ",
            "pause",
            "unpause",
        ] {
            assert_eq!(Action::from_word(word), None, "{word:?}");
        }
    }

    #[test]
    fn each_action_runs_its_virsh_command_and_needs_what_it_needs() {
        use Action::*;
        let table: &[(Action, &str, Needs, bool, bool)] = &[
            // action, virsh command, needs, attachment, read-only
            (Start, "start", Needs::Nothing, false, false),
            (Shutdown, "shutdown", Needs::Nothing, false, false),
            (Reboot, "reboot", Needs::Nothing, false, false),
            (Reset, "reset", Needs::Nothing, false, false),
            (Destroy, "destroy", Needs::Nothing, false, false),
            (Console, "console", Needs::Terminal, true, false),
            (Status, "domstate", Needs::Nothing, false, true),
            (Suspend, "suspend", Needs::Nothing, false, false),
            (Resume, "resume", Needs::Nothing, false, false),
            (CtrlAltDel, "send-key", Needs::Nothing, false, false),
            (Screenshot, "screenshot", Needs::FileOrPipe, false, false),
            (Display, "domdisplay", Needs::RawChannel, true, true),
        ];
        assert_eq!(table.len(), Action::ALL.len());
        for &(action, command, needs, attachment, read_only) in table {
            assert_eq!(action.virsh_command(), command, "{action:?}");
            assert_eq!(action.needs(), needs, "{action:?}");
            assert_eq!(action.is_attachment(), attachment, "{action:?}");
            assert_eq!(action.is_read_only(), read_only, "{action:?}");
        }
    }

    #[test]
    fn the_default_set_is_the_seven_original_actions() {
        let default: Vec<&str> = ActionSet::DEFAULT.iter().map(Action::name).collect();
        assert_eq!(
            default,
            [
                "start", "shutdown", "reboot", "reset", "destroy", "console", "status"
            ]
        );
        for added in ["suspend", "resume", "ctrl-alt-del", "screenshot", "display"] {
            let action = Action::from_word(added).expect("an action");
            assert!(!ActionSet::DEFAULT.contains(action), "{added}");
            assert!(ActionSet::ALL.contains(action), "{added}");
        }
    }

    #[test]
    fn action_set_holds_exactly_what_was_inserted() {
        let set: ActionSet = [Action::Start, Action::Console, Action::Display]
            .into_iter()
            .collect();
        assert!(set.contains(Action::Start) && set.contains(Action::Console));
        assert!(set.contains(Action::Display));
        assert!(!set.contains(Action::Destroy) && !set.contains(Action::Screenshot));
        assert_eq!(set.iter().count(), 3);
        assert_eq!(ActionSet::ALL.iter().count(), Action::ALL.len());
        assert!(ActionSet::EMPTY.is_empty());
    }
}
