//! Debian version ordering, as dpkg's `verrevcmp`: `[epoch:]upstream[-revision]`, where
//! `~` sorts before everything (even the end of the string), letters before other
//! characters, and digit runs compare as numbers.
//!
//! Written here rather than taken from `debversion`: that crate ranks an empty digit run
//! below `0` (`1.0` > `1.`, where dpkg says equal) and brings regex and big integers.

use std::cmp::Ordering;

use super::cmp_digits;

pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a.trim());
    let (eb, ub, rb) = split(b.trim());
    cmp_digits(ea, eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

/// (epoch digits, upstream, revision). A missing or non-numeric epoch is 0.
fn split(v: &str) -> (&str, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (e, rest),
        _ => ("0", v),
    };
    let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
    (epoch, upstream, revision)
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(mut a: &[u8], mut b: &[u8]) -> Ordering {
    let digit = |s: &[u8]| s.first().is_some_and(u8::is_ascii_digit);
    while !a.is_empty() || !b.is_empty() {
        while (!a.is_empty() && !digit(a)) || (!b.is_empty() && !digit(b)) {
            let (ac, bc) = (order(a.first().copied()), order(b.first().copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            a = &a[1.min(a.len())..];
            b = &b[1.min(b.len())..];
        }
        let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let ord = cmp_digits(
            std::str::from_utf8(&a[..da]).unwrap_or("0"),
            std::str::from_utf8(&b[..db]).unwrap_or("0"),
        );
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[da..];
        b = &b[db..];
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::*;

    #[test]
    fn published_edge_cases() {
        // From dpkg's own test suite (t_verrevcmp) and Debian Policy §5.6.12.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1:1.0", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~~a", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.", Less),
            ("1.0", "1.", Equal),
            ("1.01", "1.1", Equal),
            ("1.2", "1.10", Less),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("1.2.3-1", "1.2.3-1+b1", Less),
            ("1:4.13+dfsg1-1+deb12u1", "1:4.13+dfsg1-1", Greater),
            ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Less),
            ("2.0-1", "2.0~beta-1", Greater),
            (
                "99999999999999999999999",
                "99999999999999999999998",
                Greater,
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
