//! Fuzzes one request line through the parser and the judgement the gateway acts on
//! (`policy::judge_line`): the first input byte picks the key, the session binding and the
//! config; the rest is the line the user sent. Checks the grammar's promises and the
//! decision invariant.

#![no_main]
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::OnceLock;

use dromaius::config::{self, Config};
use dromaius::escape;
use dromaius::policy::{self, Judgement, Subject};
use dromaius::request::{self, MAX_REQUEST_BYTES, Verb};
use libfuzzer_sys::fuzz_target;

#[path = "invariant.rs"]
mod invariant;

const CONFIGS: [&str; 3] = [
    r#"{
      "connect": "qemu:///system",
      "keys": {
        "alice": [
          { "domains": ["alice-*"], "commands": ["start", "shutdown", "reboot", "status", "console"] },
          { "domains": ["shared-db"], "commands": ["status"] },
          { "domains": ["lab-?", "web[0-9]", "x[!a-c]y"], "connect": "test:///default" }
        ],
        "bob": [ { "domains": ["2"], "commands": ["status", "start"] } ],
        "ops": [ { "domains": ["*"] } ],
        "nobody": [],
        "uni": [ { "domains": ["caf\u00e9", "-x", "--force", "a;b", "$(id)", "6695eb01-f6a4-8304-79aa-97f2502e193f"] } ]
      },
      "AllowedHosts": ["vhost1", "alice-web"]
    }"#,
    r#"{"AllowedHosts": ["vhost1"]}"#,
    r#"{"keys": {"alice": [{"domains": ["[a-z]*", "?"], "commands": ["destroy"]},
                         {"domains": ["*-prod"], "connect": "qemu+ssh://h/system"}]}}"#,
];
const KEYS: [&str; 8] = [
    "alice", "bob", "ops", "nobody", "uni", "mallory", "", "ALICE",
];
const BOUND: [Option<&str>; 4] = [None, Some("vhost1"), Some("alice-web"), Some("2")];

fn configs() -> &'static [Config] {
    static PARSED: OnceLock<Vec<Config>> = OnceLock::new();
    PARSED.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|t| config::parse(t, Path::new("fuzz.json")).expect("fixed config"))
            .collect()
    })
}

fn printable(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, line)) = data.split_first() else {
        return;
    };
    let selector = usize::from(selector);
    let key = KEYS[selector % KEYS.len()];
    let bound = BOUND[(selector / KEYS.len()) % BOUND.len()];
    let config = &configs()[(selector / (KEYS.len() * BOUND.len())) % CONFIGS.len()];

    let parsed = request::parse(line);
    // Whatever was sent, what is shown of it is plain ASCII on one line.
    assert!(printable(&escape::escape_bytes(line)));
    let request = match parsed {
        Err(error) => {
            assert!(printable(&error.to_string()), "{error:?}");
            return;
        }
        Ok(None) => {
            assert!(line.iter().all(|b| matches!(b, b' ' | b'\t')));
            return;
        }
        Ok(Some(request)) => request,
    };
    // Only lines of text within the limit parse, and they split exactly on space and tab.
    assert!(line.len() <= MAX_REQUEST_BYTES);
    let text = std::str::from_utf8(line).expect("parsed lines are UTF-8");
    let words: Vec<&str> = text.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    match request.verb {
        Verb::Exit => assert!(words[0] == "exit" || words[0] == "quit"),
        verb => assert_eq!(words[0], verb.name()),
    }
    assert_eq!(request.domain.as_deref(), words.get(1).copied());
    assert!(words.len() <= 2);
    if let Some(domain) = &request.domain {
        assert!(!domain.chars().any(char::is_control));
        assert!(!domain.chars().any(char::is_whitespace));
    }

    let subject = Subject::new(config, key, bound);
    // The channel: what is left of the selector once key, binding and config took theirs.
    let rest = selector / (KEYS.len() * BOUND.len() * CONFIGS.len());
    let channel = policy::Channel {
        stdin_is_terminal: rest & 1 != 0,
        stdout_is_terminal: rest & 2 != 0,
        one_shot: line.len() % 2 == 0,
    };
    let judgement = policy::judge_line(&subject, line, channel).expect("a request is not blank");
    let (action, domain) = match &judgement {
        Judgement::Allowed(allowed) => {
            assert!(!allowed.implied || request.domain.is_none());
            // What the channel cannot carry is refused before anything runs, and only that.
            assert_eq!(allowed.unfit, channel.fits(allowed.action).err());
            (allowed.action, allowed.domain.clone())
        }
        Judgement::Denied {
            verb: Verb::Act(action),
            domain: Some(domain),
            ..
        } => (*action, domain.clone()),
        Judgement::Session(verb) => {
            assert!(!matches!(verb, Verb::Act(_)));
            return;
        }
        Judgement::Denied { .. } | Judgement::Invalid(_) => return,
    };
    invariant::check_decision(config, key, bound, &subject, action, &domain);
    for hypervisor in subject.hypervisors() {
        if subject.may_list(&domain, hypervisor) {
            assert!(dromaius::action::Action::ALL.into_iter().any(|a| matches!(
                subject.decide(a, &domain),
                dromaius::policy::Decision::Allow { hypervisors, .. } if hypervisors.contains(&hypervisor)
            )));
        }
    }
});
