//! NDB `Packages.db` (rpm's own format, used by SUSE): a header, pages of slots
//! (package index, block offset, block count), and the blobs, each behind a small blob
//! header, at offsets counted in 16-byte blocks. Little-endian throughout.

const HEADER_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const BLOB_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const PAGE_SIZE: usize = 4096;
const BLOCK: usize = 16;
/// rpm refuses databases with more slot pages than this; so does this reader.
const MAX_SLOT_PAGES: usize = 2048;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(super) fn blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if u32_at(data, 0) != Some(HEADER_MAGIC) || u32_at(data, 4) != Some(0) {
        return Err("not an NDB package database".into());
    }
    let slot_pages = u32_at(data, 12).ok_or("short header")? as usize;
    if slot_pages > MAX_SLOT_PAGES {
        return Err("too many slot pages".into());
    }
    // The slots follow the 16-byte header in the first slot pages.
    let slots = data
        .get(16..slot_pages * PAGE_SIZE)
        .ok_or("slot pages past the end of the file")?;
    let mut blobs = Vec::new();
    for slot in slots.chunks_exact(16) {
        let field = |i: usize| u32_at(slot, i * 4).unwrap_or(0);
        if field(0) != SLOT_MAGIC {
            return Err("bad slot".into());
        }
        let pkg = field(1);
        if pkg == 0 {
            continue; // a free slot
        }
        let offset = field(2) as usize * BLOCK;
        let blob = data.get(offset..).ok_or("blob past the end of the file")?;
        if u32_at(blob, 0) != Some(BLOB_MAGIC) || u32_at(blob, 4) != Some(pkg) {
            return Err("bad blob header".into());
        }
        let len = u32_at(blob, 12).ok_or("short blob header")? as usize;
        let bytes = blob
            .get(BLOCK..BLOCK + len)
            .ok_or("blob past the end of the file")?;
        blobs.push(bytes.to_vec());
    }
    Ok(blobs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One slot page and the blobs after it.
    pub(crate) fn database(values: &[Vec<u8>]) -> Vec<u8> {
        let mut db = vec![0u8; PAGE_SIZE];
        db[0..4].copy_from_slice(b"RpmP");
        db[12..16].copy_from_slice(&1u32.to_le_bytes());
        for slot in (16..PAGE_SIZE).step_by(16) {
            db[slot..slot + 4].copy_from_slice(b"Slot");
        }
        for (i, value) in values.iter().enumerate() {
            let offset = db.len();
            let slot = 16 + i * 16;
            db[slot + 4..slot + 8].copy_from_slice(&(i as u32 + 1).to_le_bytes());
            db[slot + 8..slot + 12].copy_from_slice(&((offset / BLOCK) as u32).to_le_bytes());
            db.extend_from_slice(b"BlbS");
            db.extend_from_slice(&(i as u32 + 1).to_le_bytes());
            db.extend_from_slice(&0u32.to_le_bytes());
            db.extend_from_slice(&(value.len() as u32).to_le_bytes());
            db.extend_from_slice(value);
            db.resize(db.len().next_multiple_of(BLOCK), 0);
        }
        db
    }

    #[test]
    fn reads_every_used_slot() {
        let values = vec![b"one".to_vec(), vec![1u8; 100]];
        assert_eq!(blobs(&database(&values)).unwrap(), values);
    }

    #[test]
    fn hostile_files_are_errors() {
        assert!(blobs(b"RpmP").is_err());
        let mut db = database(&[b"x".to_vec()]);
        db[16 + 8..16 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(blobs(&db).is_err());
        let mut db = database(&[b"x".to_vec()]);
        let n = db.len();
        db[PAGE_SIZE + 12..PAGE_SIZE + 16].copy_from_slice(&(n as u32).to_le_bytes());
        assert!(blobs(&db).is_err());
    }
}
