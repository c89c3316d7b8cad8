//! Target `config_file`: the box's configuration file (`baton_config::parse`)
//! and the byte sizes it reads: whatever an operator's editor leaves in the
//! file, the answer is a configuration or an error naming the line, never
//! a panic. Seeds are the example file and variants of it.

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = baton_config::parse(text, "fuzz.toml") {
        // A file that parses writes back to one that parses the same.
        let again = baton_config::parse(&c.to_toml(), "again.toml")
            .unwrap_or_else(|e| panic!("a parsed config does not parse back: {e}"));
        assert_eq!(again, c, "a config changed on its way through to_toml");
    }
    for word in text.split_whitespace().take(64) {
        let _ = baton_config::parse_byte_size(word);
    }
}

/// Seeds: the example file, and it with each of a few keys broken.
pub fn seeds(example: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("example".to_string(), example.as_bytes().to_vec())];
    for (i, (from, to)) in [
        ("[cluster]", "[cluster"),
        ("port = ", "port = -"),
        ("= \"", "= \"\\u{d800}"),
        ("\n[", "\n[[x]]\n["),
    ]
    .iter()
    .enumerate()
    {
        out.push((
            format!("broken-{i}"),
            example.replacen(from, to, 1).into_bytes(),
        ));
    }
    out
}
