//! The `causeway` binary as an operator uses it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use lmdb::{Transaction, WriteFlags};
use support::{causeway, text};

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Enrollment: the department makes its keys and a request on its own machine; the operator
/// signs the request and never sees a private key. A request for another department's identity,
/// or a tampered one, is refused.
#[test]
fn enrollment_keeps_keys_with_the_department_and_signs_only_its_own_identity() {
    let operator = tempfile::tempdir().unwrap();
    let department = tempfile::tempdir().unwrap();
    let ca = operator.path().to_str().unwrap();
    let own = department.path().to_str().unwrap();
    let init = causeway(&["certs", "init", "--federation", "test-fed", "--out", ca]);
    assert!(init.status.success(), "{}", text(&init));
    let ca_pem = format!("{ca}/ca.pem");
    let request = causeway(&[
        "certs",
        "request",
        "--dept",
        "tax-office",
        "--ca",
        &ca_pem,
        "--out",
        own,
        "--host",
        "tax.gw.example",
    ]);
    assert!(request.status.success(), "{}", text(&request));
    assert!(text(&request).contains("vkey = \"test-fed/tax-office+"));
    #[cfg(unix)]
    for key in [
        "tax-office.key",
        "tax-office.signing.key",
        "tax-office.witness.key",
    ] {
        assert_eq!(mode(&department.path().join(key)), 0o600, "{key}");
    }
    let csr = format!("{own}/tax-office.csr.pem");
    let sign = |dept: &str, csr: &str| {
        causeway(&[
            "certs", "sign", "--ca", ca, "--csr", csr, "--dept", dept, "--out", own,
        ])
    };
    let signed = sign("tax-office", &csr);
    assert!(signed.status.success(), "{}", text(&signed));
    // The certificate proves the department's identity and carries its host name, and its key
    // is the one that never left the department's machine.
    let pem = std::fs::read(department.path().join("tax-office.pem")).unwrap();
    let der: rustls_pki_types::CertificateDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    assert_eq!(
        causeway::identity::identity_from_cert(&der, "test-fed").unwrap(),
        causeway::identity::PeerIdentity::Dept(
            causeway::identity::DeptId::new("tax-office").unwrap()
        )
    );
    causeway::identity::tls::TlsMaterial::load(
        &operator.path().join("ca.pem"),
        None,
        &department.path().join("tax-office.pem"),
        &department.path().join("tax-office.key"),
    )
    .and_then(|tls| tls.client_config(&[b"h2"]))
    .expect("the certificate matches the department's own key");
    let operator_files: Vec<String> = std::fs::read_dir(operator.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !operator_files.iter().any(|f| f.starts_with("tax-office")),
        "the operator holds nothing of the department's: {operator_files:?}"
    );

    // The attack: the tax office asks the operator to sign its request as the civil registry's.
    let as_other = sign("civil-registry", &csr);
    assert!(!as_other.status.success());
    assert!(
        text(&as_other).contains("may only carry causeway://test-fed/dept/civil-registry"),
        "{}",
        text(&as_other)
    );
    // A request whose contents were changed after it was signed.
    let mut tampered = std::fs::read_to_string(&csr).unwrap();
    let at = tampered.find("\n").unwrap() + 40;
    let flipped = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, flipped);
    let tampered_path = format!("{own}/tampered.csr.pem");
    std::fs::write(&tampered_path, tampered).unwrap();
    let refused = sign("tax-office", &tampered_path);
    assert!(!refused.status.success(), "{}", text(&refused));
}

#[test]
fn certs_init_and_issue_write_private_keys_0600() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let init = causeway(&["certs", "init", "--federation", "test-fed", "--out", out]);
    assert!(init.status.success(), "{}", text(&init));
    let again = causeway(&["certs", "init", "--federation", "test-fed", "--out", out]);
    assert!(
        !again.status.success(),
        "a second init must not overwrite the CA"
    );
    assert!(text(&again).contains("already"), "{}", text(&again));
    let issue = causeway(&["certs", "issue", "--dept", "tax-office", "--out", out]);
    assert!(issue.status.success(), "{}", text(&issue));
    assert!(
        text(&issue).contains("vkey = \"test-fed/tax-office+"),
        "{}",
        text(&issue)
    );
    let tag_key = causeway(&[
        "certs",
        "tag-key",
        "--root",
        &format!("{out}/tag-root.key"),
        "--ca",
        out,
        "--dept",
        "tax-office",
        "--out",
        out,
    ]);
    assert!(tag_key.status.success(), "{}", text(&tag_key));
    let written = std::fs::read_to_string(dir.path().join("tax-office.tag.key")).unwrap();
    assert!(written.starts_with("1:"), "a tag key names its version");
    #[cfg(unix)]
    for key in [
        "ca.key",
        "tag-root.key",
        "tax-office.tag.key",
        "tax-office.key",
        "tax-office.signing.key",
        "tax-office.witness.key",
    ] {
        assert_eq!(mode(&dir.path().join(key)), 0o600, "{key}");
    }
    let pem = std::fs::read(dir.path().join("tax-office.pem")).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|c: rustls_pki_types::CertificateDer<'static>| c)
        .unwrap();
    assert_eq!(
        causeway::identity::identity_from_cert(&der, "test-fed").unwrap(),
        causeway::identity::PeerIdentity::Dept(
            causeway::identity::DeptId::new("tax-office").unwrap()
        )
    );
    let bad = causeway(&["certs", "issue", "--dept", "Tax Office", "--out", out]);
    assert!(
        !bad.status.success() && text(&bad).contains("invalid id"),
        "{}",
        text(&bad)
    );
}

#[test]
fn demo_once_then_log_verify_catches_a_changed_byte_and_names_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let fed = dir.path().join("fed");
    let demo = causeway(&[
        "demo",
        "--dir",
        fed.to_str().unwrap(),
        "--once",
        "--people",
        "300",
    ]);
    assert!(demo.status.success(), "{}", text(&demo));
    let shown = text(&demo);
    assert!(
        shown.contains("ALLOWED") && shown.contains("403 purpose-not-allowed"),
        "{shown}"
    );

    // Two oversight centres: each pulled and verified the other's log.
    for (node, other) in [
        ("audit-office", "data-protection"),
        ("data-protection", "audit-office"),
    ] {
        let section = shown
            .split(&format!("Oversight node {node} pulled"))
            .nth(1)
            .unwrap_or_else(|| panic!("{node} did not report its pull: {shown}"));
        assert!(
            section
                .lines()
                .any(|l| l.trim_start().starts_with(other) && l.contains("entries verified")),
            "{node} verified {other}'s log: {shown}"
        );
    }
    // Each centre has staff accounts whose passwords the demo wrote for the operator alone.
    for node in ["oversight", "oversight-data-protection"] {
        let passwords = fed.join(node).join("staff-passwords.txt");
        #[cfg(unix)]
        assert_eq!(mode(&passwords), 0o600, "{}", passwords.display());
        assert!(shown.contains(passwords.to_str().unwrap()), "{shown}");
        let config = fed.join(node).join("causeway.toml");
        let list = causeway(&[
            "oversight",
            "staff",
            "list",
            "--config",
            config.to_str().unwrap(),
        ]);
        let listed = text(&list);
        assert!(list.status.success(), "{listed}");
        for name in ["viewer", "investigator", "officer", "admin"] {
            assert!(listed.contains(name), "{listed}");
        }
        assert!(
            listed.contains("4 account(s)") && !listed.contains("$argon2"),
            "{listed}"
        );
    }
    let directory = fed.join("federation.toml");
    for node in ["oversight", "oversight-data-protection"] {
        let ledger = fed.join(node).join("ledger");
        let verified = causeway(&[
            "log",
            "verify",
            "--ledger",
            ledger.to_str().unwrap(),
            "--directory",
            directory.to_str().unwrap(),
        ]);
        assert!(verified.status.success(), "{}", text(&verified));
    }

    let ledger = fed.join("civil-registry/ledger");
    let args = [
        "log",
        "verify",
        "--ledger",
        ledger.to_str().unwrap(),
        "--directory",
        directory.to_str().unwrap(),
    ];
    let ok = causeway(&args);
    assert!(ok.status.success(), "{}", text(&ok));

    let show = causeway(&[
        "log",
        "show",
        "--ledger",
        ledger.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(show.status.success());
    let shown: Vec<serde_json::Value> =
        serde_json::from_slice(&show.stdout).expect("log show --output json prints one JSON array");
    assert!(shown.len() >= 4, "{shown:?}");
    assert_eq!(shown[2]["index"], 2, "{shown:?}");

    // Flip one byte of entry 2 (inside a string, so the JSON still parses).
    {
        let env = lmdb::Environment::new()
            .set_max_dbs(8)
            .open(&ledger)
            .unwrap();
        let db = env.open_db(Some("entries")).unwrap();
        let mut txn = env.begin_rw_txn().unwrap();
        let mut bytes = txn.get(db, &2u64.to_be_bytes()).unwrap().to_vec();
        let at = bytes
            .windows(9)
            .position(|w| w == b"residents")
            .expect("entry 2 names the dataset");
        bytes[at] = b'R';
        txn.put(db, &2u64.to_be_bytes(), &bytes, WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }
    let failed = causeway(&args);
    assert!(
        !failed.status.success(),
        "a changed byte must fail verification"
    );
    assert!(text(&failed).contains("entry 2:"), "{}", text(&failed));

    let policy = causeway(&[
        "policy",
        "check",
        fed.join("civil-registry/policies").to_str().unwrap(),
    ]);
    assert!(policy.status.success(), "{}", text(&policy));
}

#[test]
fn serve_with_a_bad_config_names_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("causeway.toml");
    std::fs::write(
        &config,
        "department = \"tax\"\ndirectory = \"f.toml\"\nlisten = 1\n",
    )
    .unwrap();
    let out = causeway(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("causeway.toml:3:1") && msg.contains("listen"),
        "{msg}"
    );
    let missing = causeway(&[
        "serve",
        "--config",
        dir.path().join("nope.toml").to_str().unwrap(),
    ]);
    assert!(
        !missing.status.success() && text(&missing).contains("nope.toml"),
        "{}",
        text(&missing)
    );
}

#[test]
fn certs_revoke_and_crl_write_a_numbered_crl_and_refuse_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let other = tempfile::tempdir().unwrap();
    let elsewhere = other.path().to_str().unwrap();
    for ca in [out, elsewhere] {
        let init = causeway(&["certs", "init", "--federation", "test-fed", "--out", ca]);
        assert!(init.status.success(), "{}", text(&init));
        let issue = causeway(&["certs", "issue", "--dept", "tax-office", "--out", ca]);
        assert!(issue.status.success(), "{}", text(&issue));
    }
    let cert = format!("{out}/tax-office.pem");
    let revoke = causeway(&[
        "certs",
        "revoke",
        "--ca",
        out,
        "--cert",
        &cert,
        "--reason",
        "keyCompromise",
    ]);
    assert!(revoke.status.success(), "{}", text(&revoke));
    assert!(
        text(&revoke).contains("causeway://test-fed/dept/tax-office"),
        "{}",
        text(&revoke)
    );
    assert!(
        text(&revoke).contains("number 1, 1 revoked"),
        "{}",
        text(&revoke)
    );
    let crl = causeway(&["certs", "crl", "--ca", out, "--next-update-days", "7"]);
    assert!(crl.status.success(), "{}", text(&crl));
    assert!(text(&crl).contains("number 2, 1 revoked"), "{}", text(&crl));
    let pem = std::fs::read_to_string(dir.path().join("crl.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");

    // A certificate of another CA (of the same name), and an unknown reason: refused, unchanged.
    let stranger = format!("{elsewhere}/tax-office.pem");
    let refused = causeway(&["certs", "revoke", "--ca", out, "--cert", &stranger]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("was not issued by the federation CA"),
        "{}",
        text(&refused)
    );
    let refused = causeway(&[
        "certs", "revoke", "--ca", out, "--cert", &cert, "--reason", "stolen",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("keyCompromise"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("crl.pem")).unwrap(),
        pem
    );
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for args in [
        vec!["demo", "--help"],
        vec!["serve", "--help"],
        vec!["certs", "init", "--help"],
        vec!["certs", "issue", "--help"],
        vec!["certs", "revoke", "--help"],
        vec!["certs", "crl", "--help"],
        vec!["request", "--help"],
        vec!["log", "verify", "--help"],
        vec!["log", "show", "--help"],
        vec!["policy", "check", "--help"],
        vec!["oversight", "staff", "add", "--help"],
        vec!["oversight", "staff", "passwd", "--help"],
        vec!["oversight", "staff", "disable", "--help"],
        vec!["oversight", "staff", "enable", "--help"],
        vec!["oversight", "staff", "list", "--help"],
        vec!["audit", "search", "--help"],
        vec!["doctor", "--help"],
        vec!["log", "proof", "--help"],
    ] {
        let out = causeway(&args);
        assert!(out.status.success(), "{args:?}");
        let help = text(&out);
        assert!(help.contains("Example"), "{args:?} has no example:\n{help}");
        assert!(
            help.contains("Exit codes:") && help.contains("4  refused"),
            "{args:?} lists no exit codes:\n{help}"
        );
    }
    for args in [
        vec!["serve", "--help"],
        vec!["doctor", "--help"],
        vec!["audit", "status", "--help"],
        vec!["request", "--help"],
    ] {
        let help = text(&causeway(&args));
        assert!(
            help.contains("[env: CAUSEWAY_CONFIG"),
            "{args:?}: --config does not show its environment variable:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_civil_registry_on_postgresql() {
    let database = format!("causeway_demo_{}", std::process::id());
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let dir = tempfile::tempdir().unwrap();
    let fed = dir.path().join("fed");
    let out = tokio::task::spawn_blocking({
        let (fed, url) = (fed.clone(), url.clone());
        move || {
            causeway(&[
                "demo",
                "--dir",
                fed.to_str().unwrap(),
                "--once",
                "--people",
                "300",
                "--db",
                "postgres",
                "--pg-url",
                &url,
            ])
        }
    })
    .await
    .unwrap();
    let shown = text(&out);
    // Drop the scratch database whatever happened.
    if let Ok((client, connection)) = tokio_postgres::connect(
        "host=127.0.0.1 user=postgres dbname=postgres",
        tokio_postgres::NoTls,
    )
    .await
    {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .await;
    }
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("PostgreSQL"), "{shown}");
    let datasets = std::fs::read_to_string(fed.join("civil-registry/datasets.toml")).unwrap();
    assert!(datasets.contains("adapter = \"postgres\""), "{datasets}");
    let allowed = shown
        .lines()
        .filter(|l| l.contains("-> civil-registry") && l.contains("ALLOWED"))
        .count();
    assert_eq!(
        allowed, 2,
        "both allowed requests to the civil registry were served from PostgreSQL:\n{shown}"
    );
}

/// Text another department or an application wrote: terminal escapes (clear the screen, set the
/// window title), a C1 control-sequence introducer and a right-to-left override.
const CLEAR: &str = "\u{1b}[2J";
const TITLE: &str = "\u{1b}]0;title\u{7}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_show_prints_control_and_bidi_characters_as_visible_escapes() {
    use causeway_ledger::entry::{Entry, Kind, Side};
    use causeway_ledger::note::NoteSigner;
    use causeway_ledger::{Ledger, LedgerOptions};

    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("ledger");
    std::fs::create_dir_all(&ledger_dir).unwrap();
    let signer = NoteSigner::new(
        "test/hostile",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    let ledger = Ledger::open(&ledger_dir, LedgerOptions::default(), signer).unwrap();
    let mut entry = Entry::new(Kind::Denied);
    entry.side = Some(Side::Provider);
    entry.id = Some("x-1".into());
    entry.consumer = Some(format!("tax{CLEAR}"));
    entry.provider = Some("civil\u{202E}yrtsiger".into());
    entry.dataset = Some(format!("residents{TITLE}"));
    entry.purpose = Some(r#"=HYPERLINK("http://x","y")"#.into());
    entry.legal_basis = Some("\u{202E}law".into());
    entry.case = Some(CLEAR.into());
    entry.decision = Some("deny".into());
    entry.reason = Some("\u{9b}31m".into());
    ledger.append(entry.clone()).await.unwrap();
    ledger.close();
    drop(ledger);

    let raw = ["\u{1b}", "\u{7}", "\u{9b}", "\u{202E}"];
    let ledger_arg = ledger_dir.to_str().unwrap();
    let table = causeway(&["log", "show", "--ledger", ledger_arg]);
    assert!(table.status.success(), "{}", text(&table));
    let table = String::from_utf8(table.stdout).unwrap();
    for c in raw {
        assert!(
            !table.contains(c),
            "a raw {c:?} reached the terminal: {table:?}"
        );
    }
    for shown in [
        r"tax\u{1b}[2J",
        r"civil\u{202e}yrtsiger",
        r"residents\u{1b}]0;title\u{7}",
        r"deny (\u{9b}31m)",
    ] {
        assert!(table.contains(shown), "{shown} is not in {table}");
    }

    let json = causeway(&["log", "show", "--ledger", ledger_arg, "--output", "json"]);
    assert!(json.status.success(), "{}", text(&json));
    let json = String::from_utf8(json.stdout).unwrap();
    for c in raw {
        assert!(
            !json.contains(c),
            "a raw {c:?} reached the terminal: {json:?}"
        );
    }
    let mut decoded: Vec<Entry> = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded.len(), 1, "{json}");
    let decoded = decoded.remove(0);
    assert_eq!(
        (decoded.consumer, decoded.provider, decoded.dataset),
        (entry.consumer, entry.provider, entry.dataset),
        "the JSON line still decodes to the entry as it was written"
    );
    assert_eq!(
        (decoded.legal_basis, decoded.reason),
        (entry.legal_basis, entry.reason)
    );
}

/// `causeway oversight staff`: accounts added and changed with a password from stdin, kept in a
/// 0600 file as Argon2id hashes; short passwords, unknown roles and department configs refused.
#[test]
fn oversight_staff_commands_keep_hashed_accounts_in_a_private_file() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("causeway.toml");
    std::fs::write(
        &config,
        "department = \"audit-office\"\nrole = \"oversight\"\ndirectory = \"federation.toml\"\n\n[identity]\nca = \"ca.pem\"\ncert = \"o.pem\"\nkey = \"o.key\"\nsigning_key = \"o.signing.key\"\n\n[ledger]\ndir = \"ledger\"\n\n[client]\nlisten = \"127.0.0.1:1\"\n\n[peer]\nhttps = \"127.0.0.1:2\"\n\n[oversight]\nstaff = \"people/staff.toml\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("people")).unwrap();
    let config = config.to_str().unwrap();
    let with_stdin = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_causeway"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let add = |name: &str, role: &str, password: &str| {
        with_stdin(
            &[
                "oversight",
                "staff",
                "add",
                name,
                "--role",
                role,
                "--password-stdin",
                "--config",
                config,
            ],
            &format!("{password}\n"),
        )
    };
    let short = add("alice", "investigator", "too short");
    assert!(
        !short.status.success() && text(&short).contains("at least 12"),
        "{}",
        text(&short)
    );
    let bad_role = add("alice", "chief", "a long enough passphrase");
    assert!(
        !bad_role.status.success() && text(&bad_role).contains("subject-officer"),
        "{}",
        text(&bad_role)
    );
    let added = add("alice", "investigator", "a long enough passphrase");
    assert!(added.status.success(), "{}", text(&added));
    let again = add("alice", "viewer", "another long passphrase");
    assert!(!again.status.success() && text(&again).contains("exists already"));
    let staff = dir.path().join("people/staff.toml");
    #[cfg(unix)]
    assert_eq!(mode(&staff), 0o600);
    let before = std::fs::read_to_string(&staff).unwrap();
    assert!(
        before.contains("$argon2id$") && !before.contains("long enough"),
        "{before}"
    );
    let passwd = with_stdin(
        &[
            "oversight",
            "staff",
            "passwd",
            "alice",
            "--password-stdin",
            "--config",
            config,
        ],
        "a different passphrase\n",
    );
    assert!(passwd.status.success(), "{}", text(&passwd));
    let after = std::fs::read_to_string(&staff).unwrap();
    assert_ne!(before, after, "a new hash");
    let file = causeway::oversight::staff::StaffFile::load(&staff).unwrap();
    let alice = file.get("alice").unwrap();
    assert!(causeway::oversight::staff::verify_password(
        &alice.password,
        "a different passphrase"
    ));
    assert!(!causeway::oversight::staff::verify_password(
        &alice.password,
        "a long enough passphrase"
    ));
    let disable = causeway(&["oversight", "staff", "disable", "alice", "--config", config]);
    assert!(disable.status.success(), "{}", text(&disable));
    let list = causeway(&["oversight", "staff", "list", "--config", config]);
    let listed = text(&list);
    assert!(
        listed.contains("alice") && listed.contains("investigator") && listed.contains("disabled"),
        "{listed}"
    );
    assert!(!listed.contains("$argon2"), "{listed}");
    let enable = causeway(&["oversight", "staff", "enable", "alice", "--config", config]);
    assert!(enable.status.success());
    assert!(text(&causeway(&[
        "oversight",
        "staff",
        "list",
        "--config",
        config
    ]))
    .contains("active"));
    // Without a terminal and without --password-stdin, nothing is asked and nothing changes.
    let no_tty = with_stdin(
        &["oversight", "staff", "passwd", "alice", "--config", config],
        "",
    );
    assert!(
        !no_tty.status.success() && text(&no_tty).contains("--password-stdin"),
        "{}",
        text(&no_tty)
    );
    assert_eq!(
        causeway::oversight::staff::StaffFile::load(&staff)
            .unwrap()
            .get("alice")
            .unwrap()
            .password,
        alice.password
    );
}

/// `causeway ... --output json` on stdout: exactly one JSON document, whatever went to stderr.
fn document(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(out)))
}

/// For scripts: every command that prints data prints one JSON document with `--output json`, the
/// exit codes say what happened (docs/OPERATIONS.md, "The command line in scripts"), `--config`
/// comes from CAUSEWAY_CONFIG, and an index past the end of a ledger is named as such.
#[test]
fn scripts_get_one_json_document_from_each_data_command_and_documented_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let fed = dir.path().join("fed");
    let demo = causeway(&[
        "demo",
        "--dir",
        fed.to_str().unwrap(),
        "--once",
        "--people",
        "100",
    ]);
    assert!(demo.status.success(), "{}", text(&demo));
    let p = |rel: &str| fed.join(rel).to_str().unwrap().to_owned();
    let (ledger, directory, node) = (
        p("civil-registry/ledger"),
        p("federation.toml"),
        p("oversight/causeway.toml"),
    );
    let policies = p("civil-registry/policies");

    // Each data command: exit 0 (or 1 where it found something), one document on stdout.
    let json = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let out = causeway(&args);
        (out.status.code(), document(&out))
    };
    let (code, verified) = json(&[
        "log",
        "verify",
        "--ledger",
        &ledger,
        "--directory",
        &directory,
    ]);
    assert_eq!(
        (code, &verified["ok"]),
        (Some(0), &true.into()),
        "{verified}"
    );
    let size = verified["entries"].as_u64().unwrap();
    let (code, shown) = json(&["log", "show", "--ledger", &ledger]);
    assert_eq!(code, Some(0));
    assert_eq!(shown.as_array().unwrap().len() as u64, size, "{shown}");
    let proof = dir.path().join("entry-1.tlog-proof");
    let out = causeway(&["log", "proof", "--ledger", &ledger, "--index", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&proof, &out.stdout).unwrap();
    let (code, checked) = json(&[
        "log",
        "verify-proof",
        proof.to_str().unwrap(),
        "--directory",
        &directory,
    ]);
    assert_eq!((code, &checked["index"]), (Some(0), &1.into()), "{checked}");
    for args in [
        vec!["policy", "check", &policies],
        vec!["policy", "test", &policies],
        vec!["policy", "diff", &policies, &policies],
        vec![
            "policy",
            "explain",
            &policies,
            "--consumer",
            "tax-office",
            "--dataset",
            "residents",
            "--purpose",
            "marketing",
        ],
        vec!["oversight", "staff", "list", "--config", &node],
        vec!["audit", "status", "--config", &node],
        vec!["audit", "search", "--config", &node, "--limit", "5"],
        vec!["audit", "subject", "--id", "D000042", "--config", &node],
    ] {
        let (code, _) = json(&args);
        assert_eq!(code, Some(0), "{args:?}");
    }
    let (code, findings) = json(&["audit", "crosscheck", "--config", &node]);
    assert!(findings.is_array(), "{findings}");
    assert_eq!(
        code,
        Some(if findings.as_array().unwrap().is_empty() {
            0
        } else {
            1
        }),
        "findings exit 1, none 0"
    );
    let (_, staff) = json(&["oversight", "staff", "list", "--config", &node]);
    assert_eq!(staff["staff"].as_array().unwrap().len(), 4, "{staff}");
    assert!(!staff.to_string().contains("$argon2"), "{staff}");
    let csv = causeway(&["audit", "search", "--config", &node, "--output", "csv"]);
    assert!(
        String::from_utf8_lossy(&csv.stdout).starts_with("log,index,"),
        "{}",
        text(&csv)
    );
    // (A real bundle needs the departments' gateways running for their proofs: the citizen's
    // report tests verify those; here, a file that is not one fails as one document.)
    let bundle = dir.path().join("report.json");
    std::fs::write(&bundle, "{}").unwrap();
    let (code, report) = json(&[
        "verify-report",
        bundle.to_str().unwrap(),
        "--directory",
        &directory,
    ]);
    assert_eq!((code, &report["ok"]), (Some(1), &false.into()), "{report}");
    assert!(report["failure"].is_string(), "{report}");

    // --config from CAUSEWAY_CONFIG.
    let from_env = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["oversight", "staff", "list", "--output", "json"])
        .env("CAUSEWAY_CONFIG", &node)
        .output()
        .unwrap();
    assert_eq!(document(&from_env), staff);

    // An index past the end is named as such (exit 1), not a damaged ledger.
    let past = (size + 10).to_string();
    let answer = dir.path().join("answer.json");
    std::fs::write(
        &answer,
        r#"{"fields": [], "rows": [], "commitment_salt": ""}"#,
    )
    .unwrap();
    let held = format!("the ledger holds entries 0..={}", size - 1);
    for args in [
        vec!["log", "proof", "--ledger", &ledger, "--index", &past],
        vec!["log", "show", "--ledger", &ledger, "--from", &past],
        vec![
            "log",
            "open",
            "--ledger",
            &ledger,
            "--index",
            &past,
            "--answer",
            answer.to_str().unwrap(),
        ],
    ] {
        let out = causeway(&args);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.contains(&format!("entry {past} does not exist")) && said.contains(&held),
            "{args:?}: {said}"
        );
        assert!(!said.contains("corrupt"), "{args:?}: {said}");
    }

    // Usage errors exit 2; what cannot run exits 3.
    let usage = causeway(&["log", "show", "--ledger", &ledger, "--output", "yaml"]);
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));
    let usage = causeway(&["log", "verify", "--output", "csv", "--ledger", &ledger]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "no CSV of a verification: {}",
        text(&usage)
    );
    let missing = causeway(&["log", "verify", "--ledger", &p("no-such-ledger")]);
    assert_eq!(missing.status.code(), Some(3), "{}", text(&missing));
}
