//! Properties of the parsers of typed input: whatever the string, parsing answers without
//! panicking, and whatever it accepts holds the type's invariant.

use proptest::prelude::*;
use proptest::sample::select;

use super::*;

/// Characters hostile input is made of: separators, controls (NUL, DEL, C1), bidi overrides,
/// a combining mark, a zero-width joiner, a byte-order mark, astral and look-alike letters,
/// beside the letters, digits and punctuation of well-formed values.
const NASTY: &[char] = &[
    '\0',
    '\u{7}',
    '\t',
    '\n',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{202e}',
    '\u{2066}',
    '\u{301}',
    '\u{200d}',
    '\u{feff}',
    '\u{2028}',
    '\u{3000}',
    '\u{1f600}',
    '\u{10ffff}',
    'é',
    'ß',
    'ǅ',
    'ı',
    'İ',
    'Ａ',
    '٣',
    ' ',
    '-',
    '_',
    '.',
    '~',
    '@',
    ':',
    '/',
    '%',
    '+',
    '"',
    '\\',
    '#',
    'a',
    'b',
    'z',
    'A',
    'B',
    'Z',
    '0',
    '1',
    '9',
];

/// Any string: arbitrary Unicode, or a mix weighted towards [`NASTY`] characters.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(select(NASTY), 0..80).prop_map(|v| v.into_iter().collect()),
    ]
}

fn alphabet_of_any_charset(c: char) -> bool {
    u8::try_from(c).is_ok_and(|b| {
        CodeCharset::Base20.alphabet().contains(&b) || CodeCharset::Digits.alphabet().contains(&b)
    })
}

/// A code of `length` characters drawn from `charset`'s alphabet by the real generator.
fn generated_code() -> impl Strategy<Value = UserCode> {
    (
        select(vec![CodeCharset::Base20, CodeCharset::Digits]),
        CodeLength::MIN..=CodeLength::MAX,
    )
        .prop_map(|(charset, length)| {
            UserCode::generate(charset, CodeLength::new(length.into()).unwrap())
        })
}

proptest! {
    #[test]
    fn user_code_normalization_accepts_only_codes_and_is_idempotent(input in hostile()) {
        if let Some(code) = UserCode::normalize(&input) {
            let len = code.as_str().len();
            prop_assert!((usize::from(CodeLength::MIN)..=usize::from(CodeLength::MAX)).contains(&len));
            prop_assert!(code.as_str().chars().all(alphabet_of_any_charset), "{:?}", code.as_str());
            prop_assert_eq!(UserCode::normalize(code.as_str()), Some(code.clone()));
            prop_assert_eq!(UserCode::normalize(&code.display()), Some(code.clone()));
        }
    }

    /// However a person types a shown code back (any case, dashes and spaces anywhere), it is
    /// the code.
    #[test]
    fn generated_codes_survive_every_typed_form(
        code in generated_code(),
        separators in proptest::collection::vec(select(vec!["", "", " ", "-", "--", " - ", "\t", "\u{3000}"]), 13),
        lower in proptest::collection::vec(any::<bool>(), 12),
    ) {
        prop_assert_eq!(UserCode::normalize(code.as_str()), Some(code.clone()));
        let display = code.display();
        prop_assert_eq!(UserCode::normalize(&display), Some(code.clone()));
        prop_assert_eq!(UserCode::normalize(&display.to_lowercase()), Some(code.clone()));
        let mut typed = String::from(separators[12]);
        for (i, c) in code.as_str().chars().enumerate() {
            typed.push(if lower[i] { c.to_ascii_lowercase() } else { c });
            typed.push_str(separators[i]);
        }
        prop_assert_eq!(UserCode::normalize(&typed), Some(code.clone()), "{:?}", typed);
    }

    /// One character that no alphabet has, anywhere in a code, and it is no code.
    #[test]
    fn a_character_outside_the_alphabets_spoils_a_code(
        code in generated_code(),
        at in 0usize..=12,
        intruder in any::<char>().prop_filter("not ignored, not in an alphabet", |c| {
            !c.is_whitespace() && *c != '-' && !alphabet_of_any_charset(c.to_ascii_uppercase())
        }),
    ) {
        let mut chars: Vec<char> = code.as_str().chars().collect();
        chars.insert(at.min(chars.len()), intruder);
        let typed: String = chars.into_iter().collect();
        prop_assert!(UserCode::normalize(&typed).is_none(), "{:?}", typed);
    }

    #[test]
    fn user_codes_have_six_to_twelve_characters(length in 0usize..30) {
        let typed = "B".repeat(length);
        prop_assert_eq!(UserCode::normalize(&typed).is_some(), (6..=12).contains(&length));
    }

    #[test]
    fn slugs_are_dns_labels(input in hostile()) {
        if let Ok(slug) = Slug::parse(&input) {
            prop_assert_eq!(slug.as_str(), input.as_str());
            prop_assert!((1..=63).contains(&input.len()));
            prop_assert!(input.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            prop_assert!(!input.starts_with('-') && !input.ends_with('-'));
        }
    }

    #[test]
    fn every_dns_label_is_a_slug(label in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
        prop_assert_eq!(Slug::parse(&label).unwrap().to_string(), label);
    }

    #[test]
    fn identifiers_refuse_exactly_control_characters(input in hostile()) {
        prop_assert_eq!(identifier("username", &input).is_ok(), !input.chars().any(char::is_control));
    }

    #[test]
    fn client_ids_are_unreserved_url_characters(input in hostile()) {
        if let Ok(id) = ClientId::parse(&input) {
            prop_assert_eq!(id.as_str(), input.as_str());
            prop_assert!((1..=128).contains(&input.len()));
            prop_assert!(input.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        }
    }

    #[test]
    fn every_unreserved_identifier_is_a_client_id(id in "[A-Za-z0-9._~-]{1,128}") {
        prop_assert_eq!(ClientId::parse(&id).unwrap().to_string(), id);
    }

    #[test]
    fn usernames_are_short_and_visible(input in hostile()) {
        if let Ok(username) = Username::parse(&input) {
            prop_assert_eq!(username.as_str(), input.as_str());
            prop_assert!((1..=64).contains(&input.chars().count()));
            prop_assert!(!input.chars().any(|c| c.is_whitespace() || c.is_control()));
        }
    }

    #[test]
    fn every_short_visible_name_is_a_username(name in "[^\\s\\p{Cc}]{1,64}") {
        prop_assert_eq!(Username::parse(&name).unwrap().to_string(), name);
    }

    #[test]
    fn emails_are_trimmed_addresses(input in hostile()) {
        if let Ok(email) = Email::parse(&input) {
            let v = email.as_str();
            prop_assert_eq!(v, input.trim());
            prop_assert!(v.len() <= 254);
            prop_assert!(!v.chars().any(|c| c.is_whitespace() || c.is_control()));
            let (local, domain) = v.split_once('@').unwrap();
            prop_assert!(!local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        }
    }

    #[test]
    fn addresses_parse_as_emails(
        local in "[a-z0-9.+_-]{1,30}",
        domain in "[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?",
        pad in "[ \t\n]{0,3}",
    ) {
        let typed = format!("{pad}{local}@{domain}{pad}");
        prop_assert_eq!(Email::parse(&typed).unwrap().to_string(), format!("{local}@{domain}"));
    }

    #[test]
    fn display_names_are_trimmed_visible_text(input in hostile()) {
        if let Ok(name) = DisplayName::parse("name", &input) {
            prop_assert_eq!(name.as_str(), input.trim());
            prop_assert!((1..=200).contains(&name.as_str().chars().count()));
            prop_assert!(!name.as_str().chars().any(char::is_control));
        }
    }

    #[test]
    fn passwords_are_eight_to_1024_characters(input in hostile(), repeat in 1usize..40) {
        let input = input.repeat(repeat);
        let n = input.chars().count();
        prop_assert_eq!(Password::parse(&input).is_ok(), (8..=1024).contains(&n));
    }

    #[test]
    fn scopes_hold_only_rfc_6749_characters_and_print_back(input in hostile()) {
        if let Ok(scopes) = ScopeSet::parse(&input) {
            for token in scopes.iter() {
                prop_assert!(!token.is_empty() && token.len() <= 128);
                prop_assert!(token.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)));
            }
            prop_assert_eq!(ScopeSet::parse(&scopes.to_string()).unwrap(), scopes.clone());
            prop_assert_eq!(ScopeSet::from_stored(&scopes.to_string()), scopes);
        }
    }

    #[test]
    fn scope_lists_parse_to_their_tokens(tokens in proptest::collection::vec("[!#-\\[\\]-~]{1,20}", 0..8)) {
        let scopes = ScopeSet::parse(&tokens.join(" ")).unwrap();
        prop_assert!(tokens.iter().all(|t| scopes.contains(t)));
        prop_assert!(scopes.iter().all(|s| tokens.iter().any(|t| t == s)));
    }

    #[test]
    fn grant_sets_print_back(names in proptest::collection::vec(hostile(), 0..4)) {
        if let Ok(grants) = GrantSet::parse(names.iter().map(String::as_str)) {
            prop_assert_eq!(GrantSet::from_stored(&grants.to_string()), grants);
        }
    }

    #[test]
    fn setting_words_print_back(input in hostile()) {
        if let Ok(charset) = input.parse::<CodeCharset>() {
            prop_assert_eq!(charset.as_str(), input.as_str());
        }
        if let Ok(access) = input.parse::<Access>() {
            prop_assert_eq!(access.as_str(), input.as_str());
        }
        if let Ok(proximity) = input.parse::<Proximity>() {
            prop_assert_eq!(proximity.as_str(), input.as_str());
        }
    }

    #[test]
    fn numbers_are_checked_against_their_bounds(value in any::<i64>(), max in 1i64..=i64::MAX) {
        prop_assert_eq!(CodeLength::new(value).is_ok(), (6..=12).contains(&value));
        prop_assert_eq!(Seconds::new("ttl", value, max).is_ok(), (1..=max).contains(&value));
    }

    #[test]
    fn redirect_uris_are_absolute_without_fragment(input in prop_oneof![
        hostile(),
        "(https?|com\\.example\\.app|javascript|data)://[a-z0-9.\\[\\]:]{0,20}/[ -~]{0,20}",
    ]) {
        if let Ok(uri) = RedirectUri::parse(&input) {
            let url = url::Url::parse(uri.as_str()).unwrap();
            prop_assert!(url.fragment().is_none());
            prop_assert!(matches!(url.scheme(), "https" | "http") || url.scheme().contains('.'));
        }
    }
}

#[test]
fn generated_client_ids_parse() {
    for _ in 0..100 {
        let id = ClientId::generate();
        assert_eq!(ClientId::parse(id.as_str()).unwrap(), id);
    }
}
