//! Maven version ordering, after Maven's `ComparableVersion`: versions split into numbers
//! and qualifiers at `.`, `-` and digit/letter boundaries, `-` and boundaries opening a
//! sub-list; qualifiers rank `alpha` < `beta` < `milestone` < `rc` = `cr` < `snapshot` <
//! release (`""`, `ga`, `final`, `release`) < `sp` < anything else (alphabetically);
//! trailing zeros and release qualifiers do not count (`1.0` = `1` = `1-ga`). One deviation:
//! a sub-list against a qualifier compares by the list's first item, where Maven ranks the
//! list higher outright, which makes Maven's order intransitive on odd inputs.

use std::cmp::Ordering;

use super::cmp_digits;

#[derive(Debug)]
enum Item {
    Int(String),
    Str(String),
    List(Vec<Item>),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
/// The rank of a release ("" in `QUALIFIERS`).
const RELEASE: &str = "5";

fn qualifier_rank(q: &str) -> String {
    QUALIFIERS
        .iter()
        .position(|k| *k == q)
        .map_or_else(|| format!("7-{q}"), |i| i.to_string())
}

fn string_item(s: &str, followed_by_digit: bool) -> Item {
    let s = match s {
        "a" if followed_by_digit => "alpha",
        "b" if followed_by_digit => "beta",
        "m" if followed_by_digit => "milestone",
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        s => s,
    };
    Item::Str(s.to_string())
}

fn parse_item(s: &str, digits: bool) -> Item {
    if digits {
        Item::Int(s.trim_start_matches('0').to_string())
    } else {
        string_item(s, false)
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Int(n) => n.is_empty(),
            Item::Str(s) => s.is_empty(),
            Item::List(l) => l.is_empty(),
        }
    }

    /// Compares with another item, `None` standing for a missing one (padding).
    fn cmp_to(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Int(n), None) => (!n.is_empty()).cmp(&false),
            (Item::Int(a), Some(Item::Int(b))) => cmp_digits(a, b),
            (Item::Int(_), Some(_)) => Ordering::Greater,
            (Item::Str(s), None) => qualifier_rank(s).as_str().cmp(RELEASE),
            (Item::Str(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::Str(a), Some(Item::Str(b))) => qualifier_rank(a).cmp(&qualifier_rank(b)),
            (Item::Str(_), Some(l @ Item::List(_))) => l.cmp_to(Some(self)).reverse(),
            // The whole list against padding, not only its first item (Maven's MNG-6964):
            // looking at the first alone breaks transitivity.
            (Item::List(l), None) => l
                .iter()
                .map(|i| i.cmp_to(None))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal),
            (Item::List(_), Some(Item::Int(_))) => Ordering::Less,
            // Maven ranks any list above any qualifier, which is not transitive once lists
            // compare with padding by content ("sp" < "-alpha" < "-" < "sp"); comparing the
            // list's first item keeps `1-1` > `1-sp` and makes the order total.
            (Item::List(l), Some(s @ Item::Str(_))) => match l.first() {
                Some(first) => first.cmp_to(Some(s)),
                None => s.cmp_to(None).reverse(),
            },
            (Item::List(a), Some(Item::List(b))) => {
                for i in 0..a.len().max(b.len()) {
                    let o = match (a.get(i), b.get(i)) {
                        (Some(x), y) => x.cmp_to(y),
                        (None, Some(y)) => y.cmp_to(None).reverse(),
                        (None, None) => Ordering::Equal,
                    };
                    if o.is_ne() {
                        return o;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

/// Drops trailing null items, looking past non-null sub-lists as Maven does.
fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

fn parse(version: &str) -> Item {
    let v = version.trim().to_ascii_lowercase();
    // The open lists, innermost last; each is attached to its parent when closed.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let mut digits = false;
    let mut start = 0;
    let bytes = v.as_bytes();
    let open = |stack: &mut Vec<Vec<Item>>| stack.push(Vec::new());
    for (i, &c) in bytes.iter().enumerate() {
        let top = stack.len() - 1;
        match c {
            b'.' | b'-' => {
                let item = if i == start {
                    Item::Int(String::new())
                } else {
                    parse_item(&v[start..i], digits)
                };
                stack[top].push(item);
                start = i + 1;
                if c == b'-' {
                    open(&mut stack);
                }
            }
            c if c.is_ascii_digit() => {
                if !digits && i > start {
                    stack[top].push(string_item(&v[start..i], true));
                    start = i;
                    open(&mut stack);
                }
                digits = true;
            }
            _ => {
                if digits && i > start {
                    stack[top].push(parse_item(&v[start..i], true));
                    start = i;
                    open(&mut stack);
                }
                digits = false;
            }
        }
    }
    if v.len() > start {
        // A trailing qualifier after `.` counts as after `-` (`1.0.X` < `1.0-Y`).
        if !digits && !stack[stack.len() - 1].is_empty() {
            open(&mut stack);
        }
        let top = stack.len() - 1;
        stack[top].push(parse_item(&v[start..], digits));
    }
    while stack.len() > 1 {
        let mut list = stack.pop().unwrap_or_default();
        normalize(&mut list);
        if let Some(parent) = stack.last_mut() {
            parent.push(Item::List(list));
        }
    }
    let mut root = stack.pop().unwrap_or_default();
    normalize(&mut root);
    Item::List(root)
}

pub fn compare(a: &str, b: &str) -> Ordering {
    parse(a).cmp_to(Some(&parse(b)))
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::*;

    #[test]
    fn published_edge_cases() {
        // From Maven's ComparableVersionTest (VERSIONS_QUALIFIER, VERSIONS_NUMBER).
        let qualifiers = [
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
        ];
        let numbers = [
            "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
            "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11",
            "11", "11.a", "11b", "11c", "11m",
        ];
        for list in [&qualifiers[..], &numbers[..]] {
            for w in list.windows(2) {
                assert_eq!(compare(w[0], w[1]), Less, "{} < {}", w[0], w[1]);
                assert_eq!(compare(w[1], w[0]), Greater, "{} > {}", w[1], w[0]);
            }
        }
        for (a, b) in [
            ("1", "1.0.0"),
            ("1", "1-ga"),
            ("1", "1.final"),
            ("1-cr1", "1-rc1"),
            ("1a1", "1-alpha-1"),
            ("1x", "1-x"),
            ("1.0.0-RELEASE", "1"),
        ] {
            assert_eq!(compare(a, b), Equal, "{a} == {b}");
        }
    }
}
