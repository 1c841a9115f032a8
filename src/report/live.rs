//! `check --live`: the config read against what the hypervisors hold now.
//!
//! Pure: it is given the config and one bulk listing per hypervisor (or why there is none),
//! and writes the report. Who may act on a domain is asked of `policy`, command by command,
//! exactly as the gateway would ask it: nothing here decides access.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use super::explain::grant_named;
use crate::action::{Action, ActionSet};
use crate::config::{Config, Grant, HypervisorId};
use crate::escape::escape;
use crate::lookup::{self, Reading};
use crate::policy::{Decision, Subject};
use crate::virsh::parse::Listed;

/// What one hypervisor answered: its domains (or virsh's words for why not), and whether
/// it takes a read-write connection, which every action but `status` and `display` needs.
#[derive(Debug, Clone)]
pub struct Answer {
    pub listing: Result<Vec<Listed>, String>,
    pub read_write: Result<(), String>,
}

/// The report, and whether every hypervisor the config uses answered.
#[derive(Debug)]
pub struct Live {
    pub text: String,
    pub all_reachable: bool,
}

/// The hypervisors a live check asks: those a grant (or an `AllowedHosts` session) acts on.
pub fn hypervisors_to_ask(config: &Config) -> Vec<HypervisorId> {
    let bound: &[HypervisorId] = if config.allowed_hosts.is_empty() {
        &[]
    } else {
        &config.connect
    };
    let granted = config
        .keys
        .values()
        .flatten()
        .map(|g| config.hypervisors_of(g));
    let mut ids = Config::each_once(std::iter::once(bound).chain(granted));
    ids.sort();
    ids
}

/// Who may act on one domain: each key (sorted), the commands, and the grant that gives
/// them (`None`: an `AllowedHosts` session).
type Holders = Vec<(String, Vec<(Option<usize>, ActionSet)>)>;

fn holders(subjects: &[Subject<'_>], name: &str, at: HypervisorId) -> Holders {
    let mut holders = Vec::new();
    for subject in subjects {
        let mut by_grant: Vec<(Option<usize>, ActionSet)> = Vec::new();
        for action in Action::ALL {
            if let Decision::Allow { hypervisors, grant } = subject.decide(action, name) {
                if hypervisors.contains(&at) {
                    match by_grant.iter_mut().find(|(g, _)| *g == grant) {
                        Some((_, set)) => set.insert(action),
                        None => by_grant.push((grant, [action].into_iter().collect())),
                    }
                }
            }
        }
        if !by_grant.is_empty() {
            holders.push((subject.key().to_owned(), by_grant));
        }
    }
    holders
}

fn commands(set: ActionSet) -> String {
    set.iter().map(Action::name).collect::<Vec<_>>().join(" ")
}

/// Writes the report of a live check: each hypervisor's answer, each existing domain with
/// who may act on it and what needs a look, the grants that match nothing, and a summary.
pub fn report(config: &Config, answers: &[(HypervisorId, Answer)], now: i64) -> Live {
    let mut report = Report {
        config,
        answers,
        now,
        text: String::new(),
        counts: Counts::default(),
    };
    for (id, answer) in answers {
        report.hypervisor(*id, answer);
    }
    let domains = existing_domains(answers);
    let mut keys: Vec<(&String, &Vec<Grant>)> = config.keys.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    // Judged as of one moment, each key once, for every domain.
    let subjects: Vec<Subject<'_>> = keys
        .iter()
        .map(|(key, _)| Subject::at(config, key, None, now))
        .collect();
    for (name, places) in &domains {
        for (id, listed) in places {
            report.domain(name, *id, listed, &subjects);
        }
        report.defined_twice(name, places);
    }
    // Each grant once, though every key of its group holds it.
    let mut told = HashSet::new();
    for (key, grants) in keys {
        for (index, grant) in grants.iter().enumerate() {
            if told.insert((grant.file, grant.line)) {
                report.idle_grant(key, index, grant);
            }
        }
    }
    report.summary(domains.len());
    Live {
        all_reachable: report.counts.unreachable == 0,
        text: report.text,
    }
}

/// Every existing domain, by name, then in the order the hypervisors were asked.
type Domains<'a> = BTreeMap<&'a str, Vec<(HypervisorId, &'a Listed)>>;

fn existing_domains(answers: &[(HypervisorId, Answer)]) -> Domains<'_> {
    let mut domains: Domains<'_> = BTreeMap::new();
    for (id, answer) in answers {
        for listed in answer.listing.iter().flatten() {
            domains.entry(&listed.name).or_default().push((*id, listed));
        }
    }
    domains
}

/// The report being written, and what its summary line counts.
struct Report<'a> {
    config: &'a Config,
    answers: &'a [(HypervisorId, Answer)],
    now: i64,
    text: String,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    unreachable: usize,
    unowned: usize,
    shared: usize,
    ambiguous: usize,
    twice: usize,
    idle_grants: usize,
}

impl Report<'_> {
    /// A hypervisor as the report names it: its config name and URI, or its label.
    fn label(&self, id: HypervisorId) -> String {
        let at = self.config.hypervisor(id);
        match &at.name {
            Some(name) => format!("{} ({})", escape(name), escape(&at.uri)),
            None => escape(&at.label()),
        }
    }

    /// Whether the hypervisor answered, and takes the read-write connection actions need.
    fn hypervisor(&mut self, id: HypervisorId, answer: &Answer) {
        let label = self.label(id);
        let text = &mut self.text;
        let _ = match (&answer.listing, &answer.read_write) {
            (Ok(domains), read_write) => {
                let _ = write!(
                    text,
                    "hypervisor {label}: reachable, {} domain{}",
                    domains.len(),
                    if domains.len() == 1 { "" } else { "s" }
                );
                match read_write {
                    Ok(()) => writeln!(text),
                    Err(why) => {
                        self.counts.unreachable += 1;
                        writeln!(text, "; but NOT for actions (read-write): {why}")
                    }
                }
            }
            (Err(why), _) => {
                self.counts.unreachable += 1;
                writeln!(text, "hypervisor {label}: NOT reachable: {why}")
            }
        };
    }

    /// One domain on one hypervisor: who may act on it, by which grant, and the warnings
    /// that concern it there (nobody may, more than one key may, virsh misreads its name).
    fn domain(&mut self, name: &str, id: HypervisorId, listed: &Listed, subjects: &[Subject<'_>]) {
        let state = match listed.id {
            Some(n) => format!("active, id {n}"),
            None => "shut off".to_owned(),
        };
        let _ = writeln!(
            self.text,
            "domain {} on {} ({state})",
            escape(name),
            self.label(id)
        );
        let holders = holders(subjects, name, id);
        let config = self.config;
        let bound = config.allowed_hosts.iter().any(|h| h == name) && config.connect.contains(&id);
        if holders.is_empty() && !bound {
            self.counts.unowned += 1;
            let _ = writeln!(self.text, "  no key may act on it");
        }
        for (key, grants) in &holders {
            self.holder(key, grants);
        }
        if bound {
            let _ = writeln!(
                self.text,
                "  AllowedHosts: any key in a -host session bound to it: {}",
                commands(ActionSet::DEFAULT)
            );
        }
        if holders.len() + usize::from(bound) > 1 {
            self.shared(&holders, bound);
        }
        if let Some(reading) = lookup::reading(name) {
            self.ambiguous(name, &reading, id);
        }
    }

    /// One key that may act on a domain: its commands, grant by grant.
    fn holder(&mut self, key: &str, grants: &[(Option<usize>, ActionSet)]) {
        let config = self.config;
        let how: Vec<String> = grants
            .iter()
            .map(|(grant, set)| {
                let by = match grant.and_then(|i| Some((i, config.keys.get(key)?.get(i)?))) {
                    Some((index, grant)) => grant_named(config, index, grant),
                    None => "AllowedHosts".to_owned(),
                };
                format!("{} by {by}", commands(*set))
            })
            .collect();
        let _ = writeln!(self.text, "  key {}: {}", escape(key), how.join("; "));
    }

    /// Warns that more than one key (or `AllowedHosts` sessions) may act on a domain.
    fn shared(&mut self, holders: &Holders, bound: bool) {
        self.counts.shared += 1;
        let mut who: Vec<String> = holders.iter().map(|(k, _)| escape(k)).collect();
        if bound {
            who.push("AllowedHosts sessions".into());
        }
        let _ = writeln!(
            self.text,
            "  ! more than one key may act on it: {}",
            who.join(", ")
        );
    }

    /// Warns that virsh reads a domain's name as an id or a UUID, and what it reaches then.
    fn ambiguous(&mut self, name: &str, reading: &Reading, id: HypervisorId) {
        self.counts.ambiguous += 1;
        let _ = writeln!(
            self.text,
            "  ! virsh reads the name {} as {}; dromaius acts on it by UUID, but \
             people and scripts passing the name to virsh reach {}",
            escape(name),
            reading_text(reading),
            what_it_reaches(name, reading, self.answers, id)
        );
    }

    /// Warns that a name is defined on more than one hypervisor.
    fn defined_twice(&mut self, name: &str, places: &[(HypervisorId, &Listed)]) {
        if places.len() <= 1 {
            return;
        }
        self.counts.twice += 1;
        let on: Vec<String> = places.iter().map(|(id, _)| self.label(*id)).collect();
        let _ = writeln!(
            self.text,
            "  ! {} is defined on {}: a grant on more than one of them acts where it is \
             active, and never starts it while two define it",
            escape(name),
            on.join(" and ")
        );
    }

    /// Says so when a grant has expired or matches no existing domain where it looks.
    fn idle_grant(&mut self, key: &str, index: usize, grant: &Grant) {
        let config = self.config;
        let whose = match &grant.group {
            Some(group) => format!("group {}", escape(group)),
            None => format!("key {}", escape(key)),
        };
        let named = grant_named(config, index, grant);
        if grant
            .expires
            .as_ref()
            .is_some_and(|e| e.has_ended(self.now))
        {
            let _ = writeln!(self.text, "{whose}, {named}: expired, matches nothing");
            return;
        }
        let looked: Vec<&(HypervisorId, Answer)> = self
            .answers
            .iter()
            .filter(|(id, _)| config.hypervisors_of(grant).contains(id))
            .collect();
        let matched = looked.iter().any(|(_, answer)| {
            answer
                .listing
                .iter()
                .flatten()
                .any(|listed| grant.matches_domain(&listed.name))
        });
        if matched {
            return;
        }
        self.counts.idle_grants += 1;
        let silent: Vec<String> = looked
            .iter()
            .filter(|(_, answer)| answer.listing.is_err())
            .map(|(id, _)| self.label(*id))
            .collect();
        let patterns: Vec<String> = grant.domains.iter().map(|p| escape(p.text())).collect();
        let _ = write!(
            self.text,
            "{whose}, {named}: {} matches no existing domain",
            patterns.join(" ")
        );
        let _ = if silent.is_empty() {
            writeln!(self.text)
        } else {
            writeln!(
                self.text,
                " on the hypervisors that answered ({} did not)",
                silent.join(", ")
            )
        };
    }

    /// The last line: every count the warnings above added to.
    fn summary(&mut self, domains: usize) {
        let Counts {
            unreachable,
            unowned,
            shared,
            ambiguous,
            twice,
            idle_grants,
        } = self.counts;
        let answers = self.answers.len();
        let _ = writeln!(
            self.text,
            "summary: {answers} hypervisor{}, {unreachable} unreachable; {domains} domain \
             name{}, {unowned} that no key may act on, {shared} that more than one key may \
             act on, {twice} defined on more than one hypervisor, {ambiguous} that virsh \
             reads as an id or a UUID; {idle_grants} grant{} that match{} no domain",
            if answers == 1 { "" } else { "s" },
            if domains == 1 { "" } else { "s" },
            if idle_grants == 1 { "" } else { "s" },
            if idle_grants == 1 { "es" } else { "" },
        );
    }
}

fn reading_text(reading: &Reading) -> String {
    match reading {
        Reading::Id(id) => format!("the id {id}"),
        Reading::Uuid => "a UUID".to_owned(),
        Reading::UuidWithoutDashes => "a UUID (libvirt's lookup, not virsh's)".to_owned(),
    }
}

/// What virsh reaches on `at` when handed `name` as it is.
fn what_it_reaches(
    name: &str,
    reading: &Reading,
    answers: &[(HypervisorId, Answer)],
    at: HypervisorId,
) -> String {
    let listed: Vec<&Listed> = answers
        .iter()
        .filter(|(id, _)| *id == at)
        .flat_map(|(_, answer)| answer.listing.iter().flatten())
        .collect();
    let found = match reading {
        Reading::Id(id) => listed
            .iter()
            .find(|l| l.id.is_some_and(|n| i64::from(n) == i64::from(*id))),
        // virsh's UUID reading: the hex digits, whatever the dashes and spaces between.
        Reading::Uuid | Reading::UuidWithoutDashes => {
            let digits: String = name
                .chars()
                .filter(char::is_ascii_hexdigit)
                .collect::<String>()
                .to_ascii_lowercase();
            listed
                .iter()
                .find(|l| l.uuid.as_str().replace('-', "") == digits)
        }
    };
    match (reading, found) {
        (_, Some(other)) => format!("the domain {} instead", escape(&other.name)),
        (Reading::Id(_), None) => "whichever domain runs with that id".to_owned(),
        (_, None) => "the domain with that UUID, if one has it".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::Uuid;
    use std::path::Path;

    const NOW: i64 = 1_800_000_000;

    fn config(text: &str) -> Config {
        match crate::config::parse(text, Path::new("d.json")) {
            Ok(config) => config,
            Err(error) => panic!("{error}"),
        }
    }

    fn listed(name: &str, id: Option<u32>, n: u32) -> Listed {
        Listed {
            uuid: Uuid::parse(&format!("00000000-0000-0000-0000-{n:012x}")).expect("uuid"),
            id,
            name: name.into(),
        }
    }

    fn answered(domains: Vec<Listed>) -> Answer {
        Answer {
            listing: Ok(domains),
            read_write: Ok(()),
        }
    }

    #[test]
    fn read_only_is_not_enough_for_actions() {
        let c = config(r#"{"keys": {"k": [{"domains": ["*"]}]}}"#);
        let answers = [(
            c.connect[0],
            Answer {
                listing: Ok(vec![listed("web1", None, 1)]),
                read_write: Err("error: authentication unavailable".into()),
            },
        )];
        let live = report(&c, &answers, NOW);
        assert!(!live.all_reachable);
        assert!(
            live.text.contains(
                "hypervisor qemu:///system: reachable, 1 domain; but NOT for actions \
                 (read-write): error: authentication unavailable\n"
            ),
            "{}",
            live.text
        );
    }

    fn id(config: &Config, name: &str) -> HypervisorId {
        config.hypervisor_id(name).expect("a hypervisor")
    }

    const FLEET: &str = r#"{
      "hypervisors": {"hv1": "test:///one", "hv2": "qemu+ssh://hv2.example/system"},
      "connect": "hv1",
      "groups": {"web": ["alice", "bob"]},
      "keys": {
        "alice": [{"domains": ["web-*"], "commands": ["start", "status"]}],
        "@web": [{"domains": ["web-1"], "commands": ["console"]}],
        "bob": [{"domains": ["2"], "commands": ["status"]},
                {"domains": ["gone-*"]},
                {"domains": ["db"], "connect": ["hv1", "hv2"]},
                {"domains": ["old"], "expires": "2020-01-01"}],
        "carol": [{"domains": ["far"], "connect": "hv2"}]
      }
    }"#;

    #[test]
    fn the_report_says_who_may_act_where_and_flags_what_needs_a_look() {
        let c = config(FLEET);
        let (hv1, hv2) = (
            id(&c, "test:///one"),
            id(&c, "qemu+ssh://hv2.example/system"),
        );
        assert_eq!(hypervisors_to_ask(&c), [hv1, hv2]);
        let answers = [
            (
                hv1,
                answered(vec![
                    listed("web-1", Some(2), 1),
                    listed("2", None, 2),
                    listed("db", Some(5), 3),
                    listed("lonely", None, 4),
                ]),
            ),
            (
                hv2,
                Answer {
                    listing: Err("error: failed to connect to the hypervisor".into()),
                    read_write: Err("error: failed to connect to the hypervisor".into()),
                },
            ),
        ];
        let live = report(&c, &answers, NOW);
        let text = &live.text;
        assert!(!live.all_reachable);
        for line in [
            "hypervisor hv1 (test:///one): reachable, 4 domains\n",
            "hypervisor hv2 (qemu+ssh://hv2.example/system): NOT reachable: error: failed to \
             connect to the hypervisor\n",
            "domain web-1 on hv1 (test:///one) (active, id 2)\n\
             \x20 key alice: start status by grant #1 (d.json:6); console by grant #2 \
             (d.json:7, group web)\n\
             \x20 key bob: console by grant #1 (d.json:7, group web)\n\
             \x20 ! more than one key may act on it: alice, bob\n",
            "domain 2 on hv1 (test:///one) (shut off)\n\
             \x20 key bob: status by grant #2 (d.json:8)\n\
             \x20 ! virsh reads the name 2 as the id 2; dromaius acts on it by UUID, but \
             people and scripts passing the name to virsh reach the domain web-1 instead\n",
            "domain lonely on hv1 (test:///one) (shut off)\n  no key may act on it\n",
            "key bob, grant #3 (d.json:9): gone-* matches no existing domain\n",
            "key bob, grant #5 (d.json:11): expired, matches nothing\n",
            "key carol, grant #1 (d.json:12): far matches no existing domain on the \
             hypervisors that answered (hv2 (qemu+ssh://hv2.example/system) did not)\n",
            "summary: 2 hypervisors, 1 unreachable; 4 domain names, 1 that no key may act on, \
             1 that more than one key may act on, 0 defined on more than one hypervisor, 1 \
             that virsh reads as an id or a UUID; 2 grants that match no domain\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        // A group's grant is reported once, not once per member.
        assert_eq!(
            text.matches("grant #2 (d.json:7, group web)").count(),
            1,
            "{text}"
        );
        assert!(!text.contains("group web, grant"), "{text}");
    }

    #[test]
    fn a_domain_on_two_hypervisors_and_allowed_hosts_are_flagged() {
        let c = config(
            r#"{"hypervisors": {"a": "test:///a", "b": "test:///b"}, "connect": "a",
                "AllowedHosts": ["vhost1"],
                "keys": {"ops": [{"domains": ["*"], "connect": ["a", "b"]}]}}"#,
        );
        let (a, b) = (id(&c, "test:///a"), id(&c, "test:///b"));
        let answers = [
            (
                a,
                answered(vec![listed("db", Some(1), 1), listed("vhost1", None, 2)]),
            ),
            (b, answered(vec![listed("db", None, 3)])),
        ];
        let live = report(&c, &answers, NOW);
        assert!(live.all_reachable);
        let text = &live.text;
        assert!(
            text.contains(
                "  ! db is defined on a (test:///a) and b (test:///b): a grant on more than one \
                 of them acts where it is active, and never starts it while two define it\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "domain vhost1 on a (test:///a) (shut off)\n\
                 \x20 key ops: start shutdown reboot reset destroy console status by grant #1 \
                 (d.json:3)\n\
                 \x20 AllowedHosts: any key in a -host session bound to it: start shutdown \
                 reboot reset destroy console status\n\
                 \x20 ! more than one key may act on it: ops, AllowedHosts sessions\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn hostile_names_are_escaped_and_a_uuid_name_names_its_victim() {
        let c = config(r#"{"keys": {"k": [{"domains": ["*"]}]}}"#);
        let at = c.connect[0];
        let victim = listed("victim", Some(1), 7);
        let uuid_name = victim.uuid.as_str().to_owned();
        let answers = [(
            at,
            answered(vec![
                victim,
                listed(&uuid_name, None, 8),
                listed("evil\u{1b}[2J\nname", None, 9),
            ]),
        )];
        let text = report(&c, &answers, NOW).text;
        assert!(text.contains("evil\\x1b[2J\\x0aname"), "{text}");
        assert!(
            text.contains(
                "as a UUID; dromaius acts on it by UUID, but people and scripts passing \
                           the name to virsh reach the domain victim instead"
            ),
            "{text}"
        );
        assert!(
            text.bytes()
                .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
            "{text}"
        );
    }
}
