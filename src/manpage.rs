//! The man page dromaius(1), rendered by `clap_mangen` from the clap definitions in `cli`
//! (name, synopsis, options, each subcommand's options), the command list from `action`
//! (the one list `help` and `--help` use too), the example config file itself, and the
//! hand-written sections clap knows nothing of, kept as roff fragments in `doc/man/`.
//!
//! It is built by a test, not by the binary: `man_page_is_up_to_date` renders the page
//! and fails when `doc/dromaius.1` differs, so the shipped page can never lag behind the
//! flags, the commands or the fragments. `DROMAIUS_WRITE_MAN=1 cargo test --lib
//! man_page` rewrites it. Nothing here is compiled into the program.

#![cfg(test)]

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::action::{Action, ActionSet};
use crate::cli::Cli;

/// A hand-written section, `doc/man/NAME.roff`.
macro_rules! fragment {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/doc/man/",
            $name,
            ".roff"
        ))
    };
}

/// The line of a fragment where generated text goes instead.
fn replace_marker(fragment: &str, marker: &str, generated: &str) -> String {
    let line = fragment
        .lines()
        .find(|line| line.starts_with(&format!(".\\\" {marker}:")))
        .unwrap_or_else(|| panic!("fragment has no {marker} marker"));
    fragment.replacen(&format!("{line}\n"), generated, 1)
}

/// roff for a preamble-free part of the page: `roff` writes one before every render.
fn roff_text(roff: &Roff) -> String {
    roff.to_roff()
}

/// What one of `clap_mangen`'s section renderers writes, without its `.SH` line (the page
/// puts it under headings of its own) and without the preamble it repeats every time.
fn section_body(render: impl Fn(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    render(&mut out).expect("render into memory");
    let text = String::from_utf8(out).expect("roff is UTF-8");
    text.lines()
        .filter(|line| {
            !line.starts_with(".SH ")
                && !line.starts_with(".ie \\n(.g")
                && !line.starts_with(".el .ds Aq")
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// One `.TP` entry per command a grant may name, in `help`'s order, from `Action`.
fn commands() -> String {
    let mut roff = Roff::new();
    for action in Action::ALL {
        roff.control("TP", []);
        roff.text([bold(action.name()), roman(" "), italic("DOMAIN")]);
        let mut summary = format!("{}.", capitalised(action.summary()));
        if !ActionSet::DEFAULT.contains(action) {
            summary.push_str(" Only when a grant names it.");
        }
        roff.text([roman(summary)]);
    }
    roff_text(&roff)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The example config, as shipped, in a no-fill block.
fn example_config() -> String {
    let mut roff = Roff::new();
    for line in include_str!("../dromaius.json.example").lines() {
        roff.text([roman(line)]);
    }
    roff_text(&roff)
}

/// The whole page.
pub fn render() -> String {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let man = Man::new(cli.clone())
        .title("DROMAIUS")
        // No date (the page would change every day); roff quotes no empty argument itself.
        .date("\"\"")
        .manual("User Commands");
    let mut page = String::new();
    let mut whole = Vec::new();
    // The title, with the preamble that defines the apostrophe string, once.
    man.render_title(&mut whole).expect("render into memory");
    page.push_str(&String::from_utf8(whole).expect("roff is UTF-8"));
    page.push_str(".SH NAME\n");
    page.push_str(&section_body(|w| man.render_name_section(w)));
    page.push_str(".SH SYNOPSIS\n");
    page.push_str(&section_body(|w| man.render_synopsis_section(w)));
    let mut legacy = Roff::new();
    legacy.control("br", []).text([
        bold("dromaius -cmd"),
        roman(" "),
        italic("CMD"),
        roman(" "),
        bold("-host"),
        roman(" "),
        italic("DOMAIN"),
        roman(" ["),
        bold("-config"),
        roman(" "),
        italic("PATH"),
        roman("]"),
    ]);
    page.push_str(&roff_text(&legacy));
    for sub in cli.get_subcommands() {
        page.push_str(".br\n");
        page.push_str(&section_body(|w| {
            Man::new(sub.clone()).render_synopsis_section(w)
        }));
    }
    page.push_str(fragment!("description"));
    page.push_str(".SH OPTIONS\n");
    page.push_str(&section_body(|w| man.render_options_section(w)));
    page.push_str(fragment!("admin"));
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        let mut heading = Roff::new();
        heading.control("SS", [format!("dromaius {name}").as_str()]);
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        heading.text([roman(format!("{about}."))]);
        page.push_str(&roff_text(&heading));
        page.push_str(match name {
            "check" => fragment!("check"),
            "explain" => fragment!("explain"),
            "keyline" => fragment!("keyline"),
            other => panic!("subcommand {other} has no doc/man/{other}.roff"),
        });
        page.push_str(&section_body(|w| {
            Man::new(sub.clone()).render_options_section(w)
        }));
    }
    page.push_str(&replace_marker(
        fragment!("configuration"),
        "EXAMPLE",
        &example_config(),
    ));
    page.push_str(&replace_marker(
        fragment!("requests"),
        "COMMANDS",
        &commands(),
    ));
    for section in [
        fragment!("exit-status"),
        fragment!("files"),
        fragment!("audit"),
        fragment!("examples"),
        fragment!("see-also"),
    ] {
        page.push_str(section);
    }
    page
}

mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn man_page_is_up_to_date() {
        let page = render();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/dromaius.1");
        if std::env::var_os("DROMAIUS_WRITE_MAN").is_some() {
            std::fs::write(&path, &page).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == page,
            "doc/dromaius.1 is not what the clap definitions, src/action.rs and doc/man/ give; \
             regenerate it with DROMAIUS_WRITE_MAN=1 cargo test --lib man_page"
        );
    }

    #[test]
    fn man_page_covers_every_subcommand_option_and_command() {
        let page = render();
        for word in [
            ".SS \"dromaius check\"",
            ".SS \"dromaius explain\"",
            ".SS \"dromaius keyline\"",
            "\\-\\-authorized\\-keys",
            "\\-\\-principals",
            "\\-\\-live",
            "\\-\\-no\\-pty",
            "\\-\\-config",
            ".SH CONFIGURATION",
            ".SH REQUESTS",
            ".SH EXIT STATUS",
            ".SH FILES",
            ".SH SEE ALSO",
        ] {
            assert!(page.contains(word), "{word}");
        }
        for action in Action::ALL {
            let entry = format!(".TP\n\\fB{}\\fR", action.name().replace('-', "\\-"));
            assert!(page.contains(&entry), "{entry}");
        }
        assert!(
            !page.contains(".\\\" EXAMPLE"),
            "the example was not put in"
        );
        assert!(
            !page.contains(".\\\" COMMANDS"),
            "the commands were not put in"
        );
        assert!(
            !page.contains("dromaius help") && !page.contains("dromaius\\-help"),
            "clap's help subcommand is not documented"
        );
    }

    #[test]
    fn man_page_renders_without_a_warning() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/dromaius.1");
        // nroff (Debian package groff-base, installed by scripts/install-deps).
        let out = std::process::Command::new("nroff")
            .args(["-man", "-ww", "-Tutf8"])
            .arg(&path)
            .output()
            .expect("run nroff (apt-get install groff-base)");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }

    #[test]
    fn markers_are_replaced_by_what_is_generated() {
        let fragment = "a\n.\\\" HERE: what goes here\nb\n";
        assert_eq!(replace_marker(fragment, "HERE", "x\ny\n"), "a\nx\ny\nb\n");
        assert_eq!(capitalised("boot the domain"), "Boot the domain");
    }
}
