//! Every comparator on arbitrary strings: no panic, and an order (antisymmetric).
#![no_main]

use bulwark_scanner::version::Scheme;
use libfuzzer_sys::fuzz_target;

const SCHEMES: [Scheme; 6] = [
    Scheme::Dpkg,
    Scheme::Apk,
    Scheme::Rpm,
    Scheme::Pep440,
    Scheme::Semver,
    Scheme::Maven,
];

fuzz_target!(|input: (&str, &str)| {
    let (a, b) = input;
    for s in SCHEMES {
        assert_eq!(s.compare(a, b), s.compare(b, a).reverse());
    }
});
