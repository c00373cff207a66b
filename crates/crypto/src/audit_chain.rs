//! The pure logic of the tamper-evident audit trail: record hashing, chain
//! verification, signed checkpoints and change digests. The store persists;
//! this module decides what is intact.
//!
//! # Record hash
//!
//! `hash = hex(SHA-256(encoding))`, where `encoding` is, in order:
//!
//! ```text
//! str("zhudai/audit-record/v1")       domain tag
//! str(prev_hash)                      the previous record's hash (hex), 64 × '0' for the first
//! i64 seq, i64 at_ms                  8 bytes big-endian each
//! opt(actor) opt(role) opt(source_ip) opt(request_id)
//! str(action) opt(target) str(outcome) opt(reason) opt(change_digest)
//!
//! str(s) = u32 big-endian byte length ‖ UTF-8 bytes
//! opt(x) = 0x00 for None | 0x01 ‖ str(s) for Some(s)
//! ```
//!
//! Every field is length-prefixed and `None` differs from `Some("")`, so no two
//! different records encode alike (naive concatenation would let
//! `actor="ab", role="c"` collide with `actor="a", role="bc"`).
//!
//! # Chain
//!
//! Records carry consecutive `seq` numbers (the store must allocate them without
//! gaps, inside the inserting transaction; a database sequence that skips
//! numbers on rollback would read as a deletion). [`verify_chain`] /
//! [`ChainVerifier`] report the first [`ChainBreak`]: a seq gap (deleted or
//! reordered records), a broken link (`prev_hash` ≠ predecessor's hash), or
//! altered content (stored hash ≠ recomputed hash).
//!
//! A chain alone does not stop someone with write access from rewriting the
//! tail and recomputing every hash after it. [`Checkpoint`]s close that gap:
//! periodically the `(seq, hash)` of the head is signed with an ed25519 key the
//! database does not hold in clear (it is kept encrypted under the master key,
//! [`CheckpointSigningKey::encrypt`]), and verification checks that the
//! chain still passes through every signed checkpoint.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::envelope::{Dek, FieldCipher};
use crate::CryptoError;

/// `prev_hash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, 1 for the first record, without gaps.
    pub seq: i64,
    /// When it happened, unix milliseconds.
    pub at_ms: i64,
    /// User id or name; `None` for the system or anonymous (whistleblower) actions.
    pub actor: Option<String>,
    /// Role the actor acted in.
    pub role: Option<String>,
    /// Client IP address.
    pub source_ip: Option<String>,
    /// Request id, to join with logs.
    pub request_id: Option<String>,
    /// What was done, e.g. `customer.reveal_field`.
    pub action: String,
    /// What it was done to, e.g. `customer:0192…`.
    pub target: Option<String>,
    /// `success`, `denied`, `error`, …
    pub outcome: String,
    /// Why (a denial reason, a stated purpose for a reveal).
    pub reason: Option<String>,
    /// [`digest_change`] of the before/after state.
    pub change_digest: Option<String>,
    /// The previous record's hash (hex).
    pub prev_hash: String,
    /// This record's hash (hex), see the module doc.
    pub hash: String,
}

impl AuditRecord {
    /// Sets `prev_hash` and `hash` so the record extends a chain whose head hash is `prev_hash`.
    pub fn seal(mut self, prev_hash: &str) -> Self {
        self.hash = compute_hash(&self, prev_hash);
        self.prev_hash = prev_hash.to_owned();
        self
    }
}

/// The hash of `record` placed after `prev_hash`. The record's own `prev_hash`
/// and `hash` fields are ignored.
pub fn compute_hash(record: &AuditRecord, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    put_str(&mut h, "zhudai/audit-record/v1");
    put_str(&mut h, prev_hash);
    h.update(record.seq.to_be_bytes());
    h.update(record.at_ms.to_be_bytes());
    put_opt(&mut h, &record.actor);
    put_opt(&mut h, &record.role);
    put_opt(&mut h, &record.source_ip);
    put_opt(&mut h, &record.request_id);
    put_str(&mut h, &record.action);
    put_opt(&mut h, &record.target);
    put_str(&mut h, &record.outcome);
    put_opt(&mut h, &record.reason);
    put_opt(&mut h, &record.change_digest);
    hex::encode(h.finalize())
}

fn put_str(h: &mut Sha256, s: &str) {
    // Record fields are far below 4 GiB; saturating keeps the encoding total.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(s.as_bytes());
}

fn put_opt(h: &mut Sha256, s: &Option<String>) {
    match s {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            put_str(h, s);
        }
    }
}

/// What is wrong at the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakKind {
    /// The seq is not the expected next one: records were deleted, inserted or reordered.
    SeqGap { expected: i64, found: i64 },
    /// `prev_hash` is not the previous record's hash: a record before it was
    /// deleted, replaced or rewritten.
    BrokenLink {
        expected_prev: String,
        found_prev: String,
    },
    /// The stored hash does not match the content: the record was altered.
    AlteredContent { stored: String, computed: String },
    /// The chain does not pass through a signed checkpoint.
    CheckpointMismatch {
        checkpoint_hash: String,
        found: String,
    },
}

/// The first place where a chain fails verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {kind}")]
pub struct ChainBreak {
    /// Seq of the first bad record.
    pub seq: i64,
    /// What is wrong.
    pub kind: BreakKind,
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakKind::SeqGap { expected, found } => write!(
                f,
                "expected seq {expected}, found {found} (records deleted, inserted or reordered)"
            ),
            BreakKind::BrokenLink { .. } => f.write_str(
                "prev_hash does not match the previous record's hash (a record before it was deleted or rewritten)",
            ),
            BreakKind::AlteredContent { .. } => {
                f.write_str("stored hash does not match the record's content (record altered)")
            }
            BreakKind::CheckpointMismatch { .. } => {
                f.write_str("hash differs from the signed checkpoint (chain rewritten)")
            }
        }
    }
}

/// The last verified position of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Seq of the last verified record (0 for an empty chain).
    pub seq: i64,
    /// Its hash ([`GENESIS_HASH`] for an empty chain).
    pub hash: String,
    /// How many records were verified.
    pub records_checked: u64,
}

/// Streaming verification, for chains too long to hold in memory: feed records
/// in seq order, page by page.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    head: ChainHead,
    checkpoints: BTreeMap<i64, String>,
}

impl ChainVerifier {
    /// Verification from the first record (seq 1, prev_hash = [`GENESIS_HASH`]).
    pub fn from_genesis() -> Self {
        Self::from_anchor(0, GENESIS_HASH)
    }

    /// Verification resuming after a trusted position (e.g. a verified signed
    /// checkpoint): the next record must have seq `seq + 1` and prev_hash `hash`.
    pub fn from_anchor(seq: i64, hash: &str) -> Self {
        Self {
            head: ChainHead {
                seq,
                hash: hash.to_owned(),
                records_checked: 0,
            },
            checkpoints: BTreeMap::new(),
        }
    }

    /// Also require the chain to pass through `checkpoint` (whose signature the
    /// caller has verified with [`verify_checkpoint`]).
    pub fn expect_checkpoint(mut self, checkpoint: &Checkpoint) -> Self {
        self.checkpoints
            .insert(checkpoint.seq, checkpoint.hash.clone());
        self
    }

    /// Verifies the next record.
    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let expected_seq = self.head.seq.saturating_add(1);
        let brk = |kind| ChainBreak {
            seq: record.seq,
            kind,
        };
        if record.seq != expected_seq {
            return Err(brk(BreakKind::SeqGap {
                expected: expected_seq,
                found: record.seq,
            }));
        }
        if record.prev_hash != self.head.hash {
            return Err(brk(BreakKind::BrokenLink {
                expected_prev: self.head.hash.clone(),
                found_prev: record.prev_hash.clone(),
            }));
        }
        let computed = compute_hash(record, &record.prev_hash);
        if !crate::tokens::ct_eq_str(&computed, &record.hash) {
            return Err(brk(BreakKind::AlteredContent {
                stored: record.hash.clone(),
                computed,
            }));
        }
        if let Some(cp_hash) = self.checkpoints.get(&record.seq) {
            if *cp_hash != record.hash {
                return Err(brk(BreakKind::CheckpointMismatch {
                    checkpoint_hash: cp_hash.clone(),
                    found: record.hash.clone(),
                }));
            }
        }
        self.head.seq = record.seq;
        self.head.hash.clone_from(&record.hash);
        self.head.records_checked += 1;
        Ok(())
    }

    /// Ends verification. Fails if an expected checkpoint lies beyond the
    /// records seen (the chain was truncated below a signed head).
    pub fn finish(self) -> Result<ChainHead, ChainBreak> {
        if let Some((seq, hash)) = self.checkpoints.range(self.head.seq + 1..).next() {
            return Err(ChainBreak {
                seq: *seq,
                kind: BreakKind::CheckpointMismatch {
                    checkpoint_hash: hash.clone(),
                    found: String::new(),
                },
            });
        }
        Ok(self.head)
    }

    /// The last verified position so far.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }
}

/// Verifies a whole chain from genesis, in seq order. Returns the head on
/// success, the first break otherwise.
pub fn verify_chain<'a, I>(records: I) -> Result<ChainHead, ChainBreak>
where
    I: IntoIterator<Item = &'a AuditRecord>,
{
    let mut v = ChainVerifier::from_genesis();
    for r in records {
        v.push(r)?;
    }
    v.finish()
}

/// A signed statement "the chain had hash `hash` at seq `seq`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Seq of the record the checkpoint covers.
    pub seq: i64,
    /// That record's hash.
    pub hash: String,
    /// When the checkpoint was made, unix milliseconds.
    pub at_ms: i64,
    /// ed25519 signature over the canonical message, hex (128 characters).
    pub signature: String,
    /// The signer's public key, hex (64 characters). Informational: verify
    /// against a trusted key, not this one.
    pub public_key: String,
}

impl Checkpoint {
    /// Whether `record` is the one this checkpoint covers, unchanged.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        record.seq == self.seq && record.hash == self.hash
    }
}

fn checkpoint_message(seq: i64, hash: &str, at_ms: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + 16 + 4 + hash.len());
    m.extend_from_slice(b"zhudai/audit-checkpoint/v1");
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&at_ms.to_be_bytes());
    m.extend_from_slice(&u32::try_from(hash.len()).unwrap_or(u32::MAX).to_be_bytes());
    m.extend_from_slice(hash.as_bytes());
    m
}

const SIGNING_KEY_AAD: &[u8] = b"zhudai/audit/checkpoint-signing-key/v1";

/// The ed25519 key that signs checkpoints. Zeroized on drop, redacted in `Debug`.
pub struct CheckpointSigningKey(SigningKey);

impl CheckpointSigningKey {
    /// A fresh key from the OS random generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::fill_random(seed.as_mut())?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// From the 32-byte secret seed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let seed: Zeroizing<[u8; 32]> =
            Zeroizing::new(bytes.try_into().map_err(|_| {
                CryptoError::MalformedKey("an ed25519 secret key is 32 bytes".into())
            })?);
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The 32-byte secret seed.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key, hex; configure it wherever checkpoints are verified.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.0.verifying_key().as_bytes())
    }

    /// The secret seed encrypted with `dek` (AAD-bound to this purpose), for the store.
    pub fn encrypt(&self, cipher: &FieldCipher, dek: &Dek) -> Result<Vec<u8>, CryptoError> {
        cipher.encrypt(dek, SIGNING_KEY_AAD, self.to_bytes().as_ref())
    }

    /// The key back from [`CheckpointSigningKey::encrypt`]'s output.
    pub fn decrypt(
        cipher: &FieldCipher,
        dek: &Dek,
        ciphertext: &[u8],
    ) -> Result<Self, CryptoError> {
        let seed = cipher.decrypt(dek, SIGNING_KEY_AAD, ciphertext)?;
        Self::from_bytes(&seed)
    }
}

impl fmt::Debug for CheckpointSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigningKey")
            .field("public_key", &self.public_key_hex())
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// Signs the chain position (`seq`, `hash`) at time `at_ms`.
pub fn sign_checkpoint(key: &CheckpointSigningKey, seq: i64, hash: &str, at_ms: i64) -> Checkpoint {
    let sig = key.0.sign(&checkpoint_message(seq, hash, at_ms));
    Checkpoint {
        seq,
        hash: hash.to_owned(),
        at_ms,
        signature: hex::encode(sig.to_bytes()),
        public_key: key.public_key_hex(),
    }
}

/// Verifies a checkpoint's signature against a **trusted** public key (hex),
/// never against the key the checkpoint carries.
pub fn verify_checkpoint(
    checkpoint: &Checkpoint,
    trusted_public_key_hex: &str,
) -> Result<(), CryptoError> {
    let pk: [u8; 32] = hex::decode(trusted_public_key_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            CryptoError::MalformedKey("an ed25519 public key is 64 hex characters".into())
        })?;
    let pk = VerifyingKey::from_bytes(&pk)
        .map_err(|_| CryptoError::MalformedKey("not a valid ed25519 public key".into()))?;
    let sig: [u8; 64] = hex::decode(&checkpoint.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CryptoError::BadSignature)?;
    pk.verify_strict(
        &checkpoint_message(checkpoint.seq, &checkpoint.hash, checkpoint.at_ms),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| CryptoError::BadSignature)
}

/// SHA-256 (hex) of the canonical JSON of `{"after": after, "before": before}`:
/// what an audit record stores instead of the (possibly personal) data itself.
pub fn digest_change(before: &serde_json::Value, after: &serde_json::Value) -> String {
    let mut out = String::from("{\"after\":");
    write_canonical(&mut out, after);
    out.push_str(",\"before\":");
    write_canonical(&mut out, before);
    out.push('}');
    hex::encode(Sha256::digest(out.as_bytes()))
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
/// strings escaped minimally. Independent of serde_json's `preserve_order`
/// feature, which another crate in the build could switch on.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn write_canonical(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_canonical(out, v);
            }
            out.push('}');
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(seq: i64, action: &str) -> AuditRecord {
        AuditRecord {
            seq,
            at_ms: 1_700_000_000_000 + seq,
            actor: Some("u-lilei".into()),
            role: Some("customer_manager".into()),
            source_ip: Some("10.0.0.8".into()),
            request_id: Some(format!("req-{seq}")),
            action: action.into(),
            target: Some(format!("customer:{seq}")),
            outcome: "success".into(),
            reason: None,
            change_digest: Some(digest_change(&json!(null), &json!({"n": seq}))),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let r = record(seq, "customer.update").seal(&prev);
                prev.clone_from(&r.hash);
                r
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(c[0].prev_hash, GENESIS_HASH);
        assert_eq!(c[1].prev_hash, c[0].hash);
        assert_eq!(c[0].hash.len(), 64);
        let head = verify_chain(&c).unwrap();
        assert_eq!(head.seq, 5);
        assert_eq!(head.hash, c[4].hash);
        assert_eq!(head.records_checked, 5);
        let empty = verify_chain(&[]).unwrap();
        assert_eq!((empty.seq, empty.hash.as_str()), (0, GENESIS_HASH));
    }

    #[test]
    fn known_answer_pins_the_encoding() {
        // Changing the canonical encoding breaks every stored chain: this must not move.
        let r = AuditRecord {
            seq: 1,
            at_ms: 0,
            actor: None,
            role: None,
            source_ip: None,
            request_id: None,
            action: "a".into(),
            target: None,
            outcome: "ok".into(),
            reason: None,
            change_digest: None,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let mut h = Sha256::new();
        h.update(22u32.to_be_bytes());
        h.update(b"zhudai/audit-record/v1");
        h.update(64u32.to_be_bytes());
        h.update(GENESIS_HASH.as_bytes());
        h.update(1i64.to_be_bytes());
        h.update(0i64.to_be_bytes());
        h.update([0, 0, 0, 0]);
        h.update(1u32.to_be_bytes());
        h.update(b"a");
        h.update([0]);
        h.update(2u32.to_be_bytes());
        h.update(b"ok");
        h.update([0, 0]);
        assert_eq!(compute_hash(&r, GENESIS_HASH), hex::encode(h.finalize()));
    }

    #[test]
    fn encoding_is_unambiguous() {
        let mut a = record(1, "x");
        a.actor = Some("ab".into());
        a.role = Some("c".into());
        let mut b = a.clone();
        b.actor = Some("a".into());
        b.role = Some("bc".into());
        assert_ne!(
            compute_hash(&a, GENESIS_HASH),
            compute_hash(&b, GENESIS_HASH)
        );
        let mut c = a.clone();
        c.reason = Some(String::new());
        assert_ne!(
            compute_hash(&a, GENESIS_HASH),
            compute_hash(&c, GENESIS_HASH)
        );
        // prev_hash and hash fields of the record itself are not part of the input.
        let mut d = a.clone();
        d.hash = "x".into();
        d.prev_hash = "y".into();
        assert_eq!(
            compute_hash(&a, GENESIS_HASH),
            compute_hash(&d, GENESIS_HASH)
        );
    }

    #[test]
    fn altered_content_is_detected() {
        let mut c = chain(5);
        c[2].outcome = "denied".into();
        let err = verify_chain(&c).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(matches!(err.kind, BreakKind::AlteredContent { .. }));
        assert!(err.to_string().contains("seq 3"));
    }

    #[test]
    fn rehashed_alteration_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].actor = Some("someone-else".into());
        let prev = c[2].prev_hash.clone();
        c[2] = c[2].clone().seal(&prev);
        let err = verify_chain(&c).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(matches!(err.kind, BreakKind::BrokenLink { .. }));
    }

    #[test]
    fn deletion_and_reordering_are_detected() {
        let mut deleted = chain(5);
        deleted.remove(1);
        let err = verify_chain(&deleted).unwrap_err();
        assert_eq!(err.seq, 3);
        assert_eq!(
            err.kind,
            BreakKind::SeqGap {
                expected: 2,
                found: 3
            }
        );

        let mut reordered = chain(5);
        reordered.swap(1, 2);
        let err = verify_chain(&reordered).unwrap_err();
        assert_eq!(
            err.kind,
            BreakKind::SeqGap {
                expected: 2,
                found: 3
            }
        );

        // Deleted and renumbered: the link gives it away.
        let mut renumbered = chain(5);
        renumbered.remove(1);
        for r in renumbered.iter_mut().skip(1) {
            r.seq -= 1;
        }
        let err = verify_chain(&renumbered).unwrap_err();
        assert_eq!(err.seq, 2);
        assert!(matches!(err.kind, BreakKind::BrokenLink { .. }));

        // The first record removed.
        let c = chain(3);
        let err = verify_chain(&c[1..]).unwrap_err();
        assert_eq!(
            err.kind,
            BreakKind::SeqGap {
                expected: 1,
                found: 2
            }
        );
    }

    #[test]
    fn streaming_from_an_anchor() {
        let c = chain(6);
        let mut v = ChainVerifier::from_anchor(3, &c[2].hash);
        for r in &c[3..] {
            v.push(r).unwrap();
        }
        assert_eq!(v.head().seq, 6);
        assert_eq!(v.finish().unwrap().records_checked, 3);
        let mut wrong = ChainVerifier::from_anchor(3, GENESIS_HASH);
        assert!(matches!(
            wrong.push(&c[3]).unwrap_err().kind,
            BreakKind::BrokenLink { .. }
        ));
    }

    #[test]
    fn checkpoints_sign_verify_and_pin_the_chain() {
        let key = CheckpointSigningKey::generate().unwrap();
        let pk = key.public_key_hex();
        let c = chain(5);
        let cp = sign_checkpoint(&key, 3, &c[2].hash, 1_700_000_100_000);
        assert_eq!(cp.public_key, pk);
        assert_eq!(cp.signature.len(), 128);
        verify_checkpoint(&cp, &pk).unwrap();
        assert!(cp.matches(&c[2]));
        assert!(!cp.matches(&c[3]));

        for tampered in [
            Checkpoint {
                seq: 4,
                ..cp.clone()
            },
            Checkpoint {
                at_ms: 1,
                ..cp.clone()
            },
            Checkpoint {
                hash: c[3].hash.clone(),
                ..cp.clone()
            },
            Checkpoint {
                signature: "00".repeat(64),
                ..cp.clone()
            },
            Checkpoint {
                signature: "zz".into(),
                ..cp.clone()
            },
        ] {
            assert!(matches!(
                verify_checkpoint(&tampered, &pk),
                Err(CryptoError::BadSignature)
            ));
        }
        // A checkpoint re-signed by another key carrying its own public key is refused.
        let other = CheckpointSigningKey::generate().unwrap();
        let forged = sign_checkpoint(&other, 3, &c[2].hash, 1);
        assert!(verify_checkpoint(&forged, &pk).is_err());
        assert!(verify_checkpoint(&cp, "abcd").is_err());

        // A fully rehashed rewrite of the tail passes the chain check alone but not the checkpoint.
        let mut rewritten = chain(2);
        let mut prev = rewritten[1].hash.clone();
        for seq in 3..=5 {
            let r = record(seq, "forged").seal(&prev);
            prev.clone_from(&r.hash);
            rewritten.push(r);
        }
        assert!(verify_chain(&rewritten).is_ok());
        let mut v = ChainVerifier::from_genesis().expect_checkpoint(&cp);
        let err = rewritten.iter().try_for_each(|r| v.push(r)).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(matches!(err.kind, BreakKind::CheckpointMismatch { .. }));

        // Truncation below a checkpoint.
        let v = ChainVerifier::from_genesis().expect_checkpoint(&cp);
        let mut v2 = v.clone();
        for r in &c[..2] {
            v2.push(r).unwrap();
        }
        assert_eq!(v2.finish().unwrap_err().seq, 3);
        // And the intact chain passes.
        let mut v3 = v;
        c.iter().for_each(|r| v3.push(r).unwrap());
        assert_eq!(v3.finish().unwrap().seq, 5);
    }

    #[test]
    fn signing_key_serialisation_and_encryption() {
        use crate::envelope::{Algorithm, Dek};
        let key = CheckpointSigningKey::generate().unwrap();
        let again = CheckpointSigningKey::from_bytes(key.to_bytes().as_ref()).unwrap();
        assert_eq!(again.public_key_hex(), key.public_key_hex());
        assert!(CheckpointSigningKey::from_bytes(&[1; 31]).is_err());
        assert!(!format!("{key:?}").contains(&hex::encode(key.to_bytes().as_ref())));

        let dek = Dek::generate().unwrap();
        for alg in [Algorithm::Aes256Gcm, Algorithm::Sm4Gcm] {
            let cipher = FieldCipher::new(alg);
            let sealed = key.encrypt(&cipher, &dek).unwrap();
            let opened = CheckpointSigningKey::decrypt(&cipher, &dek, &sealed).unwrap();
            assert_eq!(opened.public_key_hex(), key.public_key_hex());
            // Bound to its purpose: a field ciphertext cannot be passed off as the key.
            let field = cipher
                .encrypt(&dek, b"other", key.to_bytes().as_ref())
                .unwrap();
            assert!(CheckpointSigningKey::decrypt(&cipher, &dek, &field).is_err());
        }
    }

    #[test]
    fn change_digest_is_canonical() {
        let a = serde_json::from_str::<serde_json::Value>(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#)
            .unwrap();
        let b = serde_json::from_str::<serde_json::Value>(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#)
            .unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        let before = json!({"phone": "138****8000"});
        assert_eq!(digest_change(&before, &a), digest_change(&before, &b));
        assert_ne!(digest_change(&before, &a), digest_change(&a, &before));
        assert_ne!(
            digest_change(&json!(null), &json!([2, 1])),
            digest_change(&json!(null), &json!([1, 2]))
        );
        assert_eq!(digest_change(&json!(null), &json!(null)).len(), 64);
        // The digest is SHA-256 of the documented text.
        assert_eq!(
            digest_change(&json!(1), &json!("x\n\u{1}\"é")),
            hex::encode(Sha256::digest(
                r#"{"after":"x\n\u0001\"é","before":1}"#.as_bytes()
            ))
        );
        // Canonical output is valid JSON that parses back to the same value.
        let tricky = json!({"k\"ey": ["\t", null, true, 1.5, -3], "": {}});
        let parsed: serde_json::Value = serde_json::from_str(&canonical_json(&tricky)).unwrap();
        assert_eq!(parsed, tricky);
    }
}
