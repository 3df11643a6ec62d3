//! PEP 440 (Python) version ordering: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`,
//! with the spec's normalizations (case, `v` prefix, `-`/`_`/`.` separators, `alpha` →
//! `a`, `c`/`pre`/`preview` → `rc`, `rev`/`r` → post, `1.0-1` as a post-release, implicit
//! 0 numbers). Unparsable versions sort before all valid ones, as `packaging`'s legacy
//! versions did, which keeps the order total.

use std::cmp::Ordering;

use super::cmp_digits;

#[derive(Debug, PartialEq, Eq)]
struct Version<'a> {
    epoch: &'a str,
    release: Vec<&'a str>,
    pre: Option<(u8, &'a str)>,
    post: Option<&'a str>,
    dev: Option<&'a str>,
    local: Vec<String>,
}

pub fn compare(a: &str, b: &str) -> Ordering {
    let (la, lb) = (a.trim().to_ascii_lowercase(), b.trim().to_ascii_lowercase());
    match (parse(&la), parse(&lb)) {
        (Some(va), Some(vb)) => compare_parsed(&va, &vb),
        (va, vb) => va.is_some().cmp(&vb.is_some()).then_with(|| la.cmp(&lb)),
    }
}

fn compare_parsed(a: &Version, b: &Version) -> Ordering {
    cmp_digits(a.epoch, b.epoch)
        .then_with(|| cmp_release(&a.release, &b.release))
        .then_with(|| cmp_pre(a, b))
        .then_with(|| cmp_opt(a.post, b.post, Ordering::Less))
        .then_with(|| cmp_opt(a.dev, b.dev, Ordering::Greater))
        .then_with(|| cmp_local(&a.local, &b.local))
}

/// Trailing zeros do not count: 1.0 == 1.0.0.
fn cmp_release(a: &[&str], b: &[&str]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            cmp_digits(
                a.get(i).copied().unwrap_or("0"),
                b.get(i).copied().unwrap_or("0"),
            )
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A dev release of a final version (1.0.dev1) sorts before its pre-releases; a final or
/// post release after them.
fn cmp_pre(a: &Version, b: &Version) -> Ordering {
    let key = |v: &Version| match v.pre {
        Some((rank, _)) => (0, rank),
        None if v.post.is_none() && v.dev.is_some() => (-1, 0),
        None => (1, 0),
    };
    key(a).cmp(&key(b)).then_with(|| match (a.pre, b.pre) {
        (Some((_, x)), Some((_, y))) => cmp_digits(x, y),
        _ => Ordering::Equal,
    })
}

/// `absent` is how a missing part compares to a present one.
fn cmp_opt(a: Option<&str>, b: Option<&str>, absent: Ordering) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => cmp_digits(a, b),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => absent,
        (Some(_), None) => absent.reverse(),
    }
}

/// Local segments: numbers above strings, more segments above fewer.
fn cmp_local(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let xn = x.bytes().all(|c| c.is_ascii_digit());
        let yn = y.bytes().all(|c| c.is_ascii_digit());
        let o = match (xn, yn) {
            (true, true) => cmp_digits(x, y),
            (false, false) => x.cmp(y),
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
        };
        if o.is_ne() {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Parses a lowercased version; `None` when PEP 440 does not accept it.
fn parse(s: &str) -> Option<Version<'_>> {
    let s = s.strip_prefix('v').unwrap_or(s);
    let (s, local) = match s.split_once('+') {
        Some((v, local)) => {
            let parts: Vec<String> = local.split(['.', '-', '_']).map(str::to_string).collect();
            if parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|c| c.is_ascii_alphanumeric()))
            {
                return None;
            }
            (v, parts)
        }
        None => (s, Vec::new()),
    };
    let mut p = Cursor { s };
    let first = p.digits()?;
    let (epoch, first) = if p.eat("!") {
        (first, p.digits()?)
    } else {
        ("0", first)
    };
    let mut release = vec![first];
    while p.s.starts_with('.') && p.s[1..].starts_with(|c: char| c.is_ascii_digit()) {
        p.eat(".");
        release.push(p.digits()?);
    }
    let mut version = Version {
        epoch,
        release,
        pre: None,
        post: None,
        dev: None,
        local,
    };
    let labels: [(&str, u8); 7] = [
        ("alpha", 0),
        ("a", 0),
        ("beta", 1),
        ("b", 1),
        ("preview", 2),
        ("pre", 2),
        ("rc", 2),
    ];
    let save = p.s;
    p.sep();
    match labels
        .iter()
        .find(|(l, _)| p.s.starts_with(l))
        .or_else(|| p.s.starts_with('c').then_some(&("c", 2)))
    {
        Some((label, rank)) => {
            p.s = &p.s[label.len()..];
            p.sep();
            version.pre = Some((*rank, p.digits().unwrap_or("0")));
        }
        None => p.s = save,
    }
    let save = p.s;
    if p.s.starts_with('-') && p.s[1..].starts_with(|c: char| c.is_ascii_digit()) {
        p.eat("-");
        version.post = p.digits();
    } else {
        p.sep();
        match ["post", "rev", "r"].iter().find(|l| p.s.starts_with(*l)) {
            Some(label) => {
                p.s = &p.s[label.len()..];
                p.sep();
                version.post = Some(p.digits().unwrap_or("0"));
            }
            None => p.s = save,
        }
    }
    let save = p.s;
    p.sep();
    if p.eat("dev") {
        p.sep();
        version.dev = Some(p.digits().unwrap_or("0"));
    } else {
        p.s = save;
    }
    p.s.is_empty().then_some(version)
}

struct Cursor<'a> {
    s: &'a str,
}

impl<'a> Cursor<'a> {
    fn digits(&mut self) -> Option<&'a str> {
        let n = self.s.bytes().take_while(u8::is_ascii_digit).count();
        let (d, rest) = self.s.split_at(n);
        self.s = rest;
        (n > 0).then_some(d)
    }
    fn eat(&mut self, t: &str) -> bool {
        match self.s.strip_prefix(t) {
            Some(rest) => {
                self.s = rest;
                true
            }
            None => false,
        }
    }
    fn sep(&mut self) {
        if self.s.starts_with(['.', '-', '_']) {
            self.s = &self.s[1..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::*;

    #[test]
    fn published_edge_cases() {
        // The ordering example of PEP 440 ("Summary of permitted suffixes and relative
        // ordering"), each strictly below the next.
        let ordered = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(w[0], w[1]), Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(w[1], w[0]), Greater, "{} > {}", w[1], w[0]);
        }
        let equal = [
            ("1.0", "1.0.0"),
            ("1.0", "v1.0"),
            ("1!1.0", "1!1.0.0"),
            ("1.0a1", "1.0alpha1"),
            ("1.0c1", "1.0rc1"),
            ("1.0-pre1", "1.0rc1"),
            ("1.0.post1", "1.0-1"),
            ("1.0-r1", "1.0.post1"),
            ("1.0.dev0", "1.0-dev"),
            ("1.0RC1", "1.0rc1"),
            ("1.0a01", "1.0a1"),
        ];
        for (a, b) in equal {
            assert_eq!(compare(a, b), Equal, "{a} == {b}");
        }
        assert_eq!(compare("1!0.1", "2.0"), Greater);
        assert_eq!(compare("2.11.2", "2.11.3"), Less);
        assert_eq!(compare("1.26.4", "1.26.18"), Less);
        assert_eq!(compare("not a version", "0.0.1"), Less);
    }
}
