//! Whatever text arrives, `parse` answers with a config or with one line
//! per problem, and never panics.

use baton_config::{parse, EXAMPLE};
use proptest::prelude::*;

/// Checks the contract of one `parse` call on `text`.
fn parse_keeps_its_contract(text: &str) -> Result<(), TestCaseError> {
    match parse(text, "fuzz.toml") {
        Ok(c) => {
            // Anything accepted must survive being written back out.
            let again = parse(&c.to_toml(), "fuzz.toml");
            prop_assert_eq!(again.as_ref().ok(), Some(&c), "{:?}", again.as_ref().err());
        }
        Err(e) => {
            prop_assert!(!e.problems.is_empty());
            let shown = e.to_string();
            let lines: Vec<&str> = shown.lines().collect();
            prop_assert_eq!(lines.len(), e.problems.len(), "{}", shown);
            for line in lines {
                prop_assert!(line.starts_with("fuzz.toml"), "{}", line);
            }
        }
    }
    Ok(())
}

/// Characters that matter to TOML's grammar, and a few that do not.
const PIECES: &[&str] = &[
    "[", "]", "[[", "]]", "\"", "'", "=", "\n", ",", ".", "{", "}", "#", "0", "-1", "1e9", "x",
    "true", " ", "\\", "\"\"\"", "é", "\u{0}", "\r",
];

/// One edit of a valid file: insert a piece, delete a span, or drop or
/// repeat a line.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    DropLine(usize),
    RepeatLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..PIECES.len()).prop_map(|(at, p)| Edit::Insert(at, p)),
        (any::<usize>(), 1usize..12).prop_map(|(at, n)| Edit::Delete(at, n)),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::RepeatLine),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let lines: Vec<&str> = text.lines().collect();
    match *edit {
        Edit::Insert(at, p) => {
            let at = at % (chars.len() + 1);
            let mut out: String = chars[..at].iter().collect();
            out.push_str(PIECES[p]);
            out.extend(&chars[at..]);
            out
        }
        Edit::Delete(at, n) => {
            let at = at % (chars.len() + 1);
            let end = (at + n).min(chars.len());
            chars[..at].iter().chain(&chars[end..]).collect()
        }
        Edit::DropLine(i) if !lines.is_empty() => {
            let i = i % lines.len();
            let mut kept = lines.clone();
            kept.remove(i);
            kept.join("\n")
        }
        Edit::RepeatLine(i) if !lines.is_empty() => {
            let i = i % lines.len();
            let mut more = lines.clone();
            more.insert(i, lines[i]);
            more.join("\n")
        }
        _ => text.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        parse_keeps_its_contract(&text)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        parse_keeps_its_contract(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn edited_example_never_panics(edits in proptest::collection::vec(edit(), 1..6)) {
        let mut text = EXAMPLE.to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        parse_keeps_its_contract(&text)?;
    }
}
