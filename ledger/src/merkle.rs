//! Merkle tree hashing and proofs for the access log, exactly as RFC 6962 section 2.1 and
//! RFC 9162 section 2.1 define them.
//!
//! This module owns the tree math and nothing else: leaf and node hashes, the right edge of the tree
//! (the [`Frontier`]) that the store persists with every batch, roots of past tree sizes, and the
//! creation and verification of inclusion and consistency proofs. It reads stored subtree hashes
//! through the [`NodeSource`] trait, so the LMDB store and the in-memory [`MemoryTree`] share the same
//! code, and it never touches a disk, a socket or a clock.
//!
//! Interoperability is the point: a log whose roots no other implementation reproduces proves nothing
//! to anyone else, so the known-answer tests use the Certificate Transparency reference vectors.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefix of a leaf hash (RFC 6962 section 2.1, RFC 9162 section 2.1.1).
pub const LEAF_HASH_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 6962 section 2.1, RFC 9162 section 2.1.1).
pub const NODE_HASH_PREFIX: u8 = 0x01;
/// Largest number of hashes in any proof this module accepts: a tree of at most 2^64 - 1 leaves has
/// depth at most 64, so a longer proof is malformed whatever it contains.
pub const MAX_PROOF_HASHES: usize = 64;
/// Largest tree size a stored [`Frontier`] may claim. Sizes fit a signed 64-bit integer, so that every
/// store and every language can hold them, and appending can never overflow.
pub const MAX_TREE_SIZE: u64 = i64::MAX as u64;

/// Errors from building roots and proofs out of stored tree nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// The node store has no hash for a subtree that the requested root or proof needs; the store
    /// is incomplete or the size asked for is larger than the tree.
    #[error("the tree store has no node at level {level}, index {index}: the tree is smaller than the size asked for, or the store is damaged")]
    MissingNode {
        /// Level of the missing node (0 = leaves).
        level: u8,
        /// Index of the missing node within its level.
        index: u64,
    },
    /// An inclusion proof was asked for a leaf that is not in the tree of the given size.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size asked for.
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("cannot prove consistency from size {old} to the smaller size {new}")]
    OldSizeExceedsNew {
        /// The old (first) tree size.
        old: u64,
        /// The new (second) tree size.
        new: u64,
    },
    /// Stored frontier bytes do not have the layout [`Frontier::to_bytes`] writes.
    #[error("stored Merkle frontier is malformed: {reason}")]
    BadFrontier {
        /// What is wrong with the bytes.
        reason: &'static str,
    },
}

/// Reasons a Merkle proof fails verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree the proof claims.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The old size of a consistency proof is larger than the new size.
    #[error("consistency proof from size {old} to the smaller size {new} is impossible")]
    OldSizeExceedsNew {
        /// The claimed old size.
        old: u64,
        /// The claimed new size.
        new: u64,
    },
    /// The proof has more hashes than any tree of 64-bit size can need.
    #[error("proof has {got} hashes; at most {max} can be valid")]
    TooManyHashes {
        /// Number of hashes supplied.
        got: usize,
        /// The limit, [`MAX_PROOF_HASHES`].
        max: usize,
    },
    /// The proof has the wrong number of hashes for the claimed index and sizes.
    #[error("proof has the wrong number of hashes for this index and tree size")]
    WrongLength,
    /// The hashes do not lead to the claimed root (or, for consistency, to both roots).
    #[error("proof does not lead to the expected root hash")]
    RootMismatch,
}

/// Hash of a log entry: SHA-256(0x00 || entry) (RFC 9162 section 2.1.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_HASH_PREFIX]);
    h.update(entry);
    h.finalize().into()
}

/// Hash of an interior node: SHA-256(0x01 || left || right) (RFC 9162 section 2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_HASH_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Source of hashes of perfect subtrees: level 0 = leaf hashes, node (level, i) covers leaves
/// [i<<level, (i+1)<<level).
///
/// Implementations return `None` for nodes they do not hold; roots and proofs then fail with
/// [`MerkleError::MissingNode`] instead of guessing.
pub trait NodeSource {
    /// The hash of the perfect subtree at `level` and `index`, if stored.
    fn node(&self, level: u8, index: u64) -> Option<Hash>;
}

/// Largest power of two strictly smaller than `n`; `n` must be at least 2 (RFC 9162 section 2.1.1's
/// split point `k`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

fn lookup(src: &impl NodeSource, level: u8, index: u64) -> Result<Hash, MerkleError> {
    src.node(level, index)
        .ok_or(MerkleError::MissingNode { level, index })
}

/// Hash of the subtree over leaves [start, end), as RFC 9162's MTH defines it. `start` must be a
/// multiple of the largest power of two not above `end - start`, which holds for every subtree the
/// RFC recursion visits; the perfect parts (one per bit of `end - start`, one lookup each) are read
/// from `src` smallest first, that is right to left, and folded as they come: this runs for every
/// proof node of every receipt, so nothing is collected on the way.
fn range_hash(src: &impl NodeSource, start: u64, end: u64) -> Result<Hash, MerkleError> {
    let mut rest = end - start;
    let mut root: Option<Hash> = None;
    while rest != 0 {
        let level = rest.trailing_zeros();
        rest &= rest - 1;
        // The larger parts, to this one's left, cover exactly the bits still in `rest`.
        let part = lookup(src, level as u8, (start + rest) >> level)?;
        root = Some(match root {
            None => part,
            Some(right) => node_hash(&part, &right),
        });
    }
    Ok(root.unwrap_or_else(empty_root))
}

/// Combines perfect subtree hashes (largest first) into the root of the tree they cover.
fn fold_right(parts: &[Hash]) -> Hash {
    let mut iter = parts.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// Root hash of the first `size` leaves, from O(log n) lookups of perfect subtrees.
pub fn root_at(src: &impl NodeSource, size: u64) -> Result<Hash, MerkleError> {
    range_hash(src, 0, size)
}

/// Inclusion proof (RFC 9162 section 2.1.3.1) for leaf `index` in the tree of `size` leaves: the
/// sibling hashes from the leaf's sibling up to the root's child.
pub fn inclusion_proof(
    src: &impl NodeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index - lo < k {
            proof.push(range_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(range_hash(src, lo, lo + k)?);
            lo += k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Consistency proof (RFC 9162 section 2.1.4.1) between the tree of `old` leaves and the tree of
/// `new` leaves. It is empty when `old` is 0 or equal to `new`.
pub fn consistency_proof(
    src: &impl NodeSource,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, MerkleError> {
    if old > new {
        return Err(MerkleError::OldSizeExceedsNew { old, new });
    }
    let mut proof = Vec::new();
    if old == 0 || old == new {
        return Ok(proof);
    }
    // SUBPROOF(m, D[lo:hi], whole) unrolled; `m` is the old size relative to `lo`.
    let (mut lo, mut hi, mut m, mut whole) = (0u64, new, old, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                proof.push(range_hash(src, lo, hi)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(range_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(range_hash(src, lo, lo + k)?);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves whose root is `root`, following
/// RFC 9162 section 2.1.3.2. Proofs of the wrong length fail.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if &root_from_inclusion(leaf, index, size, proof)? != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The root that an inclusion proof of `leaf` at `index` in a tree of `size` leaves leads to
/// (RFC 9162 section 2.1.3.2 without the final comparison): for a caller that checks the root by
/// other means, such as a signature over it. Proofs of the wrong length fail.
pub fn root_from_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooManyHashes {
            got: proof.len(),
            max: MAX_PROOF_HASHES,
        });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Verifies that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves with
/// root `old_root`, following RFC 9162 section 2.1.4.2.
///
/// Edge cases the RFC leaves open are decided as C2SP tlog-witness does: from size 0 the proof must
/// be empty (and `old_root` must be the empty-tree root); between equal sizes the proof must be empty
/// and the roots equal.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OldSizeExceedsNew { old, new });
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooManyHashes {
            got: proof.len(),
            max: MAX_PROOF_HASHES,
        });
    }
    if old == 0 || old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        let ok = if old == 0 {
            *old_root == empty_root()
        } else {
            old_root == new_root
        };
        return if ok {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    // Step 2: when `old` is a power of two its root is itself the first node of the path.
    let mut path: &[Hash] = proof;
    let seed = if old.is_power_of_two() {
        *old_root
    } else {
        let (first, rest) = proof.split_first().ok_or(ProofError::WrongLength)?;
        path = rest;
        *first
    };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of the tree (compact range): the hashes of the perfect subtrees that cover leaves
/// [0, size), largest first, one per set bit of `size`; at most 64 hashes. Enough to append and to
/// compute the root, so the store persists it with every batch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// An empty tree's frontier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append a leaf hash; returns every perfect-subtree node completed by this append,
    /// (level, index, hash), including the leaf itself at level 0, so a store can persist them.
    ///
    /// Sizes are far below 2^64 in any real log; appending to a frontier of `u64::MAX` leaves is a
    /// broken invariant and panics. [`Frontier::from_bytes`] refuses sizes above [`MAX_TREE_SIZE`].
    pub fn append(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let mut completed = Vec::with_capacity(2);
        self.fold_in(leaf, |level, index, hash| {
            completed.push((level, index, hash))
        });
        completed
    }

    /// Append a leaf hash when the completed nodes are not needed (verification), without
    /// allocating.
    pub fn push(&mut self, leaf: Hash) {
        self.fold_in(leaf, |_, _, _| {});
    }

    fn fold_in(&mut self, leaf: Hash, mut completed: impl FnMut(u8, u64, Hash)) {
        let index = self.size;
        completed(0, index, leaf);
        let (mut hash, mut level, mut idx) = (leaf, 0u8, index);
        while idx & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("a frontier holds one hash per set bit of its size");
            hash = node_hash(&left, &hash);
            level += 1;
            idx >>= 1;
            completed(level, idx, hash);
        }
        self.hashes.push(hash);
        self.size = index
            .checked_add(1)
            .expect("a log cannot hold 2^64 entries");
    }

    /// Root hash of the tree of [`Frontier::size`] leaves.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }

    /// The perfect subtrees this frontier holds as (level, index, hash), largest first.
    pub fn nodes(&self) -> impl Iterator<Item = (u8, u64, Hash)> + '_ {
        let mut offset = 0u64;
        (0..64u8)
            .rev()
            .filter(|level| self.size & (1u64 << level) != 0)
            .zip(&self.hashes)
            .map(move |(level, hash)| {
                let index = offset >> level;
                offset += 1u64 << level;
                (level, index, *hash)
            })
    }

    /// The perfect-subtree hashes, largest subtree first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Rebuilds the frontier of the first `size` leaves from stored nodes (for example on open, to
    /// check the stored frontier against the stored tree).
    pub fn from_source(src: &impl NodeSource, size: u64) -> Result<Self, MerkleError> {
        let mut hashes = Vec::new();
        let mut offset = 0u64;
        for level in (0..64u8).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                hashes.push(lookup(src, level, offset >> level)?);
                offset += width;
            }
        }
        Ok(Self { size, hashes })
    }

    /// Serialized form: the size as 8 bytes big-endian, then the 32-byte hashes, largest subtree
    /// first (as many as `size` has set bits).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.hashes.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// Parses [`Frontier::to_bytes`] output; the length must match the size exactly.
    pub fn from_bytes(b: &[u8]) -> Result<Frontier, MerkleError> {
        let (size_bytes, rest) = b.split_first_chunk::<8>().ok_or(MerkleError::BadFrontier {
            reason: "shorter than the 8-byte size",
        })?;
        let size = u64::from_be_bytes(*size_bytes);
        if size > MAX_TREE_SIZE {
            return Err(MerkleError::BadFrontier {
                reason: "tree size is above 2^63 - 1",
            });
        }
        let count = size.count_ones() as usize;
        if rest.len() != count * 32 {
            return Err(MerkleError::BadFrontier {
                reason: "number of hashes does not match the set bits of the size",
            });
        }
        let hashes = rest
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Ok(Frontier { size, hashes })
    }
}

/// A whole tree held in memory: every perfect-subtree node, level by level. For tests, for building
/// proofs in memory, and as the reference the LMDB store is checked against.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    frontier: Frontier,
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (hashed with [`leaf_hash`]); returns its index.
    pub fn append_entry(&mut self, entry: &[u8]) -> u64 {
        self.append(leaf_hash(entry))
    }

    /// Appends a leaf hash; returns its index.
    pub fn append(&mut self, leaf: Hash) -> u64 {
        let index = self.frontier.size();
        for (level, _, hash) in self.frontier.append(leaf) {
            let level = usize::from(level);
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            // Nodes complete in index order, so each lands at the end of its level.
            self.levels[level].push(hash);
        }
        index
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Root of the whole tree.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The current frontier.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }
}

impl NodeSource for MemoryTree {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        let index = usize::try_from(index).ok()?;
        self.levels.get(usize::from(level))?.get(index).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Hash {
        let v = hex::decode(s).expect("test vector is hex");
        v.try_into().expect("test vector is 32 bytes")
    }

    /// The Certificate Transparency reference leaves (RFC 6962 test data in CT's Go and C++ suites,
    /// transparency-dev/merkle testonly/constants.go).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    /// Roots for sizes 0..=8.
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference_tree() -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in LEAVES {
            t.append_entry(&hex::decode(l).expect("hex"));
        }
        t
    }

    #[test]
    fn roots_match_rfc6962_vectors() {
        let t = reference_tree();
        assert_eq!(empty_root(), h(ROOTS[0]));
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(root_at(&t, size as u64).unwrap(), h(want), "size {size}");
        }
        let mut f = Frontier::new();
        assert_eq!(f.root(), h(ROOTS[0]));
        for (i, l) in LEAVES.iter().enumerate() {
            f.append(leaf_hash(&hex::decode(l).unwrap()));
            assert_eq!(f.root(), h(ROOTS[i + 1]), "frontier size {}", i + 1);
        }
    }

    #[test]
    fn inclusion_proofs_match_ct_vectors() {
        let t = reference_tree();
        // (index, size, proof) from CT's merkle_tree_test / transparency-dev inclusionProofs.
        let vectors: &[(u64, u64, &[&str])] = &[
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, proof) in vectors {
            let want: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
            assert_eq!(
                inclusion_proof(&t, *index, *size).unwrap(),
                want,
                "index {index} size {size}"
            );
            let leaf = leaf_hash(&hex::decode(LEAVES[*index as usize]).unwrap());
            verify_inclusion(&leaf, *index, *size, &want, &h(ROOTS[*size as usize])).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_match_ct_vectors() {
        let t = reference_tree();
        let vectors: &[(u64, u64, &[&str])] = &[
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (old, new, proof) in vectors {
            let want: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
            assert_eq!(
                consistency_proof(&t, *old, *new).unwrap(),
                want,
                "{old} -> {new}"
            );
            verify_consistency(
                *old,
                *new,
                &h(ROOTS[*old as usize]),
                &h(ROOTS[*new as usize]),
                &want,
            )
            .unwrap();
        }
    }

    #[test]
    fn the_split_is_rfc6962s_and_not_the_midpoint() {
        for (n, k) in [
            (2u64, 1u64),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1000, 512),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        let t = reference_tree();
        assert_eq!(
            inclusion_proof(&t, 8, 8),
            Err(MerkleError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert!(matches!(
            inclusion_proof(&t, 0, 9),
            Err(MerkleError::MissingNode { .. })
        ));
        assert!(matches!(
            root_at(&t, 9),
            Err(MerkleError::MissingNode { .. })
        ));
        assert_eq!(
            consistency_proof(&t, 5, 4),
            Err(MerkleError::OldSizeExceedsNew { old: 5, new: 4 })
        );
        let root = h(ROOTS[8]);
        assert_eq!(
            verify_inclusion(&root, 8, 8, &[], &root),
            Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert!(matches!(
            verify_inclusion(&root, 0, 8, &[root; 65], &root),
            Err(ProofError::TooManyHashes { .. })
        ));
        assert!(verify_consistency(9, 8, &root, &root, &[]).is_err());
        // From size 0 only the empty root and an empty proof are consistent.
        verify_consistency(0, 8, &empty_root(), &root, &[]).unwrap();
        assert!(verify_consistency(0, 8, &root, &root, &[]).is_err());
        assert!(verify_consistency(0, 8, &empty_root(), &root, &[root]).is_err());
        // Equal sizes need equal roots and no proof.
        verify_consistency(8, 8, &root, &root, &[]).unwrap();
        assert!(verify_consistency(8, 8, &root, &h(ROOTS[7]), &[]).is_err());
        assert!(verify_consistency(8, 8, &root, &root, &[root]).is_err());
        // A consistency proof between different sizes is never empty.
        assert_eq!(
            verify_consistency(4, 8, &h(ROOTS[4]), &root, &[]),
            Err(ProofError::WrongLength)
        );
    }

    #[test]
    fn frontier_bytes_round_trip_and_reject_garbage() {
        let t = reference_tree();
        for size in 0..=8 {
            let f = Frontier::from_source(&t, size).unwrap();
            assert_eq!(f.root(), h(ROOTS[size as usize]));
            assert_eq!(Frontier::from_bytes(&f.to_bytes()).unwrap(), f);
        }
        let bytes = t.frontier().to_bytes();
        assert_eq!(bytes.len(), 8 + 32); // size 8 = one perfect subtree
        assert!(Frontier::from_bytes(&bytes[..7]).is_err());
        assert!(Frontier::from_bytes(&bytes[..39]).is_err());
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 32]);
        assert!(Frontier::from_bytes(&longer).is_err());
        let mut huge = u64::MAX.to_be_bytes().to_vec();
        huge.extend(std::iter::repeat_n(0u8, 64 * 32));
        assert!(Frontier::from_bytes(&huge).is_err());
    }

    #[test]
    fn append_reports_every_completed_node() {
        let mut f = Frontier::new();
        let mut t = MemoryTree::new();
        for i in 0..37u64 {
            let leaf = leaf_hash(&i.to_be_bytes());
            t.append(leaf);
            let nodes = f.append(leaf);
            // Appending leaf i completes one node per trailing one bit of i, plus the leaf.
            assert_eq!(nodes.len() as u32, 1 + i.trailing_ones());
            for (level, index, hash) in nodes {
                assert_eq!(t.node(level, index), Some(hash));
            }
        }
        assert_eq!(&f, t.frontier());
    }

    #[test]
    fn every_proof_in_every_small_tree_verifies_and_matches_its_neighbours_only() {
        let t = tree_of(70);
        for size in 1..=70u64 {
            let root = root_at(&t, size).unwrap();
            for index in 0..size {
                let leaf = t.node(0, index).unwrap();
                let proof = inclusion_proof(&t, index, size).unwrap();
                verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
                if index + 1 < size {
                    assert!(verify_inclusion(&leaf, index + 1, size, &proof, &root).is_err());
                }
            }
            for old in 0..=size {
                let old_root = root_at(&t, old).unwrap();
                let proof = consistency_proof(&t, old, size).unwrap();
                verify_consistency(old, size, &old_root, &root, &proof).unwrap();
                if old > 0 && old < size {
                    let prev = root_at(&t, old - 1).unwrap();
                    assert!(verify_consistency(old - 1, size, &prev, &root, &proof).is_err());
                }
            }
        }
    }

    fn tree_of(size: u64) -> MemoryTree {
        let mut t = MemoryTree::new();
        for i in 0..size {
            t.append_entry(format!("entry {i}").as_bytes());
        }
        t
    }

    fn flip(proof: &[Hash], which: usize, bit: usize) -> Vec<Hash> {
        let mut p = proof.to_vec();
        p[which][bit / 8] ^= 1 << (bit % 8);
        p
    }

    /// What the ledger's committer relies on: a proof for any leaf appended in a batch needs only
    /// the batch's completed nodes and the perfect subtrees of the frontier it extended.
    struct Overlay(std::collections::HashMap<(u8, u64), Hash>);
    impl NodeSource for Overlay {
        fn node(&self, level: u8, index: u64) -> Option<Hash> {
            self.0.get(&(level, index)).copied()
        }
    }

    proptest! {
        #[test]
        fn a_batch_proves_its_leaves_from_its_nodes_and_the_old_frontier(old in 0u64..300, batch in 1u64..70) {
            let mut tree = MemoryTree::new();
            for i in 0..old {
                tree.append_entry(&i.to_be_bytes());
            }
            let mut frontier = tree.frontier().clone();
            let mut known: std::collections::HashMap<_, _> =
                frontier.nodes().map(|(l, i, h)| ((l, i), h)).collect();
            for i in old..old + batch {
                let leaf = leaf_hash(&i.to_be_bytes());
                tree.append(leaf);
                known.extend(frontier.append(leaf).into_iter().map(|(l, i, h)| ((l, i), h)));
            }
            let known = Overlay(known);
            for i in old..old + batch {
                prop_assert_eq!(
                    inclusion_proof(&known, i, old + batch).unwrap(),
                    inclusion_proof(&tree, i, old + batch).unwrap()
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inclusion_proofs_verify_and_tampering_fails(
            size in 1u64..1000, index_seed in any::<u64>(), which in any::<usize>(), bit in 0usize..256,
        ) {
            // Leaves beyond `size` give the roots of the wrong sizes below.
            let t = tree_of(size * 2);
            let index = index_seed % size;
            let root = root_at(&t, size).unwrap();
            let leaf = t.node(0, index).unwrap();
            let proof = inclusion_proof(&t, index, size).unwrap();
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_ok());
            if !proof.is_empty() {
                let bad = flip(&proof, which % proof.len(), bit);
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
                let mut shorter = proof.clone();
                shorter.pop();
                prop_assert!(verify_inclusion(&leaf, index, size, &shorter, &root).is_err());
            }
            let mut longer = proof.clone();
            longer.push(root);
            prop_assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
            let mut bad_leaf = leaf;
            bad_leaf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());
            if size > 1 {
                let other = (index + 1 + which as u64 % (size - 1)) % size;
                prop_assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
            }
            // The proof does not prove the leaf into the tree of any other size, whose root differs.
            for wrong in [size + 1, size - 1, size * 2] {
                if wrong != size && index < wrong {
                    let wrong_root = root_at(&t, wrong).unwrap();
                    prop_assert!(verify_inclusion(&leaf, index, wrong, &proof, &wrong_root).is_err());
                    prop_assert!(verify_inclusion(&leaf, index, wrong, &proof, &root).is_err()
                        || proof.len() == inclusion_proof(&t, index, wrong).unwrap().len());
                }
            }
        }

        #[test]
        fn consistency_proofs_verify_and_tampering_fails(
            new in 1u64..1000, old_seed in any::<u64>(), which in any::<usize>(), bit in 0usize..256,
        ) {
            let t = tree_of(new + 1);
            let old = old_seed % (new + 1);
            let (old_root, new_root) = (root_at(&t, old).unwrap(), root_at(&t, new).unwrap());
            let proof = consistency_proof(&t, old, new).unwrap();
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof).is_ok());
            if !proof.is_empty() {
                let bad = flip(&proof, which % proof.len(), bit);
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
                let mut shorter = proof.clone();
                shorter.pop();
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &shorter).is_err());
            }
            let mut longer = proof.clone();
            longer.push(new_root);
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &longer).is_err());
            let mut bad_old = old_root;
            bad_old[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_consistency(old, new, &bad_old, &new_root, &proof).is_err());
            // Every tree is consistent with the empty one, so only a non-empty old tree pins the new root.
            if old != 0 {
                let mut bad_new = new_root;
                bad_new[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(verify_consistency(old, new, &old_root, &bad_new, &proof).is_err());
            }
            // The proof does not prove any other pair of sizes, with those sizes' true roots.
            for (o, n) in [(old.wrapping_sub(1), new), (old + 1, new), (old, new + 1), (old, new.wrapping_sub(1))] {
                if (o, n) != (old, new) && o <= n && n <= new + 1 && !(o == 0 && proof.is_empty()) && !(o == n && proof.is_empty()) {
                    let (ro, rn) = (root_at(&t, o).unwrap(), root_at(&t, n).unwrap());
                    prop_assert!(verify_consistency(o, n, &ro, &rn, &proof).is_err(), "{} -> {} proof verified {} -> {}", old, new, o, n);
                }
            }
        }
    }
}
