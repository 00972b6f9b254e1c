//! Oversight: one verified view of every department's access log.
//!
//! An oversight node (`role = "oversight"`, certificate `causeway://<federation>/oversight/<id>`)
//! pulls every department's log over mTLS and verifies it before storing it ([`pull`]): the
//! checkpoint's signature and witness cosignatures, consistency with the checkpoint it held, every
//! entry re-hashed, the `prev` chain and the rebuilt Merkle root. The verified entries go into a
//! [`replica::Replica`] indexed for search. On top of it: the [`crosscheck`] of both sides of every
//! exchange, the citizen's [`report`], and the [`dashboard`]. Every query anyone makes here, from
//! the dashboard or the command line, is first answered and then notarized in the node's own
//! ledger as an `oversight-query` entry (who asked, the filter with subjects only as tags, how many
//! results); a query that cannot be notarized is not answered.
//!
//! The node never learns a raw national id except for the moment it computes a tag from a
//! dashboard form; it never stores, logs or echoes one.

pub mod bundle;
pub mod crosscheck;
pub mod dashboard;
pub mod evidence;
pub mod gate;
pub mod investigation;
pub mod oidc;
mod pages;
pub mod pull;
pub mod replica;
pub mod report;
pub mod seal;
pub mod session;
pub mod staff;
pub mod watch;

use std::sync::{Arc, RwLock};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use self::crosscheck::{CrossCheck, Finding, Incremental};
use self::pull::{blocking, LogPuller, PullError, PullReport};
use self::replica::{LogState, Query, Replica, ReplicaError, SearchResult};
use self::report::SubjectReport;
use crate::config::{GatewayConfig, Role};
use crate::directory::{Directory, LiveDirectory};
use crate::identity::tls::TlsMaterial;
use crate::identity::{DeptId, GatewayKey, PeerIdentity, TagKey, TagRoot};
use crate::transport::peer::PeerTransport;
use causeway_ledger::entry::{Entry, Kind};
use causeway_ledger::{Appended, Ledger, LedgerError};

pub use crate::config::OversightSection;

/// Why an oversight query was not answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OversightError {
    /// The replica could not be read.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// The query could not be notarized, so it is not answered.
    #[error(
        "the query could not be notarized in the oversight ledger, so it is not answered: {0}"
    )]
    Notarize(#[from] LedgerError),
}

/// Who asked an oversight query, as the oversight ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Asker {
    /// The signed-in staff member's account name, or `cli:<user>` for the local command line
    /// (whoever can read the node's files is its administrator).
    pub who: String,
    /// The role the query was allowed under (`viewer`, `investigator`, `subject-officer`,
    /// `administrator`).
    pub role: String,
    /// `dashboard`, `api` or `cli`.
    pub via: &'static str,
}

impl Asker {
    /// An asker whose name is cut to 128 printable characters (it is stored in the ledger).
    pub fn new(who: &str, role: &str, via: &'static str) -> Self {
        let who: String = who.chars().filter(|c| !c.is_control()).take(128).collect();
        Asker {
            who: if who.is_empty() {
                "unknown".into()
            } else {
                who
            },
            role: role.chars().filter(|c| !c.is_control()).take(32).collect(),
            via,
        }
    }

    /// The local operator running the command line on the node's files (the node is stopped).
    pub fn cli() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "operator".into());
        Asker::new(&format!("cli:{user}"), "administrator", "cli")
    }
}

/// The departments whose exchanges a query's results touched, sorted, each once.
pub type Touched = std::collections::BTreeSet<String>;

/// The departments named in `names` (absent ones skipped).
fn touched<'a>(names: impl Iterator<Item = Option<&'a str>>) -> Touched {
    names.flatten().map(str::to_owned).collect()
}

/// Called with (department, entries verified, checkpoint size) as a pull goes.
pub type PullProgress = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

/// Verification status of one department's log, for the dashboard and `audit pull`.
#[derive(Debug, Clone, Serialize)]
pub struct LogStatus {
    /// Department id.
    pub department: String,
    /// Display name.
    pub name: String,
    /// Its log's origin.
    pub origin: String,
    /// What is replicated and verified.
    pub state: LogState,
    /// Witnesses the directory lists (other than the department itself).
    pub known_witnesses: usize,
}

/// Every department's tag keys, derived from the tag root: how a national id becomes the tags
/// each department wrote for it.
pub struct SubjectTags {
    root: TagRoot,
    versions: u32,
    legacy: Option<TagKey>,
    /// The keys derived for the departments of the directory last asked about.
    derived: std::sync::Mutex<(Vec<DeptId>, Arc<Vec<TagKey>>)>,
}

impl std::fmt::Debug for SubjectTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubjectTags({} versions)", self.versions)
    }
}

impl SubjectTags {
    /// The keys of every department the directory lists, in versions 1 to
    /// `[oversight] tag_key_versions`, and the legacy federation-wide key if `[identity] tag_key`
    /// names one.
    pub fn load(config: &GatewayConfig) -> Result<SubjectTags> {
        let root = config.identity.tag_root.as_deref().with_context(|| {
            "[identity] tag_root is missing: an oversight node derives every department's tag key \
             from the tag root (certs/tag-root.key, written by `causeway certs init`)"
        })?;
        let root = TagRoot::load(root)?;
        let versions = config
            .oversight
            .as_ref()
            .map_or(1, |o| o.tag_key_versions)
            .clamp(1, crate::identity::MAX_TAG_KEY_VERSION);
        let legacy = config
            .identity
            .tag_key
            .as_deref()
            .map(TagKey::load)
            .transpose()?;
        Ok(SubjectTags {
            root,
            versions,
            legacy,
            derived: std::sync::Mutex::default(),
        })
    }

    /// The keys of every department `directory` lists (derived again when its membership changed).
    fn keys(&self, directory: &Directory) -> Arc<Vec<TagKey>> {
        let members: Vec<DeptId> = directory.departments().map(|d| d.id.clone()).collect();
        let mut derived = self.derived.lock().unwrap_or_else(|p| p.into_inner());
        if derived.0 != members || derived.1.is_empty() {
            let mut keys = Vec::new();
            for dept in &members {
                for version in 1..=self.versions {
                    keys.push(
                        self.root
                            .department_key(&directory.federation, dept, version),
                    );
                }
            }
            keys.extend(self.legacy.clone());
            *derived = (members, Arc::new(keys));
        }
        derived.1.clone()
    }

    /// The subject tags of `national_id` under every key of `directory`'s departments,
    /// comma-separated.
    pub fn of(&self, directory: &Directory, national_id: &str) -> String {
        self.keys(directory)
            .iter()
            .map(|k| k.tag("subject", national_id))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// An open oversight node: replica, own ledger, keys, and the way to reach departments.
pub struct Oversight {
    me: DeptId,
    directory: Arc<LiveDirectory>,
    replica: Arc<Replica>,
    ledger: Arc<Ledger>,
    tags: SubjectTags,
    peers: Arc<PeerTransport>,
    settings: OversightSection,
    findings: RwLock<Arc<Vec<Finding>>>,
    /// The cross-check as of the last refresh, brought up to date by the next one.
    crosscheck_state: Arc<std::sync::Mutex<Incremental>>,
    /// When the findings were last computed.
    refreshed: std::sync::Mutex<Option<std::time::Instant>>,
    rounds: tokio::sync::Mutex<()>,
    /// Seals read so far from this node's ledger and replicated oversight logs.
    seal_index: Arc<std::sync::Mutex<seal::SealIndex>>,
    /// Notarized queries so far, by (role, query): `causeway_oversight_queries_total`.
    queries: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
}

impl std::fmt::Debug for Oversight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oversight")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Oversight {
    /// Load what an oversight `config` names: check its certificate is an oversight one for the
    /// configured id, open the replica and the node's own ledger. Returns the TLS material too.
    pub fn open(config: &GatewayConfig) -> Result<(Oversight, TlsMaterial)> {
        if config.role != Role::Oversight {
            bail!("this config is for a department gateway; an oversight node needs role = \"oversight\"");
        }
        let me = config.department.clone();
        let settings = config.oversight.clone().unwrap_or_default();
        let directory = config.live_directory()?;
        let tls = TlsMaterial::load_identity(
            &config.identity,
            directory.federation(),
            &PeerIdentity::Oversight(me.clone()),
        )?;
        let key = GatewayKey::load(&config.identity.signing_key)?;
        let tags = SubjectTags::load(config)?;
        let replica = Replica::open(&settings.replica, settings.map_size_mib)
            .with_context(|| format!("opening the replica in {}", settings.replica.display()))?;
        let ledger = Ledger::open(
            &config.ledger.dir,
            config.ledger.options(),
            key.to_note_signer(),
        )
        .with_context(|| {
            format!(
                "opening the oversight ledger in {}",
                config.ledger.dir.display()
            )
        })?;
        let peers = PeerTransport::connect(&tls, directory.federation(), config.peer.prefer)?;
        let oversight = Oversight {
            me,
            directory,
            replica: Arc::new(replica),
            ledger: Arc::new(ledger),
            tags,
            peers: Arc::new(peers),
            settings,
            findings: RwLock::default(),
            crosscheck_state: Arc::default(),
            refreshed: std::sync::Mutex::new(None),
            rounds: tokio::sync::Mutex::new(()),
            seal_index: Arc::default(),
            queries: std::sync::Mutex::default(),
        };
        Ok((oversight, tls))
    }

    /// This node's id.
    pub fn id(&self) -> &DeptId {
        &self.me
    }

    /// The federation directory in force.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.current()
    }

    /// The federation directory, as it changes.
    pub fn live_directory(&self) -> &Arc<LiveDirectory> {
        &self.directory
    }

    /// The replica.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// The node's own ledger (oversight queries, and evidence of flagged logs).
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The peer transport used to pull.
    pub fn peers(&self) -> &Arc<PeerTransport> {
        &self.peers
    }

    /// The `[oversight]` settings.
    pub fn settings(&self) -> &OversightSection {
        &self.settings
    }

    /// The keyed tags of a national id, one per department key (comma-separated, the form a
    /// `subject_tag` query takes). The id itself goes nowhere.
    pub fn subject_tag(&self, national_id: &str) -> String {
        self.tags.of(&self.directory.current(), national_id.trim())
    }

    /// The keyed tags of a national id typed into the dashboard, notarized first as a
    /// `subject-tag` query (never with the id, and the tags only as a commitment whose salt is not
    /// kept, like a search's): the tags alone let the asker find the person's entries.
    pub async fn subject_tag_notarized(
        &self,
        national_id: &str,
        asker: &Asker,
    ) -> Result<String, OversightError> {
        let tags = self.subject_tag(national_id);
        self.notarize(
            asker,
            "subject-tag",
            json!({"subject": bundle::subject_commitment(&bundle::fresh_salt(), &tags)}),
            1,
            Touched::new(),
        )
        .await?;
        Ok(tags)
    }

    /// Notarized queries so far, by (role, query).
    pub fn query_counts(&self) -> Vec<((String, String), u64)> {
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Pull every log once, concurrently (each department's and each other oversight node's);
    /// then refresh the cross-check findings.
    /// `progress(dept, done, total)` is called as entries are verified.
    pub async fn pull_all(
        &self,
        progress: PullProgress,
    ) -> Vec<(String, Result<PullReport, PullError>)> {
        let _one_round_at_a_time = self.rounds.lock().await;
        let directory = self.directory.current();
        let witnesses = Arc::new(directory.witnesses());
        let mut tasks = tokio::task::JoinSet::new();
        // Every log: each department's, and each other oversight node's (the record of its
        // queries), verified alike.
        for dept in directory.logs().filter(|d| d.id != self.me).cloned() {
            let (peers, replica, witnesses) =
                (self.peers.clone(), self.replica.clone(), witnesses.clone());
            let progress = progress.clone();
            tasks.spawn(async move {
                let id = dept.id.to_string();
                let report = LogPuller {
                    peers: &peers,
                    dept: &dept,
                    witnesses: &witnesses,
                    replica,
                }
                .pull(&|done, total| progress(&id, done, total))
                .await;
                (id, report)
            });
        }
        let mut reports = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(r) => reports.push(r),
                Err(e) => tracing::error!(error = %e, "a pull task failed"),
            }
        }
        reports.sort_by(|a, b| a.0.cmp(&b.0));
        for (dept, report) in &reports {
            match report {
                Ok(r) if r.newly_flagged => {
                    if let Some(flag) = &r.flag {
                        self.record_flag(dept, flag).await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(department = %dept, error = %e, "oversight pull failed; will retry")
                }
            }
        }
        // The cross-check looks at what arrived since the last one (crosscheck::Incremental): run
        // it when entries arrived, and otherwise only as often as a pending missing side may turn
        // into a finding.
        let changed = reports
            .iter()
            .any(|(_, r)| r.as_ref().is_ok_and(|r| r.to > r.from || r.newly_flagged));
        let stale = self
            .refreshed
            .lock()
            .expect("refresh lock poisoned")
            .is_none_or(|at| at.elapsed().as_secs() >= self.settings.grace_secs.max(60));
        if changed || stale {
            if let Err(e) = self.refresh_findings().await {
                tracing::error!(error = %e, "the cross-check failed");
            }
        }
        reports
    }

    /// Keep the evidence of a flagged log in this node's own ledger too, where it outlives the
    /// replica and is covered by this node's signed checkpoints.
    async fn record_flag(&self, dept: &str, flag: &replica::Flag) {
        let mut entry = Entry::new(Kind::Fork);
        entry.provider = Some(dept.to_owned());
        entry.reason = Some(flag.reason.clone());
        entry.detail = Some(
            json!({"log": dept, "message": flag.message, "held": flag.held, "served": flag.served, "evidence": flag.detail}),
        );
        if let Err(e) = self.ledger.append(entry).await {
            tracing::error!(error = %e, "could not record the flag's evidence in the oversight ledger");
        }
    }

    /// Re-run the cross-check over the replica and keep the findings for the dashboard.
    pub async fn refresh_findings(&self) -> Result<Arc<Vec<Finding>>, ReplicaError> {
        let findings = Arc::new(self.run_crosscheck().await?);
        *self.findings.write().expect("findings lock poisoned") = findings.clone();
        *self.refreshed.lock().expect("refresh lock poisoned") = Some(std::time::Instant::now());
        Ok(findings)
    }

    /// The findings of the last cross-check the node ran.
    pub fn findings(&self) -> Arc<Vec<Finding>> {
        self.findings
            .read()
            .expect("findings lock poisoned")
            .clone()
    }

    async fn run_crosscheck(&self) -> Result<Vec<Finding>, ReplicaError> {
        let directory = self.directory.current();
        let settings = CrossCheck {
            grace_secs: self.settings.grace_secs,
            late_secs: self.settings.late_secs,
        };
        let state = self.crosscheck_state.clone();
        blocking(&self.replica, move |r| {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            let states = r.states()?;
            state.refresh(r, &directory, &states, settings)
        })
        .await
    }

    /// Each department's verification status, in directory order.
    pub async fn statuses(&self) -> Result<Vec<LogStatus>, ReplicaError> {
        let states = blocking(&self.replica, |r| r.states()).await?;
        let directory = self.directory.current();
        Ok(directory
            .logs()
            .filter(|d| d.id != self.me)
            .map(|d| LogStatus {
                department: d.id.to_string(),
                name: d.name.clone(),
                origin: d.origin().to_owned(),
                state: states
                    .iter()
                    .find(|(id, _)| id == d.id.as_str())
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default(),
                known_witnesses: directory
                    .logs()
                    .filter(|w| w.id != d.id && w.witness.is_some())
                    .count(),
            })
            .collect())
    }

    /// The latest `n` oversight-query entries of this node's ledger, newest first.
    pub fn recent_queries(&self, n: u64) -> Result<Vec<Entry>, LedgerError> {
        self.recent(Kind::OversightQuery, n, n.saturating_mul(4))
    }

    /// The membership history: the latest `n` `directory-change` entries of this node's ledger
    /// (each directory version it applied, with its members), newest first.
    pub fn membership_history(&self, n: u64) -> Result<Vec<Entry>, LedgerError> {
        self.recent(Kind::DirectoryChange, n, u64::MAX)
    }

    /// The latest `n` entries of `kind` among the last `window` entries, newest first.
    fn recent(&self, kind: Kind, n: u64, window: u64) -> Result<Vec<Entry>, LedgerError> {
        let size = self.ledger.checkpoint().0;
        let mut out = Vec::new();
        self.ledger.read(|r| {
            r.for_each_entry(size.saturating_sub(window), size, |_, bytes| {
                if let Ok(e) = Entry::from_bytes(bytes) {
                    if e.kind == kind {
                        out.push(e);
                    }
                }
                Ok(())
            })
        })?;
        out.reverse();
        out.truncate(n as usize);
        Ok(out)
    }

    /// Notarize one query: who asked, what, how many results, and which departments' exchanges
    /// the results touched (so that each department can list the queries about its exchanges).
    async fn notarize(
        &self,
        asker: &Asker,
        query: &str,
        filter: serde_json::Value,
        results: usize,
        touched: Touched,
    ) -> Result<u64, OversightError> {
        let appended = self
            .notarize_full(asker, query, filter, results, touched)
            .await?;
        Ok(appended.entry.index)
    }

    /// [`Self::notarize`], returning the appended entry with its inclusion proof and checkpoint
    /// (the evidence a citizen's bundle carries).
    async fn notarize_full(
        &self,
        asker: &Asker,
        query: &str,
        filter: serde_json::Value,
        results: usize,
        touched: Touched,
    ) -> Result<Appended, OversightError> {
        let mut entry = Entry::new(Kind::OversightQuery);
        entry.rows = Some(results as u64);
        entry.detail = Some(json!({
            "asked_by": asker.who,
            "role": asker.role,
            "via": asker.via,
            "query": query,
            "filter": filter,
            "results": results,
            "departments": touched,
        }));
        let appended = self.ledger.append(entry).await?;
        *self
            .queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((asker.role.clone(), query.to_owned()))
            .or_default() += 1;
        Ok(appended)
    }

    /// Search the replica (notarized as `search`, or as `export` for downloads).
    pub async fn search(
        &self,
        query: &Query,
        asker: &Asker,
        what: &str,
    ) -> Result<SearchResult, OversightError> {
        let q = query.clone();
        let result = blocking(&self.replica, move |r| r.search(&q)).await?;
        let mut filter = serde_json::to_value(query).expect("a query always serializes");
        // Departments can read this log and compute their own tags: the subject is notarized as
        // a hiding commitment. Nobody needs to open a search's, so its salt is not kept.
        if let Some(tags) = &query.subject_tag {
            filter["subject"] = json!(bundle::subject_commitment(
                &bundle::fresh_salt(),
                &bundle::canonical_tags(tags)
            ));
            if let Some(f) = filter.as_object_mut() {
                f.remove("subject_tag");
            }
        }
        let touched = touched(result.records.iter().flat_map(|r| {
            [
                Some(r.log.as_str()),
                r.entry.consumer.as_deref(),
                r.entry.provider.as_deref(),
            ]
        }));
        self.notarize(asker, what, filter, result.records.len(), touched)
            .await?;
        Ok(result)
    }

    /// The citizen's report for a person's subject tags (comma-separated), leaving out the
    /// exchanges under a seal in force. Notarized with the subject as a hiding commitment
    /// ([`bundle::subject_commitment`]) whose salt the report carries (`subject_salt`), so that
    /// only whoever holds the report can show the query was about this person.
    pub async fn subject_report(
        &self,
        subject_tag: &str,
        asker: &Asker,
    ) -> Result<SubjectReport, OversightError> {
        let tags = bundle::canonical_tags(subject_tag);
        let seals = self.seals_in_force().await?;
        let mut report = {
            let tags = tags.clone();
            blocking(&self.replica, move |r| {
                SubjectReport::build(r, &tags, &seals)
            })
            .await?
        };
        let touched = touched(
            report
                .exchanges
                .iter()
                .flat_map(|x| [Some(x.consumer.as_str()), Some(x.provider.as_str())]),
        );
        let salt = bundle::fresh_salt();
        let index = self
            .notarize(
                asker,
                bundle::SUBJECT_REPORT_QUERY,
                json!({"subject": bundle::subject_commitment(&salt, &tags)}),
                report.exchanges.len(),
                touched,
            )
            .await?;
        report.subject_salt = Some(hex::encode(salt));
        report.notarized = Some(index);
        Ok(report)
    }

    /// Run the cross-check now (notarized).
    pub async fn crosscheck(&self, asker: &Asker) -> Result<Vec<Finding>, OversightError> {
        let findings = self.refresh_findings().await?;
        let touched = touched(
            findings
                .iter()
                .flat_map(|f| [f.consumer.as_deref(), f.provider.as_deref()]),
        );
        self.notarize(asker, "crosscheck", json!({}), findings.len(), touched)
            .await?;
        Ok(findings.as_ref().clone())
    }

    /// Stop the ledger writer (after the node stopped serving).
    pub fn close(&self) {
        self.ledger.close();
    }
}
