//! Semantic Versioning 2.0 ordering (npm, crates.io, Go modules), read leniently: a `v`
//! prefix and missing minor/patch (`1.2` = `1.2.0`) are accepted, build metadata is
//! ignored. Unparsable versions sort before all valid ones.

use std::cmp::Ordering;

use super::cmp_digits;

struct Version<'a> {
    core: [&'a str; 3],
    pre: Option<&'a str>,
}

fn parse(v: &str) -> Option<Version<'_>> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let v = v.split_once('+').map_or(v, |(v, _)| v);
    let (core, pre) = match v.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (v, None),
    };
    let mut parts = core.split('.');
    let mut numbers = ["0"; 3];
    for (i, n) in numbers.iter_mut().enumerate() {
        match parts.next() {
            Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => *n = p,
            None if i > 0 => {}
            _ => return None,
        }
    }
    if parts.next().is_some() || pre.is_some_and(|p| p.split('.').any(str::is_empty)) {
        return None;
    }
    Some(Version { core: numbers, pre })
}

pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => (0..3)
            .map(|i| cmp_digits(a.core[i], b.core[i]))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| cmp_pre(a.pre, b.pre)),
        (va, vb) => va.is_some().cmp(&vb.is_some()).then_with(|| a.cmp(b)),
    }
}

/// A release is above its pre-releases; identifiers compare numerically when both are
/// numbers, numbers below words, and a longer list above its prefix.
fn cmp_pre(a: Option<&str>, b: Option<&str>) -> Ordering {
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Greater,
        (Some(_), None) => return Ordering::Less,
        (Some(a), Some(b)) => (a, b),
    };
    let numeric = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    let mut ai = a.split('.');
    let mut bi = b.split('.');
    loop {
        let o = match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match (numeric(x), numeric(y)) {
                (true, true) => cmp_digits(x, y),
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => x.cmp(y),
            },
        };
        if o.is_ne() {
            return o;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::*;

    #[test]
    fn published_edge_cases() {
        // The precedence example of semver.org §11, each strictly below the next.
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(w[0], w[1]), Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(w[1], w[0]), Greater);
        }
        assert_eq!(compare("1.0.0+build.1", "1.0.0+build.2"), Equal);
        assert_eq!(compare("v1.2", "1.2.0"), Equal);
        assert_eq!(compare("4.17.20", "4.17.21"), Less);
        assert_eq!(compare("1.10.0", "1.9.0"), Greater);
        assert_eq!(
            compare("v0.0.0-20210101000000-abcdef123456", "v0.0.0"),
            Less
        );
        assert_eq!(compare("garbage", "0.0.1"), Less);
    }
}
