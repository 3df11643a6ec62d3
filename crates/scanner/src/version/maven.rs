//! Maven version ordering, after Maven's `ComparableVersion`: versions split into numbers
//! and qualifiers at `.`, `-` and digit/letter boundaries, `-` and boundaries opening a
//! sub-list; qualifiers rank `alpha` < `beta` < `milestone` < `rc` = `cr` < `snapshot` <
//! release (`""`, `ga`, `final`, `release`) < `sp` < anything else (alphabetically);
//! trailing zeros and release qualifiers do not count (`1.0` = `1` = `1-ga`).
//!
//! Maven compares item by item, and its rules are not transitive on odd inputs: a zero
//! equals the padding of a shorter version yet ranks above every qualifier and sub-list,
//! while the padding ranks below `sp` (`p` < `.alpha0` < `-` < `p`). Here each position
//! of the flattened version gets a key whose first part is how the rest of the version
//! compares with padding; versions then compare key by key. A lexicographic order over
//! totally ordered keys is transitive by construction, and where Maven is consistent —
//! every case its own test suite lists — the answers are Maven's.

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
}

/// A number without leading zeros, ordered by value.
#[derive(Debug, PartialEq, Eq)]
struct Number(String);

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_digits(&self.0, &other.0)
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What one item is worth against another at the same position, declared from lowest to
/// highest: Maven ranks numbers above sub-lists above qualifiers. A sub-list is known by
/// its first item and how deep it opens (`opens`).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Worth {
    /// A qualifier, or a sub-list starting with one: by rank, a sub-list above the bare
    /// qualifier (`1-sp-1` > `1.sp1`).
    Qualifier {
        rank: String,
        opens: usize,
    },
    /// A sub-list starting with a number: a deeper one is lower (`1--1` < `1-1`).
    ListNumber {
        opens: std::cmp::Reverse<usize>,
        number: Number,
    },
    Number(Number),
}

/// One position of a flattened version: how the rest of the version from here compares
/// with padding, then what the item is worth. Padding itself is `Key::PAD`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    against_padding: Ordering,
    worth: Option<Worth>,
}

impl Key {
    const PAD: Key = Key {
        against_padding: Ordering::Equal,
        worth: None,
    };
}

/// The version's items in order, each as how it compares with padding on its own and
/// what it is worth, given the number of sub-lists opening right before it. A sub-list is
/// always its parent's last item, so flattening loses nothing.
fn flatten(list: Vec<Item>, mut opens: usize, out: &mut Vec<(Ordering, Worth)>) {
    for item in list {
        match item {
            Item::List(inner) => flatten(inner, opens + 1, out),
            Item::Int(n) => {
                let own = (!n.is_empty()).cmp(&false);
                let number = Number(n);
                out.push(if opens == 0 {
                    (own, Worth::Number(number))
                } else {
                    let opens = std::cmp::Reverse(opens);
                    (own, Worth::ListNumber { opens, number })
                });
            }
            Item::Str(q) => {
                let rank = qualifier_rank(&q);
                out.push((rank.as_str().cmp(RELEASE), Worth::Qualifier { rank, opens }));
            }
        }
        opens = 0;
    }
}

fn keys(version: &str) -> Vec<Key> {
    let mut items = Vec::new();
    flatten(parse(version), 0, &mut items);
    // From the end: how the rest compares with padding is decided by its first item that
    // does not equal padding (a zero or a release qualifier does).
    let mut rest = Ordering::Equal;
    let mut keys: Vec<Key> = items
        .into_iter()
        .rev()
        .map(|(own, worth)| {
            if own.is_ne() {
                rest = own;
            }
            // Whatever equals padding is padding, whatever it is worth otherwise.
            Key {
                against_padding: rest,
                worth: rest.is_ne().then_some(worth),
            }
        })
        .collect();
    keys.reverse();
    keys
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

/// The version's items; sub-lists are nested as `Item::List`.
fn parse(version: &str) -> Vec<Item> {
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
    root
}

pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (keys(a), keys(b));
    (0..a.len().max(b.len()))
        .map(|i| {
            a.get(i)
                .unwrap_or(&Key::PAD)
                .cmp(b.get(i).unwrap_or(&Key::PAD))
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
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
