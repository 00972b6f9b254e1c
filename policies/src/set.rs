//! The compiled, immutable policy snapshot and its decision procedure.
//!
//! Grants are indexed by (consumer, dataset) and (consumer, dataset, purpose) after expanding
//! groups, and deny rules by (consumer or any, dataset or any, purpose or any), so a decision looks
//! at the handful of rules that could apply and never scans the set.
//!
//! The grants decide first and a matching deny rule then overrides them, so that a decision knows
//! both the full explanation (the deny rule) and what the grants alone would have told the
//! consumer: that is all a consumer no grant allows is told, with or without a deny rule.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::compile::{self, Compiled, Purpose, SourceFile};
use crate::decision::{Decision, Disclosure, FieldRelease, ReasonCode, Request, RuleRef};
use crate::error::{Diagnostic, LoadError};
use crate::mask::Mask;
use crate::references::{self, NotAReference};
use crate::rules::{ConsumerSpec, DenyRule, Grant, RateLimit, Window};
use crate::suggest::did_you_mean;

/// FxHash: keys come from policy files written by admins, and lookups with request strings never
/// insert, so a fast non-keyed hash is safe here.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        // The multiply leaves the high bits well mixed and the low ones (which pick the bucket)
        // poorly: rotate them down.
        self.0.rotate_left(26)
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

const ANY: u32 = u32::MAX;

/// The digest of one policy file, for change summaries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileDigest {
    /// The file name within the directory.
    pub name: String,
    /// Hex SHA-256 of its content.
    pub sha256: String,
}

#[derive(Debug, Default)]
struct Index {
    consumers: FxMap<String, u32>,
    datasets: FxMap<String, u32>,
    purposes: FxMap<String, u32>,
    /// (consumer, dataset) -> the first grant for them, in rule order.
    by_cd: FxMap<(u32, u32), u32>,
    /// (consumer, dataset, purpose) -> its grants, in rule order: a range of `grant_lists`.
    by_cdp: FxMap<(u32, u32, u32), (u32, u32)>,
    grant_lists: Vec<u32>,
    /// (consumer|ANY, dataset|ANY, purpose|ANY) -> deny rules, in rule order.
    denies: FxMap<(u32, u32, u32), Vec<u32>>,
    /// Bit k set when some deny key has wildcard shape k (bit 0: consumer, 1: dataset, 2: purpose).
    deny_shapes: u8,
    /// Aligned with the grants: what a decision copies out of each.
    released: Vec<Release>,
    /// File and field names, each once: copying them reads a few cache lines, where copying every
    /// grant's own strings read a line or more per string once the set outgrows the cache.
    names: Vec<String>,
    /// Every grant's `granted` message (which holds its rule id), one after the other.
    messages: String,
}

/// The `granted` message of a rule: its id starts at byte `GRANTED_BY.len() + 1`.
const GRANTED_BY: &str = "granted by";

/// What a decision reads of one grant, packed: names are indexes into `Index::names`, the message
/// a range of `Index::messages`, purposes indexes into the declared purposes.
#[derive(Debug)]
struct Release {
    file: u32,
    line: u32,
    message: (u32, u32),
    id_len: u32,
    /// No applications, legal bases, parameter constraints or row filter: the window and the case
    /// are all to check, and all to copy.
    simple: bool,
    require_case: bool,
    window: Window,
    max_rows: Option<u64>,
    rate_limit: Option<RateLimit>,
    fields: Box<[(u32, Option<Mask>)]>,
    purposes: Box<[u32]>,
}

impl Release {
    /// Whether `Grant::check` would pass, when that can be told from the packed copy alone.
    fn passes(&self, request: &Request<'_>) -> bool {
        self.simple
            && self.window.contains(request.at_unix)
            && !(self.require_case && request.case.trim().is_empty())
    }
}

/// A compiled, immutable policy set: every grant and deny rule of one directory, indexed by
/// (consumer, dataset, purpose). Cheap to share behind an `Arc` and swap whole on reload.
#[derive(Debug)]
pub struct PolicySet {
    hash: String,
    sources: Vec<SourceFile>,
    files: Vec<FileDigest>,
    compiled: Compiled,
    index: Index,
}

impl PolicySet {
    /// Load every `*.toml` in `dir` (non-recursive; `*.test.toml` files are skipped), validate and
    /// compile. Diagnostics name files as `dir` joined with the file name.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadError> {
        let files = read_dir_sources(dir)?;
        PolicySet::compile(files)
    }

    /// Like [`PolicySet::load_dir`], from in-memory `(file name, content)` pairs. Names that are not
    /// policy files (`*.toml`, not `*.test.toml`) are ignored, as `load_dir` would.
    pub fn from_sources(files: &[(String, String)]) -> Result<PolicySet, LoadError> {
        let mut sources = Vec::new();
        let mut diagnostics = Vec::new();
        for (name, text) in files {
            if !compile::is_policy_file(name) {
                continue;
            }
            if sources.iter().any(|s: &SourceFile| &s.name == name) {
                diagnostics.push(Diagnostic {
                    file: PathBuf::from(name),
                    position: None,
                    message: "file given twice".to_string(),
                });
            }
            sources.push(SourceFile {
                name: name.clone(),
                display: PathBuf::from(name),
                text: text.clone(),
            });
        }
        if !diagnostics.is_empty() {
            return Err(LoadError::Invalid { diagnostics });
        }
        PolicySet::compile(sources)
    }

    pub(crate) fn compile(mut sources: Vec<SourceFile>) -> Result<PolicySet, LoadError> {
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        let hash = content_hash(&sources);
        let files = sources
            .iter()
            .map(|s| FileDigest {
                name: s.name.clone(),
                sha256: hex::encode(Sha256::digest(s.text.as_bytes())),
            })
            .collect();
        let compiled =
            compile::compile(&sources).map_err(|diagnostics| LoadError::Invalid { diagnostics })?;
        let index = build_index(&compiled);
        Ok(PolicySet {
            hash,
            sources,
            files,
            compiled,
            index,
        })
    }

    /// Hex SHA-256 content hash of the set, over the sorted file names and contents (see
    /// docs/POLICY.md for the exact encoding). Recorded in every decision.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The policy files in the set, sorted by name, with their digests.
    pub fn files(&self) -> &[FileDigest] {
        &self.files
    }

    /// The declared purposes, in declaration order.
    pub fn purposes(&self) -> &[Purpose] {
        &self.compiled.purposes
    }

    /// The declared groups and their (sorted) members.
    pub fn groups(&self) -> &BTreeMap<String, Vec<String>> {
        &self.compiled.groups
    }

    /// Every grant, in rule order (files by name, then position in the file).
    pub fn grants(&self) -> &[Grant] {
        &self.compiled.grants
    }

    /// Every deny rule, in rule order.
    pub fn denies(&self) -> &[DenyRule] {
        &self.compiled.denies
    }

    /// Whether `purpose` is declared.
    pub fn is_declared_purpose(&self, purpose: &str) -> bool {
        self.index.purposes.contains_key(purpose)
    }

    /// Whether the request's case and legal basis may enter a ledger: the case (if any) a short
    /// reference matching the default pattern and its purpose's `case_pattern`, the legal basis
    /// (if any) a code. The gateway asks before it notarizes anything; [`PolicySet::decide`] does
    /// not, since a request that fails here is refused without a decision (docs/POLICY.md, "Case
    /// references and legal-basis codes"). An undeclared purpose has the default pattern.
    pub fn check_references(&self, request: &Request<'_>) -> Result<(), NotAReference> {
        let pattern = self
            .index
            .purposes
            .get(request.purpose)
            .and_then(|&pid| self.compiled.case_patterns[pid as usize].as_ref());
        references::check(request.case, request.legal_basis, pattern)
    }

    /// Decide one request. Order: an undeclared purpose is denied (`unknown-purpose`); otherwise
    /// the first grant (in rule order) for this consumer, dataset and purpose whose conditions
    /// (application, window, legal basis, case, parameters: see `docs/POLICY.md`) all hold allows.
    /// When none does, the denial names the grant that came closest and the condition it failed;
    /// with no grant for the consumer and dataset at all, the default deny (`no-grant`). Then a
    /// matching deny rule denies (`denied-by-rule`) whatever the grants decided.
    ///
    /// The consumer is told ([`Decision::told`]) a deny rule's reason only when the grants would
    /// have allowed the request; otherwise it is told what the grants alone decided, exactly as
    /// without the deny rule, so that a denial does not reveal which requests a deny rule covers.
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        let Some(&pid) = self.index.purposes.get(request.purpose) else {
            return self.unknown_purpose(request);
        };
        let cid = self.index.consumers.get(request.consumer).copied();
        let did = self.index.datasets.get(request.dataset).copied();
        let by_grants = self.decide_by_grants(cid, did, pid, request);
        if self.index.deny_shapes != 0 {
            if let Some(deny) = self.first_matching_deny(cid, did, pid, request) {
                return self.denied_by(deny, by_grants);
            }
        }
        by_grants
    }

    /// What the grants alone decide, for a declared purpose.
    fn decide_by_grants(
        &self,
        cid: Option<u32>,
        did: Option<u32>,
        pid: u32,
        request: &Request<'_>,
    ) -> Decision {
        let (Some(cid), Some(did)) = (cid, did) else {
            return self.no_grant(request);
        };
        let Some(&(start, end)) = self.index.by_cdp.get(&(cid, did, pid)) else {
            return match self.index.by_cd.get(&(cid, did)) {
                Some(&first) => self.purpose_not_allowed(first as usize, request),
                None => self.no_grant(request),
            };
        };
        let grants = &self.index.grant_lists[start as usize..end as usize];
        self.evaluate_grants(grants.iter().map(|&i| i as usize), request)
    }

    /// The denial by `deny` of a request the grants decided as `by_grants`. A consumer that a
    /// grant would have allowed is told the rule and its reason; any other is told what the grants
    /// told it, so that the deny rule's presence makes no difference to what it sees.
    fn denied_by(&self, deny: &DenyRule, by_grants: Decision) -> Decision {
        let disclosure = if by_grants.allowed {
            Disclosure {
                code: ReasonCode::DeniedByRule,
                message: deny.message.clone(),
                rule: Some(deny.rule.clone()),
            }
        } else {
            let told = by_grants.told();
            Disclosure {
                code: told.code,
                message: told.message.to_owned(),
                rule: told.rule.cloned(),
            }
        };
        Decision::deny(
            Some(deny.rule.clone()),
            ReasonCode::DeniedByRule,
            deny.message.clone(),
            disclosure,
            &self.hash,
        )
    }

    /// The reference evaluation: the same decision as [`PolicySet::decide`], found by scanning
    /// every rule in order instead of using the index. Slower; for tests and for checking the index.
    pub fn decide_by_scan(&self, request: &Request<'_>) -> Decision {
        if !self
            .compiled
            .purposes
            .iter()
            .any(|p| p.id == request.purpose)
        {
            return self.unknown_purpose(request);
        }
        let by_grants = self.decide_by_grants_by_scan(request);
        match self.compiled.denies.iter().find(|d| d.matches(request)) {
            Some(deny) => self.denied_by(deny, by_grants),
            None => by_grants,
        }
    }

    /// What the grants alone decide, by scanning every grant (see [`PolicySet::decide_by_scan`]).
    fn decide_by_grants_by_scan(&self, request: &Request<'_>) -> Decision {
        let grants = &self.compiled.grants;
        let for_consumer_and_dataset: Vec<usize> = (0..grants.len())
            .filter(|&i| {
                grants[i].dataset == request.dataset && grants[i].covers_consumer(request.consumer)
            })
            .collect();
        let Some(&first) = for_consumer_and_dataset.first() else {
            return self.no_grant(request);
        };
        let for_purpose: Vec<usize> = for_consumer_and_dataset
            .into_iter()
            .filter(|&i| grants[i].allows_purpose(request.purpose))
            .collect();
        if for_purpose.is_empty() {
            return self.purpose_not_allowed(first, request);
        }
        // Each grant's own conditions, never the packed copies `decide` reads, so that a property
        // test comparing the two also checks the packing.
        let mut closest: Option<(&Grant, crate::rules::GrantFailure)> = None;
        for i in for_purpose {
            let grant = &grants[i];
            match grant.check(request) {
                Ok(()) => return self.allow_by_scan(grant),
                Err(f) => {
                    if closest
                        .as_ref()
                        .is_none_or(|(_, best)| f.stage > best.stage)
                    {
                        closest = Some((grant, f));
                    }
                }
            }
        }
        match closest {
            Some((grant, f)) => self.grant_failed(grant, f),
            None => self.no_grant(request),
        }
    }

    /// What `grant` releases, read from the grant itself (see [`PolicySet::decide_by_scan`]).
    fn allow_by_scan(&self, grant: &Grant) -> Decision {
        Decision {
            allowed: true,
            rule: Some(grant.rule.clone()),
            reason: crate::decision::Reason {
                code: ReasonCode::Granted,
                message: format!("{GRANTED_BY} {}", grant.rule),
            },
            disclosure: None,
            fields: grant.fields.clone(),
            max_rows: grant.max_rows,
            row_filter: grant.row_filter.clone(),
            rate_limit: grant.rate_limit,
            policy_hash: self.hash.clone(),
        }
    }

    pub(crate) fn sources(&self) -> &[SourceFile] {
        &self.sources
    }

    fn first_matching_deny(
        &self,
        cid: Option<u32>,
        did: Option<u32>,
        pid: u32,
        request: &Request<'_>,
    ) -> Option<&DenyRule> {
        let mut best: Option<u32> = None;
        for shape in 0u8..8 {
            if self.index.deny_shapes & (1 << shape) == 0 {
                continue;
            }
            let c = if shape & 1 != 0 {
                ANY
            } else {
                match cid {
                    Some(c) => c,
                    None => continue,
                }
            };
            let d = if shape & 2 != 0 {
                ANY
            } else {
                match did {
                    Some(d) => d,
                    None => continue,
                }
            };
            let p = if shape & 4 != 0 { ANY } else { pid };
            if let Some(list) = self.index.denies.get(&(c, d, p)) {
                for &i in list {
                    if best.is_some_and(|b| b < i) {
                        break;
                    }
                    if self.compiled.denies[i as usize].matches(request) {
                        best = Some(i);
                        break;
                    }
                }
            }
        }
        best.map(|i| &self.compiled.denies[i as usize])
    }

    /// Decide among grants (indexes into the grants, in rule order) that match the consumer,
    /// dataset and purpose.
    fn evaluate_grants(
        &self,
        candidates: impl Iterator<Item = usize>,
        request: &Request<'_>,
    ) -> Decision {
        let mut closest: Option<(&Grant, crate::rules::GrantFailure)> = None;
        for i in candidates {
            if self.index.released[i].passes(request) {
                return self.allow(i);
            }
            let grant = &self.compiled.grants[i];
            match grant.check(request) {
                Ok(()) => return self.allow(i),
                Err(f) => {
                    let closer = match &closest {
                        None => true,
                        Some((_, best)) => f.stage > best.stage,
                    };
                    if closer {
                        closest = Some((grant, f));
                    }
                }
            }
        }
        match closest {
            Some((grant, f)) => self.grant_failed(grant, f),
            // Callers pass a non-empty candidate list; an empty one is the default deny.
            None => self.no_grant(request),
        }
    }

    /// The denial naming `grant` and the condition it failed.
    fn grant_failed(&self, grant: &Grant, f: crate::rules::GrantFailure) -> Decision {
        let told = Disclosure {
            code: f.code,
            message: f.told,
            rule: Some(grant.rule.clone()),
        };
        Decision::deny(
            Some(grant.rule.clone()),
            f.code,
            f.message,
            told,
            &self.hash,
        )
    }

    /// Grant `i`'s `granted` message and rule reference, from the packed copy.
    fn message_and_rule(&self, i: usize) -> (&str, RuleRef) {
        let r = &self.index.released[i];
        let message = &self.index.messages[r.message.0 as usize..r.message.1 as usize];
        let id_start = GRANTED_BY.len() + 2;
        let rule = RuleRef {
            file: self.index.names[r.file as usize].clone(),
            line: r.line,
            id: message[id_start..id_start + r.id_len as usize].to_string(),
        };
        (message, rule)
    }

    fn allow(&self, i: usize) -> Decision {
        let (grant, r) = (&self.compiled.grants[i], &self.index.released[i]);
        let (message, rule) = self.message_and_rule(i);
        Decision {
            allowed: true,
            reason: crate::decision::Reason {
                code: ReasonCode::Granted,
                message: message.to_string(),
            },
            disclosure: None,
            rule: Some(rule),
            fields: r
                .fields
                .iter()
                .map(|&(name, mask)| FieldRelease {
                    name: self.index.names[name as usize].clone(),
                    mask,
                })
                .collect(),
            max_rows: r.max_rows,
            row_filter: if r.simple {
                Vec::new()
            } else {
                grant.row_filter.clone()
            },
            rate_limit: r.rate_limit,
            policy_hash: self.hash.clone(),
        }
    }

    pub(crate) fn unknown_purpose(&self, request: &Request<'_>) -> Decision {
        let hint = did_you_mean(
            request.purpose,
            self.compiled.purposes.iter().map(|p| p.id.as_str()),
        );
        Decision::deny(
            None,
            ReasonCode::UnknownPurpose,
            format!("purpose \"{}\" is not declared{hint}", request.purpose),
            Disclosure {
                code: ReasonCode::UnknownPurpose,
                message: "the purpose is not one of the declared purposes".to_string(),
                rule: None,
            },
            &self.hash,
        )
    }

    pub(crate) fn no_grant(&self, request: &Request<'_>) -> Decision {
        Decision::deny(
            None,
            ReasonCode::NoGrant,
            format!(
                "no grant lets \"{}\" read \"{}\"",
                request.consumer, request.dataset
            ),
            Disclosure {
                code: ReasonCode::NoGrant,
                message: "no grant lets this consumer read this dataset".to_string(),
                rule: None,
            },
            &self.hash,
        )
    }

    fn purpose_not_allowed(&self, first: usize, request: &Request<'_>) -> Decision {
        let (_, rule) = self.message_and_rule(first);
        let mut message = String::with_capacity(200);
        let _ = write!(
            message,
            "grant \"{}\" lets \"{}\" read \"{}\" only for ",
            rule.id, request.consumer, request.dataset
        );
        for (n, &p) in self.index.released[first].purposes.iter().enumerate() {
            if n > 0 {
                message.push_str(", ");
            }
            message.push_str(&self.compiled.purposes[p as usize].id);
        }
        let _ = write!(message, ", not for \"{}\"", request.purpose);
        let told = Disclosure {
            code: ReasonCode::PurposeNotAllowed,
            message: format!("grant \"{}\" does not cover this purpose", rule.id),
            rule: Some(rule.clone()),
        };
        Decision::deny(
            Some(rule),
            ReasonCode::PurposeNotAllowed,
            message,
            told,
            &self.hash,
        )
    }
}

/// SHA-256 over, for each file in name order: u64 big-endian length of the name, the name, u64
/// big-endian length of the content, the content.
fn content_hash(sources: &[SourceFile]) -> String {
    let mut h = Sha256::new();
    for s in sources {
        h.update((s.name.len() as u64).to_be_bytes());
        h.update(s.name.as_bytes());
        h.update((s.text.len() as u64).to_be_bytes());
        h.update(s.text.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Read the policy files of a directory (not recursive), sorted by name.
pub(crate) fn read_dir_sources(dir: &Path) -> Result<Vec<SourceFile>, LoadError> {
    let io = |path: &Path, source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !compile::is_policy_file(&name) {
            continue;
        }
        let path = entry.path();
        if !entry.file_type().map_err(|e| io(&path, e))?.is_file() && !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        out.push(SourceFile {
            name,
            display: path,
            text,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn intern(map: &mut FxMap<String, u32>, s: &str) -> u32 {
    if let Some(&id) = map.get(s) {
        return id;
    }
    let id = u32::try_from(map.len()).expect("fewer than 2^32 - 1 distinct names");
    map.insert(s.to_string(), id);
    id
}

fn build_index(c: &Compiled) -> Index {
    let mut ix = Index::default();
    for p in &c.purposes {
        intern(&mut ix.purposes, &p.id);
    }
    let mut name_ids = FxMap::default();
    // (consumer, dataset, purpose, grant), sorted below into the ranges of `by_cdp`.
    let mut by_cdp = Vec::with_capacity(c.grants.len() * 2);
    for (gi, g) in c.grants.iter().enumerate() {
        let start = u32::try_from(ix.messages.len()).expect("messages shorter than 4 GiB");
        for part in [GRANTED_BY, " \"", &g.rule.id, "\" (", &g.rule.file, ":"] {
            ix.messages.push_str(part);
        }
        let _ = write!(ix.messages, "{})", g.rule.line);
        let end = u32::try_from(ix.messages.len()).expect("messages shorter than 4 GiB");
        let mut name = |s: &str| {
            let id = intern(&mut name_ids, s);
            if id as usize == ix.names.len() {
                ix.names.push(s.to_string());
            }
            id
        };
        let purposes: Box<[u32]> = g.purposes.iter().map(|p| ix.purposes[p.as_str()]).collect();
        let gi = u32::try_from(gi).expect("fewer than 2^32 grants");
        let did = intern(&mut ix.datasets, &g.dataset);
        for consumer in &g.consumers {
            let cid = intern(&mut ix.consumers, consumer);
            ix.by_cd.entry((cid, did)).or_insert(gi);
            by_cdp.extend(purposes.iter().map(|&pid| (cid, did, pid, gi)));
        }
        ix.released.push(Release {
            file: name(&g.rule.file),
            line: g.rule.line,
            message: (start, end),
            id_len: u32::try_from(g.rule.id.len()).expect("short rule id"),
            simple: g.applications.is_none()
                && g.legal_bases.is_none()
                && g.params.is_empty()
                && g.row_filter.is_empty(),
            require_case: g.require_case,
            window: g.window,
            max_rows: g.max_rows,
            rate_limit: g.rate_limit,
            fields: g.fields.iter().map(|f| (name(&f.name), f.mask)).collect(),
            purposes,
        });
    }
    by_cdp.sort_unstable();
    ix.grant_lists = by_cdp.iter().map(|&(.., gi)| gi).collect();
    for (at, &(c, d, p, _)) in by_cdp.iter().enumerate() {
        let at = u32::try_from(at).expect("fewer than 2^32 grant entries");
        ix.by_cdp
            .entry((c, d, p))
            .and_modify(|range| range.1 = at + 1)
            .or_insert((at, at + 1));
    }
    for (di, d) in c.denies.iter().enumerate() {
        let di = u32::try_from(di).expect("fewer than 2^32 deny rules");
        let dataset = d.dataset.as_deref().map(|s| intern(&mut ix.datasets, s));
        let consumers: Vec<Option<u32>> = match d.consumer {
            ConsumerSpec::Any => vec![None],
            _ => d
                .consumers
                .iter()
                .map(|c| Some(intern(&mut ix.consumers, c)))
                .collect(),
        };
        let purposes: Vec<Option<u32>> = match &d.purposes {
            None => vec![None],
            Some(ps) => ps.iter().map(|p| Some(ix.purposes[p.as_str()])).collect(),
        };
        for c in &consumers {
            for p in &purposes {
                let shape = u8::from(c.is_none())
                    | (u8::from(dataset.is_none()) << 1)
                    | (u8::from(p.is_none()) << 2);
                ix.deny_shapes |= 1 << shape;
                let key = (c.unwrap_or(ANY), dataset.unwrap_or(ANY), p.unwrap_or(ANY));
                let list = ix.denies.entry(key).or_default();
                if list.last() != Some(&di) {
                    list.push(di);
                }
            }
        }
    }
    ix
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed copies decide and release what the grants they were made from say.
    #[test]
    fn packed_copies_match_the_grants() {
        let params = BTreeMap::new();
        for dept in crate::samples::DEPARTMENTS {
            let set = PolicySet::from_sources(&crate::samples::sources(dept)).expect("loads");
            for (i, g) in set.grants().iter().enumerate() {
                let d = set.allow(i);
                assert_eq!(d.rule.as_ref(), Some(&g.rule));
                assert_eq!(d.reason.message, format!("granted by {}", g.rule));
                assert_eq!(d.fields, g.fields);
                assert_eq!(d.max_rows, g.max_rows);
                assert_eq!(d.row_filter, g.row_filter);
                assert_eq!(d.rate_limit, g.rate_limit);
                let other = Request {
                    consumer: &g.consumers[0],
                    dataset: &g.dataset,
                    purpose: "no-such-purpose",
                    legal_basis: "",
                    case: "",
                    application: None,
                    params: &params,
                    at_unix: 0,
                };
                let message = set.purpose_not_allowed(i, &other).reason.message;
                assert!(message.contains(&format!(" only for {}, ", g.purposes.join(", "))));
                for at_unix in [i64::MIN, 0, 1_750_000_000, i64::MAX] {
                    for case in ["", " ", "C-1"] {
                        for application in [None, Some("benefits-portal"), Some("")] {
                            let r = Request {
                                case,
                                at_unix,
                                application,
                                ..other
                            };
                            let packed = &set.index.released[i];
                            if packed.passes(&r) || packed.simple {
                                assert_eq!(packed.passes(&r), g.check(&r).is_ok(), "{}", g.rule);
                            }
                        }
                    }
                }
            }
        }
    }
}
