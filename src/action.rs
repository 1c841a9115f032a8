//! The seven things a grant can allow a key to do to a domain, and how each maps to virsh.
//!
//! This is the vocabulary shared by the config (which commands a grant names), the request
//! parser (which word the user typed) and the virsh argv builder. Session words that act on
//! no single domain (`list`, `help`, `exit`, `quit`) are not actions; they live in `request`.

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
}

impl Action {
    /// Every action, in the order `help` shows them.
    pub const ALL: [Action; 7] = [
        Action::Start,
        Action::Shutdown,
        Action::Reboot,
        Action::Reset,
        Action::Destroy,
        Action::Console,
        Action::Status,
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
        }
    }

    pub fn from_word(word: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.name() == word)
    }

    /// The virsh command that carries this action out.
    pub fn virsh_command(self) -> &'static str {
        match self {
            Action::Status => "domstate",
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
        }
    }

    /// Whether virsh may be left running for as long as the user wants (`timeout_secs`
    /// does not apply) and needs the user's terminal.
    pub fn is_interactive(self) -> bool {
        self == Action::Console
    }

    /// Whether the action only reads state, so that virsh can connect read-only.
    pub fn is_read_only(self) -> bool {
        self == Action::Status
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of actions, as a grant's `commands` or the union of a key's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    pub const ALL: ActionSet = ActionSet(0b111_1111);
    /// What a grant without `commands` allows: the seven original actions. Actions added
    /// later are granted only by name, so that an upgrade never widens an existing grant.
    pub const DEFAULT: ActionSet = ActionSet(0b111_1111);
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
        }
        for word in [
            "", "START", "Start", "domstate", "list", "start ", "--start", "define",
        ] {
            assert_eq!(Action::from_word(word), None, "{word:?}");
        }
    }

    #[test]
    fn status_runs_domstate_and_is_the_only_read_only_action() {
        assert_eq!(Action::Status.virsh_command(), "domstate");
        let read_only: Vec<_> = Action::ALL
            .into_iter()
            .filter(|a| a.is_read_only())
            .collect();
        assert_eq!(read_only, [Action::Status]);
    }

    #[test]
    fn action_set_holds_exactly_what_was_inserted() {
        let set: ActionSet = [Action::Start, Action::Console].into_iter().collect();
        assert!(set.contains(Action::Start) && set.contains(Action::Console));
        assert!(!set.contains(Action::Destroy));
        assert_eq!(set.iter().count(), 2);
        assert_eq!(ActionSet::ALL.iter().count(), 7);
        assert!(ActionSet::EMPTY.is_empty());
    }
}
