//! Reading the boxes' log files: their lines carry terminal colour codes
//! (the boxes log with ANSI colours), which a test or a benchmark strips
//! before it looks for a field.

/// `line` without its terminal colour codes (ESC [ … m).
pub fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (false, c) => plain.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_go_and_the_text_stays() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m restored=5"),
            "2026  INFO restored=5"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
