//! RocksDB keys: a class byte (`m` matched, `u` unregistered) and the id, big-endian. Ids
//! lead with the start time, so the sightings of a time range, of each class, are one
//! contiguous key range: retention is a range delete per class.

use super::SightingId;

pub const MATCHED: u8 = b'm';
pub const UNREGISTERED: u8 = b'u';
pub const CLASSES: [u8; 2] = [MATCHED, UNREGISTERED];

pub type Key = [u8; 9];

pub fn key(id: SightingId) -> Key {
    class_key(if id.matched() { MATCHED } else { UNREGISTERED }, id.0)
}

pub fn class_key(class: u8, id: u64) -> Key {
    let mut k = [0u8; 9];
    k[0] = class;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The id of a key, if it is one.
pub fn id_of(key: &[u8]) -> Option<SightingId> {
    let (class, id) = key.split_first()?;
    let id = SightingId(u64::from_be_bytes(id.try_into().ok()?));
    (CLASSES.contains(class) && (*class == MATCHED) == id.matched()).then_some(id)
}

/// The keys `[start, end)` of one class covering the ids `[lo, hi)`. The end of the last
/// id range is the next class byte, so `hi == u64::MAX` covers everything.
pub fn class_range(class: u8, lo: u64, hi: u64) -> (Key, Vec<u8>) {
    let end = if hi == u64::MAX {
        vec![class + 1]
    } else {
        class_key(class, hi).to_vec()
    };
    (class_key(class, lo), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_time_within_a_class() {
        let t = chrono::Utc::now();
        let a = SightingId::new(t, 1, true);
        let b = SightingId::new(t + chrono::Duration::seconds(1), 2, true);
        assert!(key(a) < key(b));
        assert_eq!(id_of(&key(a)), Some(a));
        assert_eq!(
            id_of(&key(SightingId::new(t, 3, false))).map(|i| i.matched()),
            Some(false)
        );
        assert_eq!(id_of(b"x"), None);
        let (lo, hi) = class_range(MATCHED, 0, u64::MAX);
        assert!(lo.as_slice() <= key(a).as_slice() && key(b).as_slice() < hi.as_slice());
    }
}
