//! The administrator's subcommands: `check`, `explain` and `keyline`.
//!
//! They run from a root shell with trusted arguments; none of them is reachable from what
//! an SSH user sends (the gateway only ever hands a user's line to the request grammar,
//! which has no such words). They share the gateway's own code — the config loader,
//! `policy::judge_line`, `cli::parse` — so they cannot tell a story the gateway would not.
//! This file does their I/O and exit statuses, with `anyhow` errors that say what was being
//! done; the pure parts are submodules.

use crate::report::{authorized_keys, check, explain, keyline, live};

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cli::AdminCommand;
use crate::config;
use crate::error::Status;
use crate::escape::escape;
use crate::system::channel::notice;
use crate::system::channel::say;

/// An `authorized_keys` file or a public key is far smaller than this.
const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Runs one subcommand and returns its exit status.
pub fn run(config: Option<PathBuf>, command: AdminCommand) -> Status {
    let path = config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let result = match command {
        AdminCommand::Check {
            authorized_keys,
            principals,
            live,
            user,
        } => run_check(
            &path,
            authorized_keys.as_deref(),
            principals.as_deref(),
            live.then_some(user.as_str()),
        ),
        AdminCommand::Explain { key, request } => run_explain(&path, &key, &request),
        AdminCommand::Keyline {
            key,
            no_pty,
            principal,
            public_key,
        } => {
            let what = match (&principal, &public_key) {
                (Some(principal), _) => keyline::Names::Principal(principal),
                (None, Some(file)) => keyline::Names::Key(file),
                (None, None) => {
                    notice("keyline needs a public key file or --principal");
                    return Status::Usage;
                }
            };
            run_keyline(config.as_deref(), &path, &key, !no_pty, what)
        }
    };
    result.unwrap_or_else(|error| {
        notice(&format!("{error:#}"));
        Status::Failed
    })
}

fn shown(path: &Path) -> String {
    escape(&path.to_string_lossy())
}

fn warn(text: &str) {
    notice(&format!("warning: {text}"));
}

/// `check`: 0 valid (warnings allowed), 78 invalid config, 1 problems in authorized_keys or
/// the principals file, 69 when `--live` could not reach a hypervisor.
fn run_check(
    path: &Path,
    authorized_keys: Option<&Path>,
    principals: Option<&Path>,
    live_as: Option<&str>,
) -> Result<Status> {
    let config = match crate::system::files::load_all(path) {
        Ok(config) => config,
        Err(errors) => {
            for error in &errors {
                notice(&error.to_string());
            }
            for file in authorized_keys.iter().chain(principals.iter()) {
                notice(&format!(
                    "{} not checked: the config is invalid",
                    shown(file)
                ));
            }
            return Ok(Status::Config);
        }
    };
    let file = shown(path);
    say(&check::summary(&config, &file));
    for warning in check::warnings(&config).into_iter().map(|w| {
        let file = config
            .files
            .get(w.file)
            .map_or_else(|| file.clone(), |f| shown(f));
        match w.line {
            Some(line) => format!("{file}:{line}: {}", w.message),
            None => format!("{file}: {}", w.message),
        }
    }) {
        warn(&warning);
    }
    let mut status = Status::Ok;
    for (file, principals) in [(authorized_keys, false), (principals, true)] {
        if let Some(file) = file {
            if lint_authorized_keys(&config, path, file, principals)? != Status::Ok {
                status = Status::Failed;
            }
        }
    }
    if let Some(user) = live_as {
        if run_live(&config, &file, user)? != Status::Ok {
            status = Status::Unavailable;
        }
    }
    Ok(status)
}

/// `check --live`: becomes `user` (the gateway's account), asks every hypervisor the config
/// uses for one bulk listing (read-only) and whether it takes a read-write connection (which
/// actions need), all hypervisors at once, with the gateway's own virsh runner and its fixed
/// environment, and reports who may act on each domain. 69 when a hypervisor did not
/// answer either.
fn run_live(config: &config::Config, file: &str, user: &str) -> Result<Status> {
    become_user(user)?;
    let virsh = crate::system::virsh::Virsh::new(&config.virsh);
    let ids = live::hypervisors_to_ask(config);
    // The two questions go one after the other to each hypervisor, all hypervisors at once.
    let asked = crate::hypervisor::ask_each(config, &ids, config.timeout, |at, deadline| {
        Ok((
            virsh.listing(at, deadline),
            virsh.connects_read_write(at, deadline),
        ))
    });
    // Worded as the gateway words a listing that failed, on one line.
    let one_line = |fault| {
        crate::error::one_line(&crate::error::Error::Libvirt {
            fault,
            doing: Box::new(crate::error::Doing {
                command: "list",
                domain: None,
                hypervisor: None,
                timeout_secs: config.timeout.as_secs(),
            }),
        })
    };
    let answers: Vec<(config::HypervisorId, live::Answer)> = asked
        .into_iter()
        .map(|(id, answer, _)| {
            let answer = match answer {
                Ok((listing, read_write)) => live::Answer {
                    listing: listing.map_err(one_line),
                    read_write: read_write.map_err(one_line),
                },
                Err(fault) => live::Answer {
                    listing: Err(one_line(fault.clone())),
                    read_write: Err(one_line(fault)),
                },
            };
            (id, answer)
        })
        .collect();
    let live = live::report(config, &answers, crate::expiry::now());
    say(&format!(
        "{file}, live, as user {} sees it:\n{}",
        escape(user),
        live.text
    ));
    Ok(if live.all_reachable {
        Status::Ok
    } else {
        Status::Unavailable
    })
}

/// Runs the rest of this process as `name` (its uid, its primary group and its groups), as
/// the gateway runs under sshd: what libvirt lets the account see is what the report says.
/// Already `name`: nothing to do. Anyone else but root cannot become another user.
fn become_user(name: &str) -> Result<()> {
    use nix::unistd::{Uid, User, geteuid, initgroups, setresgid, setresuid};
    let user = User::from_name(name)
        .with_context(|| format!("looking up the user {}", escape(name)))?
        .with_context(|| format!("there is no user {} (see --user)", escape(name)))?;
    if geteuid() == user.uid {
        return Ok(());
    }
    if !geteuid().is_root() {
        bail!(
            "check --live runs virsh as the gateway's account {}: run it as root (or as {} itself)",
            escape(name),
            escape(name)
        );
    }
    let c_name = std::ffi::CString::new(name).context("a user name with a NUL byte")?;
    initgroups(&c_name, user.gid).context("setting the account's groups")?;
    setresgid(user.gid, user.gid, user.gid).context("setting the account's group")?;
    setresuid(user.uid, user.uid, user.uid).context("becoming the account")?;
    if setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        bail!("could still become root after becoming {}", escape(name));
    }
    Ok(())
}

/// Lints an `authorized_keys` file, or an `AuthorizedPrincipalsFile` when `principals`.
fn lint_authorized_keys(
    config: &config::Config,
    config_path: &Path,
    file: &Path,
    principals: bool,
) -> Result<Status> {
    let text = String::from_utf8_lossy(&read_file(file)?).into_owned();
    let binary = this_binary()?;
    let config_path = std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.into());
    let resolve = |p: &Path| std::fs::canonicalize(p).ok();
    let context = authorized_keys::Context {
        config,
        config_path: &config_path,
        binary: &binary,
        resolve: &resolve,
    };
    let (findings, counts) = if principals {
        authorized_keys::lint_principals(&text, &context)
    } else {
        authorized_keys::lint(&text, &context)
    };
    let mut problems = 0;
    for finding in &findings {
        let at = format!("{}:{}", shown(file), finding.line);
        if finding.problem {
            problems += 1;
            notice(&format!("{at}: {}", finding.message));
        } else {
            notice(&format!("note: {at}: {}", finding.message));
        }
    }
    let (one, many) = if principals {
        ("principal", "principals")
    } else {
        ("key", "keys")
    };
    say(&format!(
        "{}: {} {}, {} running dromaius, {problems} {}",
        shown(file),
        counts.keys,
        if counts.keys == 1 { one } else { many },
        counts.dromaius_lines,
        if problems == 1 { "problem" } else { "problems" },
    ));
    Ok(if problems == 0 {
        Status::Ok
    } else {
        Status::Failed
    })
}

/// `explain`: 0 allowed, 77 denied, 2 unparseable, 78 config refused.
fn run_explain(path: &Path, key: &str, request: &[String]) -> Result<Status> {
    let config = match crate::system::files::load(path) {
        Ok(config) => config,
        Err(error) => {
            notice(&error.to_string());
            return Ok(Status::Config);
        }
    };
    let explanation = explain::explain(&config, &shown(path), key, request);
    if explanation.status == Status::Usage {
        notice(explanation.text.trim_end());
    } else {
        say(&explanation.text);
    }
    Ok(explanation.status)
}

/// `keyline`: 0 printed, 1 the key or a name was refused.
fn run_keyline(
    given_config: Option<&Path>,
    path: &Path,
    key_name: &str,
    pty: bool,
    what: keyline::Names<'_>,
) -> Result<Status> {
    let subject = match what {
        keyline::Names::Principal(principal) => keyline::Subject::Principal(principal),
        keyline::Names::Key(input) => keyline::Subject::Key(read_public_key(input)?),
    };
    let binary = this_binary()?;
    let config_arg = given_config
        .map(std::path::absolute)
        .transpose()
        .context("cannot make the config path absolute")?;
    let (Some(binary_text), Some(config_text)) = (
        binary.to_str(),
        match &config_arg {
            Some(c) => c.to_str().map(Some),
            None => Some(None),
        },
    ) else {
        bail!("the binary or config path is not UTF-8; it cannot go into a forced command");
    };
    let line = keyline::line(&keyline::Request {
        binary: binary_text,
        key_name,
        config: config_text,
        pty,
        subject: &subject,
    })?;
    advise(path, key_name, pty);
    say(&line);
    Ok(Status::Ok)
}

/// One OpenSSH public key, from a file or (`-`) stdin.
fn read_public_key(input: &Path) -> Result<crate::sshkey::PublicKey> {
    let from_stdin = input == Path::new("-");
    let from = if from_stdin {
        "stdin".to_string()
    } else {
        shown(input)
    };
    let bytes = if from_stdin {
        crate::system::files::read_bounded(std::io::stdin().lock(), MAX_INPUT_BYTES, 0)
            .map_err(anyhow::Error::msg)
            .context("stdin")?
    } else {
        read_file(input)?
    };
    let Ok(text) = String::from_utf8(bytes) else {
        bail!("{from}: not an OpenSSH public key: not UTF-8 text");
    };
    // A .pub file ends with one newline; anything else on more lines is refused by `parse`.
    let text = text.strip_suffix('\n').unwrap_or(&text);
    crate::sshkey::parse(text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{from}: not an OpenSSH public key"))
}

/// Warnings that do not stop `keyline`: the line is still right, the config may be next.
fn advise(path: &Path, key_name: &str, pty: bool) {
    let config = match crate::system::files::load(path) {
        Ok(config) => config,
        Err(error) => {
            warn(&format!(
                "cannot check key \"{}\" against the config: {error}",
                escape(key_name)
            ));
            return;
        }
    };
    let subject = crate::policy::Subject::new(&config, key_name, None);
    if !config.keys.contains_key(key_name) {
        warn(&format!(
            "key \"{}\" is not in {}: every request with this line is refused until it is",
            escape(key_name),
            shown(path)
        ));
    } else if subject
        .usable_actions()
        .contains(crate::action::Action::Console)
        != pty
    {
        if pty {
            warn(&format!(
                "key \"{}\" is not granted console: it needs no pty (--no-pty)",
                escape(key_name)
            ));
        } else {
            warn(&format!(
                "key \"{}\" is granted console, which needs the pty that --no-pty leaves out",
                escape(key_name)
            ));
        }
    }
}

/// This binary's canonical path, as a forced command should name it.
fn this_binary() -> Result<PathBuf> {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("cannot find this program's own path")
}

/// A file of the administrator's, read whole if it is not absurdly large.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", shown(path)))?;
    crate::system::files::read_bounded(file, MAX_INPUT_BYTES, 0)
        .map_err(anyhow::Error::msg)
        .with_context(|| shown(path))
}
