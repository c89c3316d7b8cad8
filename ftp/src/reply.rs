//! FTP replies (RFC 959 §4.2): a three-digit code and text, single or
//! multi-line, as the bytes sent on the control connection. Knows nothing
//! of which command produced them.

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Lines of text; more than one makes a multi-line reply.
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: `code-first`, middle lines indented by one space
    /// (so none can be mistaken for the end), `code last`.
    pub fn multi(code: u16, lines: Vec<String>) -> Self {
        Reply { code, lines }
    }

    /// The wire bytes. Text never carries CR or LF: they are replaced so
    /// that a name from the catalog cannot inject a reply.
    pub fn to_bytes(&self) -> Vec<u8> {
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        let mut out = String::new();
        match self.lines.len() {
            0 => out.push_str(&format!("{} \r\n", self.code)),
            1 => out.push_str(&format!("{} {}\r\n", self.code, clean(&self.lines[0]))),
            n => {
                out.push_str(&format!("{}-{}\r\n", self.code, clean(&self.lines[0])));
                for l in &self.lines[1..n - 1] {
                    out.push_str(&format!(" {}\r\n", clean(l)));
                }
                out.push_str(&format!("{} {}\r\n", self.code, clean(&self.lines[n - 1])));
            }
        }
        out.into_bytes()
    }
}
