//! The words a request's answer is shown in: `help`'s table of the commands a key may use,
//! and `list`'s table of domains. Pure; every name a user or libvirt chose is escaped.

use crate::escape::escape;
use crate::policy::Subject;

/// `help`: only the commands this key can use somewhere, each with its line of help in a
/// column past the longest.
pub fn help_text(subject: &Subject<'_>) -> String {
    let optional = subject.implied_domain().is_some();
    let domain = if optional { "[DOMAIN]" } else { "DOMAIN" };
    let usable = subject.usable_actions();
    let mut rows: Vec<(String, &str)> = usable
        .iter()
        .map(|action| (format!("{} {domain}", action.name()), action.summary()))
        .collect();
    rows.extend([
        ("list".into(), "the domains you may use, with their state"),
        ("help".into(), "this text"),
        ("exit, quit".into(), "end the session"),
    ]);
    let width = rows
        .iter()
        .map(|(usage, _)| usage.len() + 2)
        .max()
        .unwrap_or(0)
        .max(18);
    let mut text = String::from("Commands:\n");
    if usable.is_empty() {
        text.push_str("  (no command on any domain is granted to this key)\n");
    }
    for (usage, summary) in rows {
        text.push_str(&format!("  {usage:<width$}{summary}\n"));
    }
    text.push_str(
        "More, with ssh lines for Linux, macOS and Windows: USAGE.md (your administrator has \
         it as /usr/share/doc/dromaius/USAGE.md)\n",
    );
    text
}

/// `list`'s table: names (escaped) in a column as wide as the widest, then the state, then
/// (for a fleet) the hypervisor.
pub fn list_text(rows: &[(String, &'static str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(name, _, _)| escape(name).len())
        .max()
        .unwrap_or(0);
    let state_width = rows
        .iter()
        .map(|(_, state, _)| state.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (name, state, at) in rows {
        if at.is_empty() {
            text.push_str(&format!("{:width$}  {state}\n", escape(name)));
        } else {
            text.push_str(&format!(
                "{:width$}  {state:state_width$}  {}\n",
                escape(name),
                escape(at)
            ));
        }
    }
    text
}
