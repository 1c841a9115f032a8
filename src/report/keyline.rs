//! The one `authorized_keys` line that `dromaius keyline` prints, built so that it means
//! exactly what it says when pasted unchanged.
//!
//! sshd unescapes only `\"` inside `command="..."` and then hands the string to the
//! account's shell with `-c`. Rather than quote for two parsers, every word of the forced
//! command is restricted to characters that neither sshd nor `sh` treat specially, and a
//! name or path outside that set is refused. Reading the public key is `pubkey`'s job.

use anyhow::{Result, bail};

use crate::sshkey::PublicKey;

/// Characters a word of the forced command may hold: no quotes, no backslash, no space, no
/// shell syntax (`$ ; | & < > ( ) { } * ? [ ] ~ # !` and the like). Paths use all of them.
pub fn is_plain_word_char(c: char) -> bool {
    is_key_name_char(c) || matches!(c, '/' | '%' | ':' | ',' | '=')
}

/// Characters a key name may hold: those of [`is_plain_word_char`] that no tool reads as a
/// separator (`/`, `:`, `,`, `=`) or an escape (`%`).
pub fn is_key_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@')
}

/// A key name `keyline` will put on a command line. Also what `check` recommends.
pub fn check_key_name(name: &str) -> Result<()> {
    let shown = crate::escape::escape(name);
    if name.is_empty() {
        bail!("the key name is empty");
    }
    if name.starts_with('-') {
        bail!("key name \"{shown}\" starts with '-', which would be read as an option");
    }
    if name.len() > 128 {
        bail!("the key name is longer than 128 bytes");
    }
    if let Some(c) = name.chars().find(|c| !is_key_name_char(*c)) {
        bail!(
            "key name \"{shown}\" holds {}, which cannot be put safely in a forced command \
             (use letters, digits and . _ - + @)",
            describe_char(c)
        );
    }
    Ok(())
}

/// An absolute path that may stand unquoted in the forced command.
pub fn check_path(what: &str, path: &str) -> Result<()> {
    let shown = crate::escape::escape(path);
    if !path.starts_with('/') {
        bail!("the {what} path \"{shown}\" is not absolute");
    }
    if let Some(c) = path.chars().find(|c| !is_plain_word_char(*c)) {
        bail!(
            "the {what} path \"{shown}\" holds {}, which cannot be put safely in a forced \
             command; use a path made of letters, digits and / . _ - + @ % : , =",
            describe_char(c)
        );
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    if c == ' ' {
        "a space".into()
    } else if c.is_ascii_graphic() {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", u32::from(c))
    }
}

/// What the administrator named: a public key file, or a certificate principal.
pub enum Names<'a> {
    Key(&'a std::path::Path),
    Principal(&'a str),
}

/// What a line ties the key name to: a public key (an `authorized_keys` line) or a
/// certificate principal (an `AuthorizedPrincipalsFile` line).
pub enum Subject<'a> {
    Key(PublicKey),
    Principal(&'a str),
}

/// What goes into one line.
pub struct Request<'a> {
    /// The absolute, canonical path of the dromaius binary.
    pub binary: &'a str,
    pub key_name: &'a str,
    /// `--config PATH` to add, already absolute.
    pub config: Option<&'a str>,
    pub pty: bool,
    pub subject: &'a Subject<'a>,
}

/// A certificate principal, as the last word of a principals line: letters, digits and
/// `. _ - + @`, like a key name (sshd compares it with the certificate's principals).
pub fn check_principal(principal: &str) -> Result<()> {
    if principal.is_empty() {
        bail!("the principal is empty");
    }
    if let Some(c) = principal.chars().find(|c| !is_key_name_char(*c)) {
        bail!(
            "principal \"{}\" holds {}: a principals line ends with the principal, after \
             the options; use letters, digits and . _ - + @",
            crate::escape::escape(principal),
            describe_char(c)
        );
    }
    Ok(())
}

/// `command="BIN --key NAME[ --config PATH]",restrict[,pty] TYPE BLOB[ COMMENT]`.
pub fn line(request: &Request<'_>) -> Result<String> {
    check_path("dromaius binary", request.binary)?;
    check_key_name(request.key_name)?;
    let mut command = format!("{} --key {}", request.binary, request.key_name);
    if let Some(config) = request.config {
        check_path("config", config)?;
        command.push_str(" --config ");
        command.push_str(config);
    }
    let options = if request.pty {
        "restrict,pty"
    } else {
        "restrict"
    };
    let last = match request.subject {
        Subject::Key(key) => key.to_line(),
        Subject::Principal(principal) => {
            check_principal(principal)?;
            (*principal).to_owned()
        }
    };
    Ok(format!("command=\"{command}\",{options} {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sshkey;

    fn key() -> PublicKey {
        sshkey::parse(crate::sshkey::tests::ED25519).unwrap()
    }

    #[test]
    fn the_line_has_command_options_and_key() {
        let key = Subject::Key(key());
        let mut request = Request {
            binary: "/usr/bin/dromaius",
            key_name: "alice",
            config: None,
            pty: true,
            subject: &key,
        };
        assert_eq!(
            line(&request).unwrap(),
            format!(
                "command=\"/usr/bin/dromaius --key alice\",restrict,pty {}",
                crate::sshkey::tests::ED25519
            )
        );
        request.pty = false;
        request.config = Some("/etc/dromaius/other.json");
        assert_eq!(
            line(&request).unwrap(),
            format!(
                "command=\"/usr/bin/dromaius --key alice --config /etc/dromaius/other.json\",restrict {}",
                crate::sshkey::tests::ED25519
            )
        );
    }

    #[test]
    fn key_names_outside_the_safe_set_are_refused() {
        for good in ["alice", "a.b_c-d+e@host", "ops2", "A"] {
            assert!(check_key_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "--config",
            "a b",
            "a\"b",
            "a'b",
            "a\\b",
            "a;id",
            "$(id)",
            "`id`",
            "a|b",
            "a&b",
            "a>b",
            "a*",
            "a?",
            "~root",
            "a#b",
            "a,b",
            "a=b",
            "a/b",
            "caf\u{e9}",
            "a\nb",
            "a\tb",
            "a\u{0}b",
        ] {
            assert!(check_key_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_key_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn paths_outside_the_safe_set_are_refused() {
        for good in [
            "/usr/bin/dromaius",
            "/opt/dromaius-1.2/bin/dromaius",
            "/srv/a+b@c%d:e,f=g",
        ] {
            assert!(check_path("x", good).is_ok(), "{good}");
        }
        for bad in [
            "dromaius",
            "./dromaius",
            "/my dir/dromaius",
            "/a\"b",
            "/a\\b",
            "/a$b",
            "/a;b",
            "/a'b",
            "/a`b`",
            "/a*",
            "/a\nb",
            "/caf\u{e9}",
        ] {
            assert!(check_path("x", bad).is_err(), "{bad:?}");
        }
    }
}
