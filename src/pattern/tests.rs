use super::*;

fn matches(pattern: &str, name: &str) -> bool {
    Pattern::new(pattern)
        .unwrap_or_else(|refused| panic!("{pattern:?} refused: {refused}"))
        .matches(name)
}

#[test]
fn patterns_mean_what_they_mean_to_bash() {
    // (pattern, name, does bash's [[ NAME == PATTERN ]] say yes)
    let rows: &[(&str, &str, bool)] = &[
        ("web1", "web1", true),
        ("web1", "web10", false),
        ("web1", "Web1", false),
        ("web-*", "web-", true),
        ("web-*", "web-prod/x", true),
        ("*", ".hidden", true),
        ("*x", "/x", true),
        ("?x", ".x", true),
        ("web-?", "web-é", true),
        ("web-?", "web-12", false),
        ("web-**", "web-a", true),
        ("*-*-*", "a-b-c", true),
        ("*-*-*", "a-b", false),
        // Negation, both spellings: the review's case.
        ("web-[^0-9]*", "web-x1", true),
        ("web-[^0-9]*", "web-5", false),
        ("web-[!0-9]*", "web-5", false),
        ("web-[!0-9]*", "web-a", true),
        // `]` first in a set is a member; `-` first or last is a member.
        ("[]a]", "]", true),
        ("[]a]", "a", true),
        ("[!]]", "]", false),
        ("[!]]", "a", true),
        ("[a-]", "-", true),
        ("[-a]", "-", true),
        ("[a-]", "b", false),
        // POSIX classes.
        ("[[:digit:]]", "5", true),
        ("[[:digit:]]", "d", false),
        ("[[:digit:]x]", "x", true),
        ("[![:digit:]]", "5", false),
        ("[[:alpha:]]", "é", true),
        ("[[:upper:]]", "A", true),
        ("[[:upper:]]", "a", false),
        ("[[:xdigit:]]", "F", true),
        ("[[:space:]]", " ", true),
        ("[[:punct:]]", "-", true),
        ("[[:word:]]", "_", true),
        // Escapes, outside and inside a set.
        ("web\\*", "web*", true),
        ("web\\*", "web1", false),
        ("a\\b", "ab", true),
        ("\\\\", "\\", true),
        ("[\\]]", "]", true),
        ("[a\\-z]", "-", true),
        ("[a\\-z]", "b", false),
        ("\\[x]", "[x]", true),
        ("\\?", "?", true),
        ("\\?", "a", false),
        // Ranges.
        ("[a-c]", "b", true),
        ("[a-c]", "B", false),
        ("[0-9][0-9]", "42", true),
    ];
    for (pattern, name, expected) in rows {
        assert_eq!(matches(pattern, name), *expected, "{name:?} == {pattern:?}");
    }
}

#[test]
fn what_bash_reads_two_ways_is_refused_with_where() {
    let rows: &[(&str, usize)] = &[
        ("web-[0-9", 5),
        ("[", 1),
        ("[]", 1),
        ("[!]", 1),
        ("[^]", 1),
        ("web\\", 4),
        ("[[:foo:]]", 2),
        ("[[:digit:]", 1),
        ("[[:digit]", 2),
        ("[[=a=]]", 2),
        ("[[.a.]]", 2),
        ("[z-a]", 3),
        ("[é-ü]", 3),
        ("[a-c-e]", 5),
        ("[a-[:digit:]]", 4),
        ("web+(1)", 4),
        ("web@(a|b)", 4),
        ("!(web)", 1),
        ("web*(x)", 4),
        ("web?(x)", 4),
        ("[a\\", 1),
    ];
    for (pattern, at) in rows {
        match Pattern::new(pattern) {
            Ok(compiled) => panic!("{pattern:?} compiled: {compiled:?}"),
            Err(refused) => assert_eq!(refused.at, *at, "{pattern:?}: {refused}"),
        }
        assert!(Pattern::check(pattern).is_err(), "{pattern:?}");
    }
}

#[test]
fn check_refuses_exactly_what_new_refuses() {
    let rows = [
        "web-*", "web?", "*", "**", "?*?", "a(b", "a)b", "(", "web\\*", "web\\", "x[", "[a]",
        "[!a]*", "*(", "a!(", "@(x)", "é*", "é?(", "", "+(", "[]]", "[!]]", "\\(",
    ];
    for pattern in rows {
        assert_eq!(
            Pattern::check(pattern).is_ok(),
            Pattern::new(pattern).is_ok(),
            "{pattern:?}"
        );
    }
}

#[test]
fn a_pattern_without_wildcards_is_its_one_name() {
    let rows: &[(&str, Option<&str>)] = &[
        ("web1", Some("web1")),
        ("web\\*", Some("web*")),
        ("a\\[b\\]", Some("a[b]")),
        ("web*", None),
        ("web?", None),
        ("[w]eb", None),
        ("", Some("")),
    ];
    for (pattern, literal) in rows {
        let compiled = Pattern::new(pattern).expect(pattern);
        assert_eq!(compiled.literal().as_deref(), *literal, "{pattern:?}");
        assert_eq!(compiled.as_str(), *pattern);
    }
}

#[test]
fn matching_is_bounded_by_pattern_times_name() {
    let pattern = Pattern::new(&"*a".repeat(200)).expect("pattern");
    let name = "a".repeat(199) + "b";
    let started = std::time::Instant::now();
    assert!(!pattern.matches(&name.repeat(20)));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// Thousands of generated patterns and names, each compiled pattern's answer held to bash's
/// own `[[ NAME == PATTERN ]]` (bash 5, extglob off, C.UTF-8), run once for all of them.
#[test]
fn generated_patterns_agree_with_bash_itself() {
    const PIECES: &[&str] = &[
        "a",
        "b",
        "-",
        "0",
        "5",
        "*",
        "?",
        "[",
        "]",
        "!",
        "^",
        "\\",
        ":",
        ".",
        "é",
        "A",
        "[:digit:]",
        "[:alpha:]",
        "[:upper:]",
        "a-c",
        "0-9",
        "(",
        "+",
        "|",
    ];
    const NAME_CHARS: &[&str] = &[
        "a", "b", "c", "-", "0", "5", "]", "[", "!", "^", "\\", ":", ".", "é", "A", "*", "?", "(",
    ];
    let mut seed: u64 = 0x5eed_cafe;
    let mut next = move |below: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % below
    };
    let mut cases: Vec<(String, String, bool)> = Vec::new();
    let mut refused = 0;
    while cases.len() < 6000 {
        let pattern: String = (0..1 + next(6))
            .map(|_| PIECES[next(PIECES.len())])
            .collect();
        let compiled = match Pattern::new(&pattern) {
            Ok(compiled) => compiled,
            Err(_) => {
                refused += 1;
                continue;
            }
        };
        for _ in 0..3 {
            let name: String = (0..next(5))
                .map(|_| NAME_CHARS[next(NAME_CHARS.len())])
                .collect();
            let answer = compiled.matches(&name);
            cases.push((pattern.clone(), name, answer));
        }
    }
    assert!(
        refused > 100,
        "the generator should also make patterns bash reads two ways"
    );
    let mut input = Vec::new();
    for (pattern, name, _) in &cases {
        input.extend_from_slice(name.as_bytes());
        input.push(0);
        input.extend_from_slice(pattern.as_bytes());
        input.push(0);
    }
    let script = r#"shopt -u extglob; while IFS= read -r -d '' n && IFS= read -r -d '' p; do if [[ $n == $p ]]; then echo y; else echo n; fi; done"#;
    let mut child = std::process::Command::new("/bin/bash")
        .args(["--norc", "--noprofile", "-c", script])
        .env_clear()
        .env("LC_ALL", "C.UTF-8")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("bash runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input).expect("write to bash");
    });
    let output = child.wait_with_output().expect("bash ends");
    writer.join().expect("writer");
    let answers: Vec<bool> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line == "y")
        .collect();
    assert_eq!(answers.len(), cases.len(), "bash answered every case");
    let disagreements: Vec<String> = cases
        .iter()
        .zip(&answers)
        .filter(|((_, _, ours), bash)| ours != *bash)
        .map(|((pattern, name, ours), bash)| {
            format!("[[ {name:?} == {pattern:?} ]]: bash {bash}, dromaius {ours}")
        })
        .collect();
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(30)].join("\n")
    );
}
