//! The documents say the same as the program: the commands a user may send, as the README,
//! USAGE.md, `--help` and the man page list them, are exactly `src/action.rs`'s and the
//! four session words; the README's config example is the file the package ships; and every
//! `Match` block the README writes (Quickstart, migration) is the guide's step 4, line for
//! line. Nothing here runs the binary: a document that drifts fails here, at `cargo test`,
//! with what differs.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use dromaius::action::Action;
use dromaius::cli::Cli;

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The set every document must list: each action's word, and the words of a session.
fn commands() -> BTreeSet<String> {
    Action::ALL
        .iter()
        .map(|action| action.name().to_owned())
        .chain(["list", "help", "exit", "quit"].map(str::to_owned))
        .collect()
}

/// The lines of the Markdown section whose heading is exactly HEADING, up to the next
/// heading of the same or a higher level.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut lines = text.lines().skip_while(|line| *line != heading);
    assert!(lines.next().is_some(), "no section {heading:?}");
    lines
        .take_while(|line| {
            let hashes = line.chars().take_while(|c| *c == '#').count();
            !(hashes > 0 && hashes <= level && line[hashes..].starts_with(' '))
        })
        .collect()
}

/// The first word of every `code span` in the first cell of each row of the first table
/// in LINES: "| `suspend D` / `resume D` | ..." gives suspend and resume.
fn first_column_words(lines: &[&str]) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let rows = lines
        .iter()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2); // the header and the |---| line
    for row in rows {
        let cell = row.split('|').nth(1).unwrap_or_default();
        for (i, span) in cell.split('`').enumerate() {
            if i % 2 == 1 {
                let word = span.split_whitespace().next().unwrap_or_default();
                words.insert(word.to_owned());
            }
        }
    }
    words
}

fn assert_same(what: &str, found: BTreeSet<String>) {
    let expected = commands();
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} does not list the commands of src/action.rs and the session words:\n\
         missing {missing:?}, not a command {extra:?}"
    );
}

#[test]
fn the_readmes_table_of_what_users_type_lists_every_command() {
    let readme = read("README.md");
    let lines = section(&readme, "## What the user types");
    assert_same(
        "README.md's table in 'What the user types'",
        first_column_words(&lines),
    );
}

#[test]
fn usage_md_lists_every_command() {
    let usage = read("USAGE.md");
    let lines = section(&usage, "## The commands");
    assert_same(
        "USAGE.md's table in 'The commands'",
        first_column_words(&lines),
    );
}

#[test]
fn help_lists_every_command() {
    let help = Cli::command().render_long_help().to_string();
    let mut found: BTreeSet<String> = help
        .lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            let word = words.next()?;
            (words.next() == Some("DOMAIN")).then(|| word.to_owned())
        })
        .collect();
    let always = help
        .lines()
        .find_map(|line| line.strip_prefix("Always, and only over what is granted: "))
        .expect("--help names the session words");
    found.extend(always.trim_end_matches('.').split(", ").map(str::to_owned));
    assert_same("dromaius --help", found);
}

#[test]
fn the_man_page_lists_every_command() {
    let page = read("doc/dromaius.1");
    let requests: Vec<&str> = page
        .lines()
        .skip_while(|line| *line != ".SH REQUESTS")
        .skip(1)
        .take_while(|line| !line.starts_with(".SH "))
        .collect();
    let mut found = BTreeSet::new();
    for pair in requests.windows(2) {
        if pair[0] != ".TP" {
            continue;
        }
        let entry = pair[1]
            .strip_prefix(".B ")
            .map_or_else(|| pair[1].to_owned(), |word| format!("\\fB{word}\\fR"));
        for (i, part) in entry.split("\\fB").enumerate() {
            if i > 0 {
                let word = part.split("\\fR").next().unwrap_or_default();
                found.insert(word.replace("\\-", "-"));
            }
        }
    }
    assert_same("doc/dromaius.1's REQUESTS", found);
}

#[test]
fn the_readmes_grant_table_names_every_command_a_grant_may_name() {
    let readme = read("README.md");
    let row = readme
        .lines()
        .find(|line| line.starts_with("| `commands` |"))
        .expect("the README's grant table has a row for commands");
    let cell = row.split('|').nth(2).unwrap_or_default();
    let named: BTreeSet<String> = cell
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    let actions: BTreeSet<String> = Action::ALL.iter().map(|a| a.name().to_owned()).collect();
    assert_eq!(named, actions, "README.md's `commands` row");
}

/// The fenced block (without its fences and indentation) that follows the first line
/// holding MARKER.
fn block_after(text: &str, marker: &str) -> Vec<String> {
    let mut lines = text
        .lines()
        .skip_while(|line| !line.contains(marker))
        .skip(1);
    let fence = lines
        .find(|line| line.trim_start().starts_with("```"))
        .unwrap_or_else(|| panic!("no block after {marker:?}"));
    let indent = fence.len() - fence.trim_start().len();
    lines
        .take_while(|line| !line.trim_start().starts_with("```"))
        .map(|line| line.get(indent..).unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_readmes_config_example_is_the_shipped_example() {
    let readme = read("README.md");
    let example = block_after(&readme, "## Config: `dromaius.json`").join("\n") + "\n";
    assert_eq!(example, read("dromaius.json.example"));
}

#[test]
fn every_match_block_the_readme_writes_is_step_4s() {
    let readme = read("README.md");
    let step4 = block_after(&readme, "**In `sshd_config`**");
    let opening = "cat >/etc/ssh/sshd_config.d/dromaius.conf <<'END'";
    let mut found = 0;
    let mut lines = readme.lines();
    while let Some(line) = lines.by_ref().find(|line| line.trim_start() == opening) {
        let indent = line.len() - line.trim_start().len();
        let heredoc: Vec<String> = lines
            .by_ref()
            .take_while(|line| line.trim() != "END")
            .map(|line| line.get(indent..).unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            heredoc, step4,
            "a Match block the README writes differs from step 4's"
        );
        found += 1;
    }
    // The Quickstart's and the migration's.
    assert_eq!(found, 2, "the README writes the Match block {found} times");
}
