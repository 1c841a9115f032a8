//! How virsh reads a domain argument, and which names dromaius may hand it unchanged.
//!
//! virsh (`tools/virsh-util.c`, `virshLookupDomainInternal`) tries a domain string three
//! ways, in order: as an **id**, when `virStrToLong_i` reads the whole string as a C `int`
//! (`strtol`, base 10: leading white space, an optional sign, digits; `+5`, `007` and `-0`
//! are ids) and the value is not negative — `start` skips this step, every other command
//! takes it; as a **UUID**, when the string is exactly 36 bytes and `virUUIDParse` accepts it
//! (16 pairs of hex digits, `-` or a space allowed between any pairs, white space around);
//! and only then as a **name**, exactly. A granted domain named `2` must never reach the
//! domain whose id is 2.
//!
//! Both parsers accept only white space, `+`, `-` and hex digits, so a name holding any other
//! byte can only ever be read as a name: [`is_only_a_name`]. Such a name goes to virsh as
//! `--domain NAME`, one run. Any other name is first resolved to its UUID from a listing.
//! The two parsers are written out here, faithfully, for `check`'s warnings and for the
//! property test that holds the predicate to them.

/// Whether virsh can read `name` only as a domain name: it holds a byte that neither the id
/// nor the UUID parser accepts (anything but C white space, `+`, `-` and hex digits).
pub fn is_only_a_name(name: &str) -> bool {
    name.bytes()
        .any(|b| !(b.is_ascii_hexdigit() || b == b'+' || b == b'-' || is_c_space(b)))
}

/// What virsh would take `name` for before trying it as a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The running domain with this id.
    Id(i32),
    /// The domain with this UUID (virsh: a 36-byte string).
    Uuid,
    /// Not virsh, which wants 36 bytes, but libvirt's own UUID lookup (and tools built on it).
    UuidWithoutDashes,
}

/// How virsh (or libvirt's UUID lookup) would read `name` before trying it as a name, if at
/// all. `None` when it is only ever a name.
pub fn reading(name: &str) -> Option<Reading> {
    if let Some(id) = as_id(name) {
        return Some(Reading::Id(id));
    }
    if parses_as_uuid(name) {
        return Some(if name.len() == 36 {
            Reading::Uuid
        } else {
            Reading::UuidWithoutDashes
        });
    }
    None
}

/// `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// virsh's id step: `virStrToLong_i(name, NULL, 10, &id) == 0 && id >= 0`, that is `strtol`
/// consuming the whole string, the value within `int` and not negative.
pub fn as_id(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    let mut at = bytes.iter().take_while(|b| is_c_space(**b)).count();
    let negative = match bytes.get(at) {
        Some(b'-') => {
            at += 1;
            true
        }
        Some(b'+') => {
            at += 1;
            false
        }
        _ => false,
    };
    let digits = &bytes[at..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for digit in digits {
        value = value
            .checked_mul(10)?
            .checked_add(i64::from(digit - b'0'))?;
        if value > i64::from(i32::MAX) + 1 {
            return None;
        }
    }
    let value = if negative { -value } else { value };
    i32::try_from(value).ok().filter(|id| *id >= 0)
}

/// `virUUIDParse(text) == 0`: white space, then 16 hex pairs with `-` or space allowed
/// anywhere between pairs, then only white space. (virsh also wants the string to be 36
/// bytes long; libvirt's UUID lookup does not.)
pub fn parses_as_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = bytes.iter().take_while(|b| is_c_space(**b)).count();
    let mut pairs = 0;
    while pairs < 16 {
        match bytes.get(at) {
            Some(b'-' | b' ') => at += 1,
            Some(high) if high.is_ascii_hexdigit() => {
                if !bytes.get(at + 1).is_some_and(u8::is_ascii_hexdigit) {
                    return false;
                }
                at += 2;
                pairs += 1;
            }
            _ => return false,
        }
    }
    bytes[at..].iter().all(|b| is_c_space(*b))
}

/// What virsh's UUID step accepts: [`parses_as_uuid`] on a 36-byte string.
pub fn virsh_reads_as_uuid(text: &str) -> bool {
    text.len() == 36 && parses_as_uuid(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_table() {
        use Reading::*;
        let cases: &[(&str, Option<Reading>)] = &[
            ("2", Some(Id(2))),
            ("0", Some(Id(0))),
            ("+5", Some(Id(5))),
            ("007", Some(Id(7))),
            ("-0", Some(Id(0))),
            ("+0", Some(Id(0))),
            (" 2", Some(Id(2))),
            ("\t\n2", Some(Id(2))),
            ("2147483647", Some(Id(2147483647))),
            ("-5", None),
            ("2147483648", None),
            ("99999999999999999999", None),
            ("2 ", None),
            ("0x10", None),
            ("1e3", None),
            ("", None),
            ("+", None),
            ("-", None),
            ("+-2", None),
            ("web1", None),
            ("\u{0662}", None), // Arabic-Indic two is not a C digit
            ("6695eb01-f6a4-8304-79aa-97f2502e193f", Some(Uuid)),
            ("6695EB01-F6A4-8304-79AA-97F2502E193F", Some(Uuid)),
            ("----6695eb01f6a4830479aa97f2502e193f", Some(Uuid)),
            ("6695eb01f6a4830479aa97f2502e193f----", None), // only white space may follow
            ("  6695eb01f6a4830479aa97f2502e193f  ", Some(Uuid)),
            ("66 95eb01f6a4830479aa97f2502e193f   ", Some(Uuid)),
            ("6695eb01f6a4830479aa97f2502e193f", Some(UuidWithoutDashes)),
            ("6695eb01-f6a4-8304-79aa-97f2502e193", None),
            ("6695eb01-f6a4-8304-79aa-97f2502e193g", None),
            ("6-695eb01-f6a4-8304-79aa-97f2502e193f", None), // a dash inside a pair
            ("6695eb01-f6a4-8304-79aa-97f2502e193f00", None),
        ];
        for (name, expected) in cases {
            assert_eq!(reading(name), *expected, "{name:?}");
        }
    }

    #[test]
    fn only_a_name_table() {
        // (name, whether virsh can read it only as a name)
        let cases: &[(&str, bool)] = &[
            ("web1", true),
            ("alice-web", true),
            ("x", true),
            ("-x", true),
            ("--force", true),
            ("caf\u{e9}", true),
            ("2;3", true),
            ("g", true),
            ("G", true),
            ("0x10", true),
            ("1e3z", true),
            ("6695eb01-f6a4-8304-79aa-97f2502e193g", true),
            ("2", false),
            ("+2", false),
            ("02", false),
            ("-0", false),
            ("-5", false), // not an id (negative), but the predicate is plain: no byte outside
            ("", false),
            ("abc", false),
            ("deadbeef", false),
            ("1e3", false),
            ("6695eb01-f6a4-8304-79aa-97f2502e193f", false),
            ("6695EB01-F6A4-8304-79AA-97F2502E193F", false),
            ("6695eb01f6a4830479aa97f2502e193f", false),
            ("6695eb01f6a4830479aa97f2502e193f----", false),
            (" 2", false),
            ("2\t", false),
        ];
        for (name, expected) in cases {
            assert_eq!(is_only_a_name(name), *expected, "{name:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Strings near both parsers: mostly their own alphabet, a few bytes of others.
        fn near_miss() -> impl Strategy<Value = String> {
            let pieces = prop::sample::select(vec![
                "0",
                "1",
                "2",
                "7",
                "9",
                "a",
                "f",
                "A",
                "F",
                "e",
                "-",
                "+",
                " ",
                "\t",
                "\n",
                "\u{b}",
                "\u{c}",
                "\r",
                "g",
                "x",
                "z",
                "\u{e9}",
                "_",
                ".",
                "6695eb01",
                "f6a4",
                "8304-79aa-97f2502e193f",
            ]);
            prop::collection::vec(pieces, 0..24).prop_map(|p| p.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

            /// Nothing the predicate hands to virsh as a name can be read as an id or a UUID.
            #[test]
            fn what_the_predicate_passes_neither_parser_accepts(name in near_miss()) {
                if is_only_a_name(&name) {
                    prop_assert_eq!(as_id(&name), None, "{:?}", name);
                    prop_assert!(!parses_as_uuid(&name), "{:?}", name);
                }
            }

            /// Any string at all, including arbitrary Unicode.
            #[test]
            fn the_same_for_any_string(name in any::<String>()) {
                if is_only_a_name(&name) {
                    prop_assert_eq!(as_id(&name), None);
                    prop_assert!(!parses_as_uuid(&name));
                }
            }

            /// Every 36-byte UUID spelling with its dashes anywhere between pairs is refused
            /// by the predicate and read by the UUID parser.
            #[test]
            fn uuid_spellings_are_never_only_names(
                pairs in prop::collection::vec(0u8..=255, 16),
                dashes in prop::collection::btree_set(1usize..16, 4),
                upper in any::<bool>(),
            ) {
                let mut text = String::new();
                for (index, pair) in pairs.iter().enumerate() {
                    if dashes.contains(&index) {
                        text.push('-');
                    }
                    text.push_str(&if upper { format!("{pair:02X}") } else { format!("{pair:02x}") });
                }
                prop_assert_eq!(text.len(), 36);
                prop_assert!(virsh_reads_as_uuid(&text), "{}", text);
                prop_assert!(!is_only_a_name(&text), "{}", text);
            }
        }
    }
}
