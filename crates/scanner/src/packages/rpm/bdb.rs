//! BerkeleyDB `Packages`: a hash database whose values (the header blobs) sit in chains
//! of overflow pages. Read as rpm's own read-only backend (`bdb_ro`) does: every hash
//! page's key/value index pairs, each value an off-page reference.
//!
//! Every offset comes from the file: all are bounds-checked, and overflow chains are
//! cut at the number of pages so that a cycle cannot loop forever.

const HASH_MAGIC: u32 = 0x0006_1561;
const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_HASH: u8 = 13;
const P_OVERFLOW: u8 = 7;
const H_OFFPAGE: u8 = 3;

struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    big_endian: bool,
}

impl<'a> Db<'a> {
    fn u32_at(&self, b: &[u8], at: usize) -> Option<u32> {
        let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        })
    }

    fn u16_at(&self, b: &[u8], at: usize) -> Option<u16> {
        let w: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(w)
        } else {
            u16::from_le_bytes(w)
        })
    }

    fn page(&self, n: u32) -> Option<&'a [u8]> {
        let start = (n as usize).checked_mul(self.page_size)?;
        self.data.get(start..start.checked_add(self.page_size)?)
    }

    fn pages(&self) -> u32 {
        (self.data.len() / self.page_size) as u32
    }

    /// The value an off-page entry points to: the overflow chain's bytes, joined.
    fn overflow(&self, mut pgno: u32, total: usize) -> Result<Vec<u8>, String> {
        let mut value = Vec::with_capacity(total.min(self.data.len()));
        for _ in 0..self.pages() {
            if pgno == 0 {
                return Ok(value);
            }
            let page = self.page(pgno).ok_or("overflow page out of file")?;
            if page[25] != P_OVERFLOW {
                return Err("off-page value in a non-overflow page".into());
            }
            let next = self.u32_at(page, 16).ok_or("short page")?;
            // On overflow pages the free-area offset holds the bytes used.
            let used = self.u16_at(page, 22).ok_or("short page")? as usize;
            let bytes = page
                .get(PAGE_HEADER..PAGE_HEADER + used)
                .ok_or("overflow length past the page")?;
            value.extend_from_slice(bytes);
            pgno = next;
        }
        Err("overflow chain loops".into())
    }
}

pub(super) fn blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let magic = data.get(12..16).ok_or("not a BerkeleyDB file")?;
    let big_endian = match u32::from_le_bytes(magic.try_into().map_err(|_| "short")?) {
        HASH_MAGIC => false,
        m if m.swap_bytes() == HASH_MAGIC => true,
        _ => return Err("not a BerkeleyDB hash database".into()),
    };
    let mut db = Db {
        data,
        page_size: 0,
        big_endian,
    };
    db.page_size = db.u32_at(data, 20).ok_or("short metadata page")? as usize;
    if !(512..=65536).contains(&db.page_size) || !db.page_size.is_power_of_two() {
        return Err("invalid page size".into());
    }
    let mut blobs = Vec::new();
    for n in 1..db.pages() {
        let Some(page) = db.page(n) else { break };
        if !matches!(page[25], P_HASH | P_HASH_UNSORTED) {
            continue;
        }
        let entries = db.u16_at(page, 20).ok_or("short page")? as usize;
        // Index entries come in (key, value) pairs; the values are what we want.
        for pair in 0..entries / 2 {
            let at = db
                .u16_at(page, PAGE_HEADER + (pair * 2 + 1) * 2)
                .ok_or("hash index past the page")? as usize;
            let item = page.get(at..at + 12).ok_or("hash item past the page")?;
            if item[0] != H_OFFPAGE {
                continue; // a value small enough to be on-page is no header blob
            }
            let pgno = db.u32_at(item, 4).ok_or("short item")?;
            let len = db.u32_at(item, 8).ok_or("short item")? as usize;
            blobs.push(db.overflow(pgno, len)?);
        }
    }
    Ok(blobs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A little-endian hash database of 4 KiB pages holding `values`, each split over
    /// two overflow pages.
    pub(crate) fn database(values: &[Vec<u8>]) -> Vec<u8> {
        const PS: usize = 4096;
        let pages = 2 + values.len() * 2;
        let mut db = vec![0u8; PS * pages];
        db[12..16].copy_from_slice(&HASH_MAGIC.to_le_bytes());
        db[20..24].copy_from_slice(&(PS as u32).to_le_bytes());
        db[32..36].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        let hash = PS;
        db[hash + 25] = P_HASH;
        db[hash + 20..hash + 22].copy_from_slice(&((values.len() * 2) as u16).to_le_bytes());
        for (i, value) in values.iter().enumerate() {
            let item = 2048 + i * 16;
            let first = (2 + i * 2) as u32;
            let index = hash + PAGE_HEADER + (i * 2 + 1) * 2;
            db[index..index + 2].copy_from_slice(&(item as u16).to_le_bytes());
            db[hash + item] = H_OFFPAGE;
            db[hash + item + 4..hash + item + 8].copy_from_slice(&first.to_le_bytes());
            db[hash + item + 8..hash + item + 12]
                .copy_from_slice(&(value.len() as u32).to_le_bytes());
            let (a, b) = value.split_at(value.len() / 2);
            for (k, part) in [a, b].into_iter().enumerate() {
                let p = (first as usize + k) * PS;
                db[p + 25] = P_OVERFLOW;
                let next = if k == 0 { first + 1 } else { 0 };
                db[p + 16..p + 20].copy_from_slice(&next.to_le_bytes());
                db[p + 22..p + 24].copy_from_slice(&(part.len() as u16).to_le_bytes());
                db[p + PAGE_HEADER..p + PAGE_HEADER + part.len()].copy_from_slice(part);
            }
        }
        db
    }

    #[test]
    fn reads_values_across_overflow_pages() {
        let values = vec![b"first header blob".to_vec(), vec![7u8; 3000]];
        assert_eq!(blobs(&database(&values)).unwrap(), values);
    }

    #[test]
    fn hostile_files_are_errors() {
        assert!(blobs(b"short").is_err());
        let mut db = database(&[b"value".to_vec()]);
        // An overflow page pointing to itself.
        db[2 * 4096 + 16..2 * 4096 + 20].copy_from_slice(&2u32.to_le_bytes());
        assert!(blobs(&db).is_err());
        let mut db = database(&[b"value".to_vec()]);
        db[4096 + 2048 + 4..4096 + 2048 + 8].copy_from_slice(&9999u32.to_le_bytes());
        assert!(blobs(&db).is_err());
    }
}
