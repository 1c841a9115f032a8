//! The reading of configs, case by case.

use super::*;
use crate::action::Action;
use crate::action::ActionSet;
use crate::config::{DomainPattern, parse, parse_all};
use std::path::Path;
use std::time::Duration;

fn parse_ok(text: &str) -> Config {
    match parse(text, Path::new("t.json")) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text, Path::new("t.json")) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    }
}

const EXAMPLE: &str = r#"{
  "virsh": "/usr/bin/virsh",
  "connect": "qemu:///system",
  "timeout_secs": 60,
  "syslog_socket": "/dev/log",
  "keys": {
"alice": [
  { "domains": ["alice-*"], "commands": ["start", "shutdown", "reboot", "status", "console"] },
  { "domains": ["shared-db"], "commands": ["status"] }
],
"ops": [ { "domains": ["*"] } ]
  }
}"#;

#[test]
fn grant_lines_counted_in_one_pass_match_counting_from_the_top() {
    let mut text = String::from("{\"keys\": {\n");
    for k in 0..200 {
        let sep = if k % 3 == 0 { "\n\n  " } else { " " };
        text.push_str(&format!(
            "\"k{k}\": [{sep}{{\"domains\": [\"a{k}\"]}},{sep}{{\"domains\": [\"b{k}\"]}}],\n"
        ));
    }
    text.push_str("\"last\": []\n}}\n");
    let config = parse_ok(&text);
    for k in 0..200 {
        for (i, name) in [format!("a{k}"), format!("b{k}")].iter().enumerate() {
            let needle = format!("{{\"domains\": [\"{name}\"]}}");
            let offset = text.find(&needle).unwrap();
            let naive = text[..offset].matches('\n').count() + 1;
            assert_eq!(config.keys[&format!("k{k}")][i].line, naive, "{name}");
        }
    }
}

#[test]
fn the_contract_example_parses_with_positions() {
    let config = parse_ok(EXAMPLE);
    assert_eq!(config.virsh, Path::new("/usr/bin/virsh"));
    assert_eq!(config.timeout, Duration::from_secs(60));
    let alice = &config.keys["alice"];
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0].line, 8);
    assert_eq!(alice[1].line, 9);
    assert!(alice[0].commands.contains(Action::Console));
    assert!(!alice[0].commands.contains(Action::Destroy));
    assert_eq!(config.keys["ops"][0].commands, ActionSet::DEFAULT);
    assert_eq!(config.keys["ops"][0].line, 11);
}

#[test]
fn defaults_apply() {
    let config = parse_ok(r#"{"keys": {}}"#);
    assert_eq!(config.virsh, Path::new(DEFAULT_VIRSH));
    assert_eq!(
        config.uris_of(&Grant {
            domains: Vec::new(),
            commands: ActionSet::DEFAULT,
            connect: None,
            expires: None,
            group: None,
            file: 0,
            line: 0,
        }),
        [DEFAULT_CONNECT]
    );
    assert_eq!(config.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
    assert_eq!(config.syslog_socket, Path::new(DEFAULT_SYSLOG_SOCKET));
}

#[test]
fn a_go_dromaius_file_is_a_complete_config() {
    let config = parse_ok(r#"{"AllowedHosts": ["vhost1.example.local", "vhost2"]}"#);
    assert_eq!(config.allowed_hosts, ["vhost1.example.local", "vhost2"]);
    assert!(config.keys.is_empty());
}

#[test]
fn a_grant_can_have_its_own_connect() {
    let config = parse_ok(
        r#"{"connect": "qemu:///system", "keys": {"k": [{"domains": ["a"], "connect": "test:///default"}, {"domains": ["b"]}]}}"#,
    );
    let grants = &config.keys["k"];
    assert_eq!(config.uris_of(&grants[0]), ["test:///default"]);
    assert_eq!(config.uris_of(&grants[1]), ["qemu:///system"]);
}

#[test]
fn hypervisors_are_named_listed_and_resolved() {
    let text = r#"{
  "connect": ["hv1", "test:///default"],
  "hypervisors": {
"hv1": "qemu+ssh://dromaius@hv1.example/system?keyfile=/k",
"hv2": "qemu+tls://hv2.example/system"
  },
  "keys": {
"a": [
  { "domains": ["x"] },
  { "domains": ["y"], "connect": "hv2" },
  { "domains": ["z"], "connect": ["hv2", "hv1", "qemu+tls://hv3/system"] },
  { "domains": ["w"], "connect": "qemu+ssh://dromaius@hv1.example/system?keyfile=/k" }
]
  }
}"#;
    let config = parse_ok(text);
    let labels = |grant: &Grant| -> Vec<String> {
        config
            .hypervisors_of(grant)
            .iter()
            .map(|id| config.hypervisor(*id).label())
            .collect()
    };
    let grants = &config.keys["a"];
    assert_eq!(labels(&grants[0]), ["hv1", "test:///default"]);
    assert_eq!(labels(&grants[1]), ["hv2"]);
    assert_eq!(labels(&grants[2]), ["hv2", "hv1", "qemu+tls://hv3/system"]);
    // The named hypervisor's URI is that hypervisor.
    assert_eq!(labels(&grants[3]), ["hv1"]);
    assert!(config.is_fleet());
    // Another key's grant that names an unknown hypervisor refuses the config, for
    // every reading, with its line.
    let bad = text.replace(r#""connect": "hv2" }"#, r#""connect": "hv7" }"#);
    let error = parse_err(&bad);
    assert_eq!(error.line, 10, "{error}");
    assert!(
        error.reason.contains("unknown hypervisor \"hv7\""),
        "{error}"
    );
    let error = parse_err(&bad.replace("\"a\": [", "\"b\": ["));
    assert_eq!(error.line, 10, "{error}");
}

#[test]
fn refusals_name_line_and_reason() {
    // (config text, expected line, a fragment of the reason)
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "must be a JSON object"),
        ("   \n", 2, "must be a JSON object"),
        ("{", 1, "EOF"),
        ("[]", 1, "must be a JSON object"),
        (
            "[null, null, null, null, {\"k\": []}, null]",
            1,
            "must be a JSON object",
        ),
        (
            "{\"keys\": {\"a\": [[[\"x\"]]]}}",
            1,
            "grant must be a JSON object",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": null}]}}",
            1,
            "invalid type",
        ),
        ("{}", 1, "needs `keys`"),
        ("{\"keys\": {}, \"extra\": 1}", 1, "unknown field `extra`"),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"comands\": []}]}}",
            1,
            "unknown field `comands`",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": []}]}}",
            1,
            "at least one domain",
        ),
        ("{\"keys\": {\"a\": [{}]}}", 1, "missing field `domains`"),
        (
            "{\"keys\": {\"a\": [{\"domains\": \"x\"}]}}",
            1,
            "invalid type",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"\"]}]}}",
            1,
            "must not be empty",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x[\"]}]}}",
            1,
            "has no `]` closing a non-empty set",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"web-[[=a=]]\"]}]}}",
            1,
            "equivalence classes",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"web-[[:digits:]]\"]}]}}",
            1,
            "unknown character class",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"web+(1|2)\"]}]}}",
            1,
            "extended globs",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"web\\\\\"]}]}}",
            1,
            "escapes nothing",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x\\n\"]}]}}",
            1,
            "control character",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": [\"define\"]}]}}",
            1,
            "unknown variant `define`",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": [\"Start\"]}]}}",
            1,
            "unknown variant `Start`",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": []}]}}",
            1,
            "must not be empty",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": \"hv1\"}]}}",
            1,
            "unknown hypervisor \"hv1\"",
        ),
        (
            "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": \"h v\"}]}}",
            1,
            "neither a libvirt URI",
        ),
        (
            "{\"hypervisors\": {\"hv1\": \"qemu:///system\"}, \"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": []}]}}",
            1,
            "at least one hypervisor",
        ),
        (
            "{\"hypervisors\": {\"hv1\": \"qemu:///system\"}, \"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": [\"hv1\", \"hv1\"]}]}}",
            1,
            "names \"hv1\" twice",
        ),
        (
            "{\"hypervisors\": {\"hv1\": \"qemu:///system\"}, \"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": [\"hv1\", \"qemu:///system\"]}]}}",
            1,
            "twice (by its name and its URI)",
        ),
        (
            "{\"hypervisors\": {\"hv1\": \"qemu:///system\", \"hv1\": \"test:///default\"}, \"keys\": {}}",
            1,
            "hypervisor \"hv1\" is named twice",
        ),
        (
            "{\"hypervisors\": {\"hv1\": \"qemu:///system\", \"hv2\": \"qemu:///system\"}, \"keys\": {}}",
            1,
            "have the same URI",
        ),
        (
            "{\"hypervisors\": {\"hv:1\": \"qemu:///system\"}, \"keys\": {}}",
            1,
            "holds a `:`",
        ),
        (
            "{\"hypervisors\": {\"hv1\": \"system\"}, \"keys\": {}}",
            1,
            "not a libvirt URI",
        ),
        ("{\"hypervisors\": [], \"keys\": {}}", 1, "invalid type"),
        (
            "{\"connect\": \"hv9\", \"keys\": {}}",
            1,
            "unknown hypervisor \"hv9\"",
        ),
        (
            "{\"connect\": [], \"keys\": {}}",
            1,
            "at least one hypervisor",
        ),
        ("{\"connect\": null, \"keys\": {}}", 1, "invalid type"),
        ("{\"connect\": 5, \"keys\": {}}", 1, "invalid type"),
        ("{\"virsh\": \"virsh\", \"keys\": {}}", 1, "absolute path"),
        ("{\"virsh\": \"./virsh\", \"keys\": {}}", 1, "absolute path"),
        (
            "{\"syslog_socket\": \"dev/log\", \"keys\": {}}",
            1,
            "absolute path",
        ),
        ("{\"connect\": \"\", \"keys\": {}}", 1, "libvirt URI"),
        (
            "{\"connect\": \"qemu:///system --readonly\", \"keys\": {}}",
            1,
            "not a libvirt URI",
        ),
        ("{\"timeout_secs\": 0, \"keys\": {}}", 1, "between 1"),
        ("{\"timeout_secs\": -1, \"keys\": {}}", 1, "invalid value"),
        (
            "{\"timeout_secs\": \"60\", \"keys\": {}}",
            1,
            "invalid type",
        ),
        ("{\"keys\": {\"a\": [], \"a\": []}}", 1, "named twice"),
        ("{\"keys\": {\"\": []}}", 1, "must not be empty"),
        ("{\"keys\": {\"a\": null}}", 1, "invalid type"),
        ("{\"keys\": null}", 1, "invalid type"),
        ("{\"virsh\": null, \"keys\": {}}", 1, "invalid type"),
        ("{\"AllowedHosts\": null}", 1, "invalid type"),
        ("{\"AllowedHosts\": \"vhost1\"}", 1, "invalid type"),
        ("{\"AllowedHosts\": [\"\"]}", 1, "not a domain name"),
        ("{\"allowedhosts\": []}", 1, "unknown field"),
        ("{\"keys\": {}} trailing", 1, "trailing characters"),
        ("{\"keys\": {}, \"keys\": {}}", 1, "duplicate field"),
    ];
    for (text, line, reason) in cases {
        let error = parse_err(text);
        assert_eq!(error.line, *line, "{text}: {error}");
        assert!(error.reason.contains(reason), "{text}: {error}");
        assert!(error.to_string().starts_with("t.json:"), "{error}");
    }
}

#[test]
fn an_error_deep_in_a_grant_points_at_its_line() {
    let text = "{\n  \"keys\": {\n    \"a\": [\n      { \"domains\": [\"x\"] },\n      {\n        \"domains\": [\"y\"],\n        \"commands\": [\"start\", \"bogus\"]\n      }\n    ]\n  }\n}\n";
    let error = parse_err(text);
    assert_eq!(error.line, 7, "{error}");
    assert!(error.reason.contains("bogus"), "{error}");
    let first_line = "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": [\"bogus\"]}]}}";
    let error = parse_err(first_line);
    // Column 55 is the closing quote of "bogus", counted from the start of the file.
    assert_eq!((error.line, error.column), (1, 55), "{error}");
}

#[test]
fn every_refused_grant_is_reported_in_file_order() {
    let text = "{\"keys\": {\n  \"a\": [{\"domains\": []},\n         {\"domains\": [\"ok\"]}],\n  \"b\": [{\"domains\": [\"x\"], \"commands\": [\"bogus\"]},\n         [\"not a grant\"]]\n}}\n";
    let errors = match parse_all(text, Path::new("t.json")) {
        Ok(_) => panic!("accepted"),
        Err(errors) => errors,
    };
    let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0].0, 2);
    assert!(found[0].1.contains("at least one domain"));
    assert_eq!(found[1].0, 4);
    assert!(found[1].1.contains("bogus"));
    assert_eq!(found[2].0, 5);
    assert!(found[2].1.contains("grant must be a JSON object"));
    // The gateway's loader stops at the first of them.
    assert_eq!(parse_err(text), errors[0]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One grant as an administrator might write it, or get it wrong.
    fn grant_text() -> impl Strategy<Value = String> {
        let domains = prop::sample::select(vec![
            r#""domains": ["a"]"#,
            r#""domains": ["a-*", "b[0-9]"]"#,
            r#""domains": ["x\u0041"]"#,
            r#""domains": []"#,
            r#""domains": ["x["]"#,
            r#""domains": [""]"#,
            r#""domains": ["a\u0001"]"#,
            r#""domains": "a""#,
            r#""domains": [1]"#,
            r#""domains": null"#,
            "",
        ]);
        let commands = prop::sample::select(vec![
            "",
            r#", "commands": ["start", "status"]"#,
            r#", "commands": ["status", "status"]"#,
            r#", "commands": []"#,
            r#", "commands": ["bogus"]"#,
            r#", "commands": "start""#,
            r#", "commands": null"#,
            r#", "comm\u0061nds": ["start"]"#,
        ]);
        let connect = prop::sample::select(vec![
            "",
            r#", "connect": "test:///default""#,
            r#", "connect": "hv1""#,
            r#", "connect": "qemu:///system x""#,
            r#", "connect": null"#,
            r#", "connect": 5"#,
        ]);
        let extra = prop::sample::select(vec!["", "", r#", "x": 1"#, r#", "domains": ["dup"]"#]);
        let shape = prop::sample::select(vec!["object", "object", "object", "array", "null"]);
        (domains, commands, connect, extra, shape).prop_map(|(d, c, u, x, shape)| match shape {
            "array" => format!("[{d}]"),
            "null" => "null".to_owned(),
            _ => format!("{{ {d}{c}{u}{x} }}").replace("{ , ", "{ "),
        })
    }

    fn config_text() -> impl Strategy<Value = String> {
        // As written in the file: `\u0061` is a second way to write `a`.
        let name = prop::sample::select(vec!["a", "b", "c", "", r"\u0061", r"a\nb"]);
        let key = (name, prop::collection::vec(grant_text(), 0..3))
            .prop_map(|(name, grants)| format!("\"{name}\": [\n  {}\n]", grants.join(",\n  ")));
        let top = prop::sample::select(vec![
            "",
            "\"virsh\": \"/usr/bin/virsh\", ",
            "\"virsh\": \"virsh\", ",
            "\"connect\": \"test:///default\", ",
            "\"timeout_secs\": 0, ",
            "\"AllowedHosts\": [\"h\"], ",
            "\"extra\": 1, ",
        ]);
        let keys = prop::collection::vec(key, 0..4);
        let shape = prop::sample::select(vec!["keys", "keys", "keys", "none", "null"]);
        (top, keys, shape).prop_map(|(top, keys, shape)| match shape {
            "none" => format!("{{ {top}\"AllowedHosts\": [] }}"),
            "null" => format!("{{ {top}\"keys\": null }}"),
            _ => format!("{{ {top}\"keys\": {{\n{}\n}} }}", keys.join(",\n")),
        })
    }

    /// What a reading kept for `key`, with hypervisors as URIs (each reading numbers
    /// them in its own way).
    fn kept(config: &Config, key: &str) -> String {
        let top: Vec<&str> = config
            .connect
            .iter()
            .map(|id| config.hypervisor(*id).uri.as_str())
            .collect();
        let grants: Option<Vec<String>> = config.keys.get(key).map(|grants| {
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
        });
        format!(
            "{:?} {top:?} {:?} {:?} {:?} {grants:?}",
            config.virsh, config.timeout, config.syslog_socket, config.allowed_hosts,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever the text, the reading ends with a config or with refusals that each
        /// point at a line of the file, in file order; the gateway's refusal is the first
        /// of `check`'s.
        #[test]
        fn every_refusal_points_into_the_file_in_order(text in config_text()) {
            let file = Path::new("t.json");
            let lines = text.lines().count().max(1);
            match parse_all(&text, file) {
                Ok(config) => {
                    for key in ["a", "b", "c", "absent"] {
                        let _ = kept(&config, key);
                    }
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for error in &errors {
                        prop_assert!(error.line >= 1 && error.line <= lines, "{} in {}", error, text);
                    }
                    let places: Vec<(usize, usize)> =
                        errors.iter().map(|e| (e.line, e.column)).collect();
                    let mut sorted = places.clone();
                    sorted.sort();
                    prop_assert_eq!(places, sorted);
                    prop_assert_eq!(parse(&text, file).err(), Some(errors[0].clone()));
                }
            }
        }
    }
}
