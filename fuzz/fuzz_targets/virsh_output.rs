//! Fuzzes the readers of what virsh prints (`virsh::parse`): `parse_listing` (`virsh list
//! --all --id --uuid --name`), `parse_states` (`virsh domstats --state`) and `fault` (a
//! failed run's stderr). Byte 0 picks the domain the run was about (none, a name, a name
//! given to virsh as its UUID); the rest is virsh's output. Checks that nothing panics,
//! that no parsed name holds a line break and each is what its line said, and that every
//! word of a fault is terminal-safe: printable ASCII, newlines and tabs, no blank line.

#![no_main]
#![forbid(unsafe_code)]

use dromaius::hypervisor::{Fault, Target, Uuid};
use dromaius::virsh::parse::{fault, parse_listing, parse_states};
use libfuzzer_sys::fuzz_target;

const UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";
const STATES: [&str; 9] = [
    "no state",
    "running",
    "idle",
    "paused",
    "in shutdown",
    "shut off",
    "crashed",
    "pmsuspended",
    "unknown",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, output)) = data.split_first() else {
        return;
    };
    let output = String::from_utf8_lossy(output);
    let lines: Vec<&str> = output.split('\n').collect();

    for listed in parse_listing(&output) {
        assert!(!listed.name.contains('\n'), "{listed:?}");
        assert_eq!(
            Uuid::parse(listed.uuid.as_str()).as_ref(),
            Some(&listed.uuid)
        );
        assert!(
            lines.iter().any(|line| line
                .strip_suffix(listed.name.as_str())
                .is_some_and(|head| head.ends_with(' ')
                    && head.to_ascii_lowercase().starts_with(listed.uuid.as_str()))),
            "{listed:?} is on no line of {output:?}"
        );
    }

    for (name, state) in parse_states(&output) {
        assert!(!name.contains('\n'), "{name:?}");
        assert!(
            output.contains(&format!("Domain: '{name}'")),
            "{name:?} not in {output:?}"
        );
        assert!(STATES.contains(&state), "{state:?}");
    }

    let target = match selector % 3 {
        0 => None,
        1 => Some(Target {
            name: "web1",
            uuid: None,
        }),
        _ => Some(Target {
            name: "web1",
            uuid: Uuid::parse(UUID),
        }),
    };
    let status = "exit status: 1";
    let words = match fault(&output, status, target.as_ref()) {
        Fault::Unreachable(words) => {
            assert!(output.contains("failed to connect to the hypervisor"));
            words
        }
        Fault::ConsoleBusy(words) => {
            assert!(output.contains("Active console session exists"));
            words
        }
        Fault::NotFound => {
            assert!(target.is_some(), "no domain was named: {output:?}");
            return;
        }
        Fault::Failed { words, status: s } => {
            assert_eq!(s, status);
            words
        }
        other => panic!("virsh's words read as {other:?}"),
    };
    assert!(
        words
            .bytes()
            .all(|b| b.is_ascii_graphic() || b" \t\n".contains(&b)),
        "{words:?}"
    );
    assert!(
        words.split('\n').all(|line| !line.trim().is_empty()) || words.is_empty(),
        "{words:?}"
    );
});
