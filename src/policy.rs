//! Who may do what to which domain: pure decisions over a loaded config.
//!
//! The policy answers with values ([`Judgement`], [`Decision`]), never with side effects: it
//! does not print, exit, log or run virsh. The rule is the contract's: the first grant of the
//! key (in file order) that matches both the domain and the command decides, and its
//! `connect` is where the domain is looked up. A go-dromaius session bound to `-host` may
//! touch that one domain only, with every command if `AllowedHosts` lists it. [`judge`] is
//! the whole judgement of one request, the one the gateway acts on and `explain` words.

use crate::action::{Action, ActionSet, Needs};
use crate::config::{Config, DomainPattern, Grant, Hypervisor, HypervisorId};
use crate::request::{self, ParseError, Request, Verb};

/// The SSH channel the requests come on: whether its ends are terminals, and whether it
/// carries one request only. What an action needs of it is `Action::needs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub stdin_is_terminal: bool,
    pub stdout_is_terminal: bool,
    pub one_shot: bool,
}

/// What the channel lacks for an action: what the action needs, and whether it was asked at
/// the prompt (or in a piped session) rather than as a request of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unfit {
    pub needs: Needs,
    pub at_prompt: bool,
}

impl Channel {
    /// Whether this channel can carry `action`; decided before anything runs.
    pub fn fits(self, action: Action) -> Result<(), Unfit> {
        let fits = match action.needs() {
            Needs::Nothing => true,
            Needs::Terminal => self.stdin_is_terminal,
            Needs::FileOrPipe => !self.stdout_is_terminal,
            Needs::RawChannel => {
                self.one_shot && !self.stdin_is_terminal && !self.stdout_is_terminal
            }
        };
        if fits {
            return Ok(());
        }
        Err(Unfit {
            needs: action.needs(),
            at_prompt: !self.one_shot,
        })
    }
}

/// Whether a domain's graphical console on `at` may be relayed: only from a hypervisor on
/// this host, whose 127.0.0.1 is ours (see `Hypervisor::is_local`).
pub fn relays_display_from(at: &Hypervisor) -> bool {
    at.is_local()
}

/// What the gateway does with one request, decided before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement<'c> {
    /// `list`, `help` or `exit`: a word of the session itself, always allowed for a key the
    /// config names (and `exit` for anyone). They show only what the key may use.
    Session(Verb),
    /// An action on one domain, and what allowed it.
    Allowed(Allowed<'c>),
    /// Not allowed. The user is told "permission denied" whatever the reason.
    Denied {
        verb: Verb,
        domain: Option<String>,
        reason: DenyReason,
    },
    /// The line is not a request (or an action names no domain and none is implied).
    Invalid(ParseError),
}

/// An allowed action: on which domain, by which grant, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed<'c> {
    pub action: Action,
    pub domain: String,
    /// The user named no domain: it is the key's only one, or the session's bound `-host`.
    pub implied: bool,
    /// Which of the key's grants allowed it (0-based); `None` for `AllowedHosts`.
    pub grant: Option<usize>,
    /// Where the domain is looked up and acted on.
    pub hypervisors: &'c [HypervisorId],
    /// What the channel lacks for it, if anything: then it is refused before anything runs.
    pub unfit: Option<Unfit>,
}

/// Judges one line as the user sent it, on `channel`. `None` for a blank line, which asks
/// for nothing.
pub fn judge_line<'c>(
    subject: &Subject<'c>,
    line: &[u8],
    channel: Channel,
) -> Option<Judgement<'c>> {
    match request::parse(line) {
        Ok(None) => None,
        Ok(Some(request)) => Some(judge(subject, &request, channel)),
        Err(error) => Some(Judgement::Invalid(error)),
    }
}

/// Judges a parsed request for `subject`, on `channel`.
pub fn judge<'c>(subject: &Subject<'c>, request: &Request, channel: Channel) -> Judgement<'c> {
    let verb = request.verb;
    if verb == Verb::Exit {
        return Judgement::Session(verb);
    }
    if !subject.is_known() {
        return Judgement::Denied {
            verb,
            domain: request.domain.clone(),
            reason: DenyReason::UnknownKey,
        };
    }
    let Verb::Act(action) = verb else {
        return Judgement::Session(verb);
    };
    let (domain, implied) = match (&request.domain, subject.implied_domain()) {
        (Some(domain), _) => (domain.clone(), false),
        (None, Some(implied)) => (implied, true),
        (None, None) => return Judgement::Invalid(ParseError::MissingDomain(action)),
    };
    match subject.decide(action, &domain) {
        Decision::Allow { hypervisors, grant } => Judgement::Allowed(Allowed {
            action,
            domain,
            implied,
            grant,
            hypervisors,
            unfit: channel.fits(action).err(),
        }),
        Decision::Deny(reason) => Judgement::Denied {
            verb,
            domain: Some(domain),
            reason,
        },
    }
}

impl DomainPattern {
    /// Whether `domain` is this name, or matches this pattern as bash would.
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Exact(name) => name == domain,
            DomainPattern::Glob(pattern) => pattern.matches(domain),
        }
    }
}

impl Grant {
    pub fn matches_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|pattern| pattern.matches(domain))
    }
}

/// The identity a request is judged as: a key name (from `--key` or the Unix user) and,
/// for a go-dromaius `-host` session, the domain the session is bound to.
#[derive(Debug, Clone)]
pub struct Subject<'c> {
    config: &'c Config,
    key: String,
    grants: Option<&'c [Grant]>,
    /// What time it is (Unix seconds): a grant whose `expires` has come matches nothing.
    now: i64,
    bound: Option<String>,
    bound_host_allowed: bool,
}

/// Why a request was denied. Only `explain` and the audit log see this; the user always
/// gets the same "permission denied", so a denial tells them nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The config names no such key (and no `AllowedHosts` binding applies).
    UnknownKey,
    /// A bound session named a domain other than its own.
    OutsideBoundDomain,
    /// No grant of the key matches both the domain and the command.
    NoMatchingGrant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'c> {
    Allow {
        /// Where the domain is looked up and acted on.
        hypervisors: &'c [HypervisorId],
        /// Which of the key's grants allowed it (0-based); `None` for `AllowedHosts`.
        grant: Option<usize>,
    },
    Deny(DenyReason),
}

impl<'c> Subject<'c> {
    /// The subject as of now.
    pub fn new(config: &'c Config, key: &str, bound: Option<&str>) -> Subject<'c> {
        Subject::at(config, key, bound, crate::expiry::now())
    }

    /// The subject at `now` (Unix seconds).
    pub fn at(config: &'c Config, key: &str, bound: Option<&str>, now: i64) -> Subject<'c> {
        let bound_host_allowed =
            bound.is_some_and(|host| config.allowed_hosts.iter().any(|h| h == host));
        Subject {
            config,
            key: key.to_owned(),
            grants: config.keys.get(key).map(Vec::as_slice),
            now,
            bound: bound.map(str::to_owned),
            bound_host_allowed,
        }
    }

    /// The key's grants that have not expired, each with its place in the key's list.
    fn live(&self) -> impl Iterator<Item = (usize, &'c Grant)> + '_ {
        self.grants
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(move |(_, grant)| !self.has_expired(grant))
    }

    /// Whether `grant` has come to its end.
    pub fn has_expired(&self, grant: &Grant) -> bool {
        grant
            .expires
            .as_ref()
            .is_some_and(|e| e.has_ended(self.now))
    }

    /// What time the subject is judged at.
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The go-dromaius `-host` the session is bound to, if any.
    pub fn bound(&self) -> Option<&str> {
        self.bound.as_deref()
    }

    /// Whether this subject may make any request at all. A key the config does not name
    /// is refused everything (77), unless it is in a session bound to an `AllowedHosts` domain.
    pub fn is_known(&self) -> bool {
        self.grants.is_some() || self.bound_host_allowed
    }

    /// May this subject run `action` on the domain named `domain`?
    pub fn decide(&self, action: Action, domain: &str) -> Decision<'c> {
        if let Some(bound) = &self.bound {
            if domain != bound {
                return Decision::Deny(DenyReason::OutsideBoundDomain);
            }
            if self.bound_host_allowed && ActionSet::DEFAULT.contains(action) {
                return Decision::Allow {
                    hypervisors: &self.config.connect,
                    grant: None,
                };
            }
        }
        if self.grants.is_none() {
            return Decision::Deny(if self.bound_host_allowed {
                DenyReason::NoMatchingGrant
            } else {
                DenyReason::UnknownKey
            });
        }
        self.live()
            .find(|(_, g)| g.commands.contains(action) && g.matches_domain(domain))
            .map_or(
                Decision::Deny(DenyReason::NoMatchingGrant),
                |(index, grant)| Decision::Allow {
                    hypervisors: self.config.hypervisors_of(grant),
                    grant: Some(index),
                },
            )
    }

    /// The domain a request means when the user names none: the bound `-host`, or the
    /// key's only domain when it is granted exactly one name and no pattern.
    pub fn implied_domain(&self) -> Option<String> {
        if let Some(bound) = &self.bound {
            return Some(bound.clone());
        }
        self.sole_exact_domain().map(str::to_owned)
    }

    fn sole_exact_domain(&self) -> Option<&'c str> {
        let mut only: Option<&'c str> = None;
        for pattern in self.live().flat_map(|(_, g)| &g.domains) {
            match pattern {
                DomainPattern::Glob(_) => return None,
                DomainPattern::Exact(name) => match only {
                    Some(seen) if seen != name => return None,
                    _ => only = Some(name),
                },
            }
        }
        only
    }

    /// The commands this subject can use on at least one domain (for `help` and completion).
    pub fn usable_actions(&self) -> ActionSet {
        if !self.is_known() {
            return ActionSet::EMPTY;
        }
        let mut set = if self.bound_host_allowed {
            ActionSet::DEFAULT
        } else {
            ActionSet::EMPTY
        };
        for (_, grant) in self.live() {
            // In a bound session only grants that can match the bound domain count.
            if self
                .bound
                .as_deref()
                .is_none_or(|b| grant.matches_domain(b))
            {
                set = set.union(grant.commands);
            }
        }
        set
    }

    /// Whether `list` shows the domain `name` found on `hypervisor`: some command on it is
    /// allowed, and the grant that allows it looks the domain up there.
    pub fn may_list(&self, name: &str, hypervisor: HypervisorId) -> bool {
        self.may_use_on(name, hypervisor, ActionSet::ALL)
    }

    /// Whether some action of `actions` on `name` is allowed by a grant that looks the
    /// domain up on `hypervisor` (completion asks this for one action).
    pub fn may_use_on(&self, name: &str, hypervisor: HypervisorId, actions: ActionSet) -> bool {
        actions.iter().any(|action| {
            matches!(self.decide(action, name),
                Decision::Allow { hypervisors, .. } if hypervisors.contains(&hypervisor))
        })
    }

    /// Every hypervisor a `list` has to look at, each once, in file order.
    pub fn hypervisors(&self) -> Vec<HypervisorId> {
        let bound: &[HypervisorId] = if self.bound_host_allowed {
            &self.config.connect
        } else {
            &[]
        };
        let granted = self
            .live()
            .map(|(_, grant)| self.config.hypervisors_of(grant));
        Config::each_once(std::iter::once(bound).chain(granted))
    }

    /// The config the subject is judged by.
    pub fn config(&self) -> &'c Config {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        match crate::config::parse(text, Path::new("t.json")) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    const CONFIG: &str = r#"{
      "connect": "qemu:///system",
      "keys": {
        "alice": [
          { "domains": ["alice-*"], "commands": ["start", "shutdown", "reboot", "status", "console"] },
          { "domains": ["shared-db"], "commands": ["status"] },
          { "domains": ["lab-?"], "connect": "test:///default" }
        ],
        "bob": [ { "domains": ["2"], "commands": ["status", "start"] } ],
        "ops": [ { "domains": ["*"] } ],
        "carol": [ { "domains": ["carol-*"], "commands": ["display", "ctrl-alt-del"] } ],
        "nobody": []
      },
      "AllowedHosts": ["vhost1.example.local"]
    }"#;

    /// A decision with its hypervisors as URIs, to compare with a table.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Allow(Vec<String>, Option<usize>),
        Deny(DenyReason),
    }

    fn seen(config: &Config, decision: Decision<'_>) -> Seen {
        match decision {
            Decision::Allow { hypervisors, grant } => Seen::Allow(uris(config, hypervisors), grant),
            Decision::Deny(reason) => Seen::Deny(reason),
        }
    }

    fn uris(config: &Config, ids: &[HypervisorId]) -> Vec<String> {
        ids.iter()
            .map(|id| config.hypervisor(*id).uri.clone())
            .collect()
    }

    fn allowed(connect: &str, grant: Option<usize>) -> Seen {
        Seen::Allow(vec![connect.to_owned()], grant)
    }

    fn id(config: &Config, uri: &str) -> HypervisorId {
        match config.hypervisor_id(uri) {
            Some(id) => id,
            None => panic!("no hypervisor {uri}"),
        }
    }

    #[test]
    fn decision_table() {
        use Action::*;
        let c = config(CONFIG);
        let deny = Seen::Deny(DenyReason::NoMatchingGrant);
        let unknown = Seen::Deny(DenyReason::UnknownKey);
        let cases: &[(&str, Action, &str, Seen)] = &[
            (
                "alice",
                Start,
                "alice-web",
                allowed("qemu:///system", Some(0)),
            ),
            (
                "alice",
                Console,
                "alice-web",
                allowed("qemu:///system", Some(0)),
            ),
            ("alice", Destroy, "alice-web", deny.clone()),
            ("alice", Reset, "alice-web", deny.clone()),
            (
                "alice",
                Status,
                "shared-db",
                allowed("qemu:///system", Some(1)),
            ),
            ("alice", Start, "shared-db", deny.clone()),
            (
                "alice",
                Destroy,
                "lab-1",
                allowed("test:///default", Some(2)),
            ),
            ("alice", Destroy, "lab-12", deny.clone()),
            ("alice", Start, "alice", deny.clone()),
            ("alice", Start, "Alice-web", deny.clone()),
            ("alice", Start, "bob-web", deny.clone()),
            ("alice", Start, "xalice-web", deny.clone()),
            ("alice", Start, "*", deny.clone()),
            (
                "alice",
                Start,
                "alice-*",
                allowed("qemu:///system", Some(0)),
            ),
            ("alice", Start, "\u{0430}lice-web", deny.clone()),
            ("bob", Status, "2", allowed("qemu:///system", Some(0))),
            ("bob", Status, "02", deny.clone()),
            ("bob", Status, "+2", deny.clone()),
            ("bob", Status, " 2", deny.clone()),
            ("bob", Destroy, "2", deny.clone()),
            (
                "ops",
                Destroy,
                "anything",
                allowed("qemu:///system", Some(0)),
            ),
            // Commands added after the first seven are granted only by name.
            ("ops", Suspend, "anything", deny.clone()),
            ("ops", Display, "anything", deny.clone()),
            ("ops", Screenshot, "anything", deny.clone()),
            ("ops", CtrlAltDel, "anything", deny.clone()),
            ("ops", Resume, "anything", deny.clone()),
            (
                "carol",
                Display,
                "carol-1",
                allowed("qemu:///system", Some(0)),
            ),
            (
                "carol",
                CtrlAltDel,
                "carol-1",
                allowed("qemu:///system", Some(0)),
            ),
            ("carol", Screenshot, "carol-1", deny.clone()),
            ("carol", Start, "carol-1", deny.clone()),
            ("nobody", Status, "x", deny.clone()),
            ("mallory", Status, "alice-web", unknown.clone()),
            ("", Status, "alice-web", unknown.clone()),
            ("ALICE", Status, "alice-web", unknown.clone()),
        ];
        for (key, action, domain, expected) in cases {
            let subject = Subject::new(&c, key, None);
            assert_eq!(
                &seen(&c, subject.decide(*action, domain)),
                expected,
                "{key} {action:?} {domain}"
            );
        }
    }

    #[test]
    fn globs_and_exact_names() {
        let names =
            config(r#"{"keys": {"k": [{"domains": ["web[0-9]", "db?", "2", "-x", "a*"]}]}}"#);
        let grant = &names.keys["k"][0];
        for yes in ["web1", "db1", "2", "-x", "a", "abc"] {
            assert!(grant.matches_domain(yes), "{yes}");
        }
        for no in ["web", "web10", "db", "db12", "02", "+2", "x", "Abc", "-X"] {
            assert!(!grant.matches_domain(no), "{no}");
        }
        // `**` is `*`, as in a shell: accepted anywhere, and never "zero path components".
        let stars_config = config(
            r#"{"keys": {"k": [{"domains": ["web**"]}, {"domains": ["**/x"]}, {"domains": ["**"]}]}}"#,
        );
        let [stars, slash, all] = &stars_config.keys["k"][..] else {
            panic!()
        };
        for (grant, yes, no) in [
            (stars, &["web", "web1", "web*"][..], &["we", "xweb"][..]),
            (slash, &["a/x", "/x"], &["x", "ax"]),
            (all, &["", "anything", "a/b"], &[]),
        ] {
            for name in yes {
                assert!(grant.matches_domain(name), "{name}");
            }
            for name in no {
                assert!(!grant.matches_domain(name), "{name}");
            }
        }
    }

    #[test]
    fn the_first_matching_grant_decides_including_its_connect() {
        let c = config(
            r#"{"keys": {"k": [
                {"domains": ["web1"], "commands": ["status"], "connect": "test:///one"},
                {"domains": ["web*"], "connect": "test:///two"}
            ]}}"#,
        );
        let k = Subject::new(&c, "k", None);
        assert_eq!(
            seen(&c, k.decide(Action::Status, "web1")),
            allowed("test:///one", Some(0))
        );
        assert_eq!(
            seen(&c, k.decide(Action::Start, "web1")),
            allowed("test:///two", Some(1))
        );
        assert!(k.may_list("web1", id(&c, "test:///one")));
        assert!(k.may_list("web1", id(&c, "test:///two")));
        assert!(!k.may_list("web1", id(&c, "qemu:///system")));
        assert_eq!(uris(&c, &k.hypervisors()), ["test:///one", "test:///two"]);
    }

    #[test]
    fn bound_sessions_reach_their_domain_only() {
        let c = config(CONFIG);
        let legacy = Subject::new(&c, "www-data", Some("vhost1.example.local"));
        assert!(legacy.is_known());
        for action in Action::ALL {
            // AllowedHosts means the seven original commands; those added later are not
            // granted by it.
            let expected = if ActionSet::DEFAULT.contains(action) {
                allowed("qemu:///system", None)
            } else {
                Seen::Deny(DenyReason::NoMatchingGrant)
            };
            assert_eq!(
                seen(&c, legacy.decide(action, "vhost1.example.local")),
                expected
            );
            assert_eq!(
                seen(&c, legacy.decide(action, "alice-web")),
                Seen::Deny(DenyReason::OutsideBoundDomain)
            );
        }
        assert_eq!(legacy.usable_actions(), ActionSet::DEFAULT);
        assert_eq!(
            legacy.implied_domain().as_deref(),
            Some("vhost1.example.local")
        );

        let not_listed = Subject::new(&c, "www-data", Some("vhost2"));
        assert!(!not_listed.is_known());
        assert_eq!(
            seen(&c, not_listed.decide(Action::Start, "vhost2")),
            Seen::Deny(DenyReason::UnknownKey)
        );

        // A key bound to one of its own domains keeps its own grants for it, and nothing else.
        let alice = Subject::new(&c, "alice", Some("alice-web"));
        assert_eq!(
            seen(&c, alice.decide(Action::Start, "alice-web")),
            allowed("qemu:///system", Some(0))
        );
        assert_eq!(
            seen(&c, alice.decide(Action::Destroy, "alice-web")),
            Seen::Deny(DenyReason::NoMatchingGrant)
        );
        assert_eq!(
            seen(&c, alice.decide(Action::Status, "shared-db")),
            Seen::Deny(DenyReason::OutsideBoundDomain)
        );
        assert!(!alice.usable_actions().contains(Action::Destroy));
    }

    #[test]
    fn default_domain_only_for_a_single_exact_name() {
        let c = config(CONFIG);
        assert_eq!(
            Subject::new(&c, "bob", None).implied_domain().as_deref(),
            Some("2")
        );
        assert_eq!(Subject::new(&c, "alice", None).implied_domain(), None);
        assert_eq!(Subject::new(&c, "ops", None).implied_domain(), None);
        assert_eq!(Subject::new(&c, "nobody", None).implied_domain(), None);
        assert_eq!(Subject::new(&c, "mallory", None).implied_domain(), None);
        let twice = config(
            r#"{"keys": {"k": [{"domains": ["a"]}, {"domains": ["a"], "commands": ["status"]}]}}"#,
        );
        assert_eq!(
            Subject::new(&twice, "k", None).implied_domain().as_deref(),
            Some("a")
        );
        let two = config(r#"{"keys": {"k": [{"domains": ["a", "b"]}]}}"#);
        assert_eq!(Subject::new(&two, "k", None).implied_domain(), None);
    }

    #[test]
    fn usable_actions_are_the_union_of_grants() {
        let c = config(CONFIG);
        let alice = Subject::new(&c, "alice", None).usable_actions();
        assert_eq!(alice, ActionSet::DEFAULT);
        let bob = Subject::new(&c, "bob", None).usable_actions();
        assert_eq!(
            bob.iter().collect::<Vec<_>>(),
            [Action::Start, Action::Status]
        );
        assert!(
            Subject::new(&c, "mallory", None)
                .usable_actions()
                .is_empty()
        );
        assert!(Subject::new(&c, "nobody", None).usable_actions().is_empty());
    }

    #[test]
    fn list_shows_only_what_some_grant_allows_on_that_uri() {
        let c = config(CONFIG);
        let alice = Subject::new(&c, "alice", None);
        let system = id(&c, "qemu:///system");
        let test = id(&c, "test:///default");
        assert!(alice.may_list("alice-web", system));
        assert!(alice.may_list("shared-db", system));
        assert!(alice.may_list("lab-1", test));
        assert!(!alice.may_list("lab-1", system));
        assert!(!alice.may_list("alice-web", test));
        assert!(!alice.may_list("bob-web", system));
        assert_eq!(
            uris(&c, &alice.hypervisors()),
            ["qemu:///system", "test:///default"]
        );
        assert!(!Subject::new(&c, "mallory", None).may_list("alice-web", system));
    }

    /// Property tests: random configs and requests, every decision compared with an
    /// independent model of the rule (its own glob matcher over the pattern's tokens).
    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One token of a domain pattern, as the model understands it.
        #[derive(Debug, Clone)]
        enum Token {
            Literal(char),
            AnyOne,
            AnyRun,
            Class {
                negated: bool,
                ranges: Vec<(char, char)>,
            },
        }

        fn render(tokens: &[Token]) -> String {
            let mut text = String::new();
            for token in tokens {
                match token {
                    Token::Literal(c) => text.push(*c),
                    Token::AnyOne => text.push('?'),
                    Token::AnyRun => text.push('*'),
                    Token::Class { negated, ranges } => {
                        text.push('[');
                        if *negated {
                            text.push('!');
                        }
                        for (low, high) in ranges {
                            text.push(*low);
                            if low != high {
                                text.push('-');
                                text.push(*high);
                            }
                        }
                        text.push(']');
                    }
                }
            }
            text
        }

        /// The model: a plain backtracking matcher over tokens.
        fn model_matches(tokens: &[Token], name: &[char]) -> bool {
            match tokens.split_first() {
                None => name.is_empty(),
                Some((Token::AnyRun, rest)) => {
                    (0..=name.len()).any(|skip| model_matches(rest, &name[skip..]))
                }
                Some((token, rest)) => {
                    let Some((c, name_rest)) = name.split_first() else {
                        return false;
                    };
                    let one = match token {
                        Token::Literal(l) => l == c,
                        Token::AnyOne => true,
                        Token::Class { negated, ranges } => {
                            ranges.iter().any(|(l, h)| l <= c && c <= h) != *negated
                        }
                        Token::AnyRun => unreachable!(),
                    };
                    one && model_matches(rest, name_rest)
                }
            }
        }

        fn token() -> impl Strategy<Value = Token> {
            let literal = prop::sample::select(vec!['a', 'b', '1', '-', '.']);
            let bound = prop::sample::select(vec!['a', 'b', 'c', '1']);
            prop_oneof![
                4 => literal.prop_map(Token::Literal),
                1 => Just(Token::AnyOne),
                1 => Just(Token::AnyRun),
                1 => (any::<bool>(), prop::collection::vec((bound.clone(), bound), 1..3))
                    .prop_map(|(negated, pairs)| Token::Class {
                        negated,
                        ranges: pairs
                            .into_iter()
                            .map(|(a, b)| if a <= b { (a, b) } else { (b, a) })
                            .collect(),
                    }),
            ]
        }

        /// A grant: patterns (as tokens), a non-empty set of commands (as bits), and
        /// whether it has a `connect` of its own.
        type ModelGrant = (Vec<Vec<Token>>, u16, bool);

        fn grant() -> impl Strategy<Value = ModelGrant> {
            (
                prop::collection::vec(prop::collection::vec(token(), 1..5), 1..4),
                1u16..(1 << Action::ALL.len()),
                any::<bool>(),
            )
        }

        /// Names a user might send: the patterns' alphabet plus the glob characters.
        fn name() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop::sample::select(vec!['a', 'b', 'c', '1', '-', '.', '*', '?', '[', ']', '!']),
                1..6,
            )
            .prop_map(|chars| chars.into_iter().collect())
        }

        fn actions(bits: u16) -> Vec<Action> {
            Action::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, a)| a)
                .collect()
        }

        /// The config text for `keys` (key name -> grants), with a second URI on some grants.
        fn config_text(keys: &[(String, Vec<ModelGrant>)], hosts: &[String]) -> String {
            let mut keys_json = serde_json::Map::new();
            for (key, grants) in keys {
                let grants: Vec<serde_json::Value> = grants
                    .iter()
                    .map(|(patterns, bits, own_uri)| {
                        let mut grant = serde_json::json!({
                            "domains": patterns.iter().map(|p| render(p)).collect::<Vec<_>>(),
                            "commands": actions(*bits).iter().map(|a| a.name()).collect::<Vec<_>>(),
                        });
                        if *own_uri {
                            grant["connect"] = "test:///other".into();
                        }
                        grant
                    })
                    .collect();
                keys_json.insert(key.clone(), grants.into());
            }
            serde_json::json!({ "connect": "test:///top", "keys": keys_json, "AllowedHosts": hosts })
                .to_string()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// A decision never allows a domain that no grant of the key matches, always
            /// names the first grant that matches, and denies exactly when none does.
            #[test]
            fn a_decision_is_exactly_the_first_matching_grant(
                keys in prop::collection::vec(prop::collection::vec(grant(), 0..4), 1..3),
                asked_key in 0usize..4,
                names in prop::collection::vec(name(), 1..8),
            ) {
                let keys: Vec<(String, Vec<_>)> = keys
                    .into_iter()
                    .enumerate()
                    .map(|(i, grants)| (format!("k{i}"), grants))
                    .collect();
                let text = config_text(&keys, &[]);
                let config = crate::config::parse(&text, Path::new("prop.json"))
                    .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                let key = format!("k{asked_key}");
                let grants = keys.iter().find(|(k, _)| *k == key).map(|(_, g)| g.as_slice());
                let subject = Subject::new(&config, &key, None);
                for name in &names {
                    let chars: Vec<char> = name.chars().collect();
                    for action in Action::ALL {
                        let expected = grants.map(|grants| {
                            grants.iter().position(|(patterns, bits, _)| {
                                actions(*bits).contains(&action)
                                    && patterns.iter().any(|p| model_matches(p, &chars))
                            })
                        });
                        let decision = subject.decide(action, name);
                        match (expected, decision) {
                            (None, Decision::Deny(DenyReason::UnknownKey)) => {}
                            (Some(None), Decision::Deny(DenyReason::NoMatchingGrant)) => {}
                            (Some(Some(index)), Decision::Allow { hypervisors, grant }) => {
                                prop_assert_eq!(grant, Some(index));
                                let own = keys.iter().find(|(k, _)| *k == key).unwrap().1[index].2;
                                let want = if own { "test:///other" } else { "test:///top" };
                                prop_assert_eq!(uris(&config, hypervisors), [want]);
                            }
                            (expected, decision) => prop_assert!(
                                false,
                                "{key} {action:?} {name:?}: model {expected:?}, policy {decision:?} in {text}"
                            ),
                        }
                    }
                }
            }

            /// A session bound to a domain reaches that domain only, whatever the grants.
            #[test]
            fn a_bound_session_never_reaches_another_domain(
                grants in prop::collection::vec(grant(), 0..4),
                bound in name(),
                listed in any::<bool>(),
                names in prop::collection::vec(name(), 1..8),
            ) {
                let hosts = if listed { vec![bound.clone()] } else { vec![] };
                let text = config_text(&[("k0".into(), grants)], &hosts);
                let config = crate::config::parse(&text, Path::new("prop.json"))
                    .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                for key in ["k0", "stranger"] {
                    let subject = Subject::new(&config, key, Some(&bound));
                    for name in names.iter().filter(|n| **n != bound) {
                        for action in Action::ALL {
                            prop_assert_eq!(
                                subject.decide(action, name),
                                Decision::Deny(DenyReason::OutsideBoundDomain)
                            );
                        }
                    }
                    if listed {
                        // AllowedHosts gives the seven original commands; any other is
                        // the key's own grants' to give.
                        for action in ActionSet::DEFAULT.iter() {
                            let decision = subject.decide(action, &bound);
                            let by_hosts = matches!(decision, Decision::Allow { grant: None, .. });
                            prop_assert!(by_hosts, "{key} {action:?}: {decision:?}");
                        }
                    }
                }
            }
        }
    }
}
