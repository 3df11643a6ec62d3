//! Alpine (apk-tools 2.14 / 3) version ordering:
//! `digit{.digit}...{letter}{_suffix{N}}...{~hash}{-rN}`, where the pre-release suffixes
//! `_alpha` < `_beta` < `_pre` < `_rc` sort before the plain version and `_cvs` < `_svn`
//! < `_git` < `_hg` < `_p` after it; a number with a leading zero compares as a string
//! (`1.05` < `1.5`). Follows apk-tools' tokenizer: each token's kind is told by its first
//! character and must be allowed after the previous kind.
//!
//! A version apk would reject sorts before every valid one (and among the invalid ones,
//! by bytes), which keeps the order total.

use std::cmp::Ordering;

use super::cmp_digits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` is where the plain version sits.
const SUFFIXES: [&str; 10] = [
    "alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p",
];
const NONE: usize = 4;

struct Token<'a> {
    kind: Kind,
    value: &'a str,
    suffix: usize,
}

struct Tokens<'a> {
    rest: &'a str,
    token: Token<'a>,
}

impl<'a> Tokens<'a> {
    fn new(v: &'a str) -> Self {
        let mut t = Tokens {
            rest: v,
            token: Token {
                kind: Kind::InitialDigit,
                value: "",
                suffix: NONE,
            },
        };
        t.digits();
        t
    }

    fn span(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let n = self.rest.bytes().take_while(|&b| accept(b)).count();
        let (value, rest) = self.rest.split_at(n);
        self.rest = rest;
        value
    }

    fn digits(&mut self) {
        self.token.value = self.span(|b| b.is_ascii_digit());
        if self.token.value.is_empty() {
            self.token.kind = Kind::Invalid;
        }
    }

    fn advance(&mut self) {
        let prev = self.token.kind;
        let Some(&c) = self.rest.as_bytes().first() else {
            self.token.kind = Kind::End;
            return;
        };
        let kind = match c {
            b'a'..=b'z' if prev <= Kind::Digit => {
                self.token.value = &self.rest[..1];
                self.rest = &self.rest[1..];
                Kind::Letter
            }
            b'.' | b'0'..=b'9' => {
                if c == b'.' && prev <= Kind::Digit {
                    self.rest = &self.rest[1..];
                } else if c == b'.' {
                    return self.token.kind = Kind::Invalid;
                }
                let kind = match prev {
                    Kind::InitialDigit | Kind::Digit => Kind::Digit,
                    Kind::Suffix => Kind::SuffixNo,
                    _ => return self.token.kind = Kind::Invalid,
                };
                self.token.kind = kind;
                return self.digits();
            }
            b'_' if prev <= Kind::SuffixNo => {
                self.rest = &self.rest[1..];
                let value = self.span(|b| b.is_ascii_lowercase());
                match SUFFIXES.iter().position(|s| *s == value && !s.is_empty()) {
                    Some(rank) => {
                        self.token.value = value;
                        self.token.suffix = rank;
                        Kind::Suffix
                    }
                    None => Kind::Invalid,
                }
            }
            b'~' if prev < Kind::CommitHash => {
                self.rest = &self.rest[1..];
                self.token.value = self.span(|b| b.is_ascii_hexdigit());
                if self.token.value.is_empty() {
                    Kind::Invalid
                } else {
                    Kind::CommitHash
                }
            }
            b'-' if prev < Kind::RevisionNo && self.rest.starts_with("-r") => {
                self.rest = &self.rest[2..];
                self.token.kind = Kind::RevisionNo;
                return self.digits();
            }
            _ => Kind::Invalid,
        };
        self.token.kind = kind;
    }
}

/// Compares two tokens of the same kind.
fn cmp_token(a: &Token, b: &Token) -> Ordering {
    match a.kind {
        Kind::Digit if a.value.starts_with('0') || b.value.starts_with('0') => a.value.cmp(b.value),
        Kind::InitialDigit | Kind::Digit | Kind::SuffixNo | Kind::RevisionNo => {
            cmp_digits(a.value, b.value)
        }
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.value.cmp(b.value),
    }
}

/// apk's own validity rule: the whole string tokenizes to the end.
pub fn is_valid(v: &str) -> bool {
    let mut t = Tokens::new(v);
    while t.token.kind < Kind::End {
        t.advance();
    }
    t.token.kind == Kind::End
}

pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim(), b.trim());
    match (is_valid(a), is_valid(b)) {
        (true, true) => compare_valid(a, b),
        (va, vb) => va.cmp(&vb).then_with(|| a.cmp(b)),
    }
}

fn compare_valid(a: &str, b: &str) -> Ordering {
    let (mut ta, mut tb) = (Tokens::new(a), Tokens::new(b));
    while ta.token.kind == tb.token.kind && ta.token.kind < Kind::End {
        let o = cmp_token(&ta.token, &tb.token);
        if o.is_ne() {
            return o;
        }
        ta.advance();
        tb.advance();
    }
    let (ka, kb) = (ta.token.kind, tb.token.kind);
    if ka == kb {
        return Ordering::Equal;
    }
    // Equal so far: the longer version is greater, unless what follows is a
    // pre-release suffix.
    if ka == Kind::Suffix && ta.token.suffix < NONE {
        return Ordering::Less;
    }
    if kb == Kind::Suffix && tb.token.suffix < NONE {
        return Ordering::Greater;
    }
    kb.cmp(&ka)
}

#[cfg(test)]
mod tests {
    use super::{compare, is_valid};
    use std::cmp::Ordering::*;

    #[test]
    fn published_edge_cases() {
        // After apk-tools' test/version.data.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-r0", Less),
            ("1.0-r0", "1.0-r1", Less),
            ("1.0-r9", "1.0-r10", Less),
            ("1.0_alpha", "1.0_beta", Less),
            ("1.0_beta", "1.0_pre", Less),
            ("1.0_pre", "1.0_rc", Less),
            ("1.0_rc", "1.0", Less),
            ("1.0_rc1", "1.0_rc2", Less),
            ("1.0", "1.0_p1", Less),
            ("1.0_p1", "1.0.1", Less),
            ("1.0_cvs", "1.0_svn", Less),
            ("1.0_git", "1.0_hg", Less),
            ("1.0_hg", "1.0_p", Less),
            ("1.0a", "1.0b", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0.1", Less),
            ("1.05", "1.5", Less),
            ("1.001", "1.01", Less),
            (
                "1.0_git20230101~abc123-r0",
                "1.0_git20230101~abc124-r0",
                Less,
            ),
            ("1.0~abc", "1.0", Greater),
            ("1.2.13-r1", "1.2.13-r0", Greater),
            ("3.1.0-r4", "3.1.4-r0", Less),
            ("1.36.0-r9", "1.36.1-r0", Less),
            ("2.14.0-r0", "2.14.0_rc1-r0", Greater),
            ("0.7.2-r5", "0.7.2", Greater),
            ("20230506-r0", "20230506-r1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
        assert!(!is_valid("1.0_foo"));
        assert!(!is_valid("abc"));
        assert!(compare("garbage", "0.1") == Less);
    }
}
