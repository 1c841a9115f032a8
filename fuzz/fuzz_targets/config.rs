//! Fuzzes `dromaius.json` parsing: no input panics or hangs, a refusal points inside the
//! file, the gateway's one-key reading agrees with the whole reading, and whatever config
//! is accepted only ever allows what one of its grants says — checked for every key on
//! every exact name it holds and on words from the input.

#![no_main]
#![forbid(unsafe_code)]

use std::path::Path;

use dromaius::action::Action;
use dromaius::config::{self, Config, DomainPattern};
use dromaius::policy::Subject;
use libfuzzer_sys::fuzz_target;

#[path = "invariant.rs"]
mod invariant;

/// What a reading kept for `key`, with hypervisors as URIs (each reading numbers them in
/// its own way).
fn kept(config: &Config, key: &str) -> Option<Vec<String>> {
    config.keys.get(key).map(|grants| {
        grants
            .iter()
            .map(|g| {
                let domains: Vec<&str> = g.domains.iter().map(DomainPattern::text).collect();
                format!(
                    "{domains:?} {:?} {:?} {}",
                    g.commands,
                    config.uris_of(g),
                    g.line
                )
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.json");
    let whole = config::parse(text, file);
    // The gateway's one-pass reading (kept: one key) takes and refuses exactly what
    // `check`'s grant-by-grant reading does, with the same grants and the same first error.
    for key in text
        .split('"')
        .skip(1)
        .step_by(2)
        .take(4)
        .chain(["not-a-key"])
    {
        match (&whole, config::parse_for_key(text, file, key)) {
            (Ok(all), Ok(one)) => assert_eq!(kept(all, key), kept(&one, key)),
            (Err(all), Err(one)) => assert_eq!(all, &one),
            (all, one) => panic!(
                "the readings disagree for key {key:?}: {} / {}",
                all.is_ok(),
                one.is_ok()
            ),
        }
    }
    let config = match whole {
        Ok(config) => config,
        Err(error) => {
            let lines = text.split('\n').count();
            assert!(
                error.line >= 1 && error.line <= lines,
                "{error:?} for {lines} lines"
            );
            return;
        }
    };
    // Names to ask about: every exact name in the config, and the input's words.
    let mut names: Vec<String> = config
        .keys
        .values()
        .flatten()
        .flat_map(|g| &g.domains)
        .filter_map(|p| match p {
            DomainPattern::Exact(name) => Some(name.clone()),
            DomainPattern::Glob(_) => None,
        })
        .chain(config.allowed_hosts.iter().cloned())
        .collect();
    names.extend(
        text.split(['"', ' ', ',', '[', ']'])
            .take(32)
            .map(str::to_owned),
    );
    names.truncate(64);
    let bounds: Vec<Option<&str>> = std::iter::once(None)
        .chain(
            config
                .allowed_hosts
                .iter()
                .take(2)
                .map(|h| Some(h.as_str())),
        )
        .collect();
    for key in config
        .keys
        .keys()
        .take(8)
        .map(String::as_str)
        .chain(["not-a-key"])
    {
        for bound in &bounds {
            let subject = Subject::new(&config, key, *bound);
            if let Some(implied) = subject.implied_domain() {
                // Leaving the domain out may only ever mean the one exact name granted.
                if bound.is_none() {
                    let grants = &config.keys[key];
                    assert!(
                        grants
                            .iter()
                            .flat_map(|g| &g.domains)
                            .all(|p| matches!(p, DomainPattern::Exact(n) if *n == implied))
                    );
                }
            }
            for name in &names {
                for action in Action::ALL {
                    invariant::check_decision(&config, key, *bound, &subject, action, name);
                }
            }
        }
    }
});
