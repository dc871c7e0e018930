//! A stored session record: the key it is stored under (the hash of its ID) and its encoding
//! (MessagePack, its ID blanked), the same on every backend.

use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

/// The key a session is stored under: SHA-256 of its ID (hex). The store and the registry
/// keep only this — never the ID, neither as the key nor inside the stored record — so a
/// leaked database or backup holds no cookie that works.
pub fn storage_key(id: &Id) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A record as stored: its ID blanked (the key is the ID's hash).
pub(super) fn encode_record(record: &Record) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    encode_stored(Record {
        id: Id(0),
        data: record.data.clone(),
        expiry_date: record.expiry_date,
    })
}

/// [`encode_record`] of a record whose ID is already blanked (no copy of its data).
pub(super) fn encode_stored(stored: Record) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    debug_assert_eq!(stored.id, Id(0));
    rmp_serde::to_vec(&stored)
}

/// A stored record, given back the ID it was looked up with.
pub(super) fn decode_record(id: Id, bytes: &[u8]) -> Result<Record, rmp_serde::decode::Error> {
    let mut record: Record = rmp_serde::from_slice(bytes)?;
    record.id = id;
    Ok(record)
}

/// [`encode_record`], as a store error.
pub(super) fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    encode_record(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}
