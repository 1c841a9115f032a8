//! Fuzzes `dromaius.json` parsing: no input panics or hangs, every refusal points inside
//! the file and they come in file order (the gateway's is `check`'s first), and whatever
//! config is accepted only ever allows what one of its grants says — checked for every key
//! on every exact name it holds and on words from the input.

#![no_main]
#![forbid(unsafe_code)]

use std::path::Path;

use dromaius::action::Action;
use dromaius::config::{self, DomainPattern};
use dromaius::policy::Subject;
use libfuzzer_sys::fuzz_target;

#[path = "invariant.rs"]
mod invariant;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.json");
    let config = match config::parse_all(text, file) {
        Ok(config) => config,
        Err(errors) => {
            let lines = text.split('\n').count();
            for error in &errors {
                assert!(
                    error.line >= 1 && error.line <= lines,
                    "{error:?} for {lines} lines"
                );
            }
            assert!(
                errors
                    .windows(2)
                    .all(|pair| (pair[0].line, pair[0].column) <= (pair[1].line, pair[1].column)),
                "refusals out of file order: {errors:?}"
            );
            assert_eq!(config::parse(text, file).err().as_ref(), errors.first());
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
                            .filter(|g| !subject.has_expired(g))
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
