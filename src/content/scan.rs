//! The check of one opened file system: the paths of issue 20's table,
//! read with a size bound, judged, and dropped. Only a [`Finding`] (kind,
//! path, account) leaves a function here; the bytes read never do.
//!
//! A path that is absent, not a regular file, or a symlink loop holds
//! nothing to find (sshd, bash or the AWS CLI could not use it either).
//! Any other error (corrupt bytes, the budget spent) ends the check: the
//! caller reports the AMI as unreadable rather than clean.

use std::collections::HashSet;

use super::sshd::{self, Loader};
use super::{Finding, Kind};
use crate::disk::{DirEntry, DiskError, FileKind, FileSystem, Metadata};

/// The most read of any one file judged by its content. A larger
/// `authorized_keys` or credential file is a finding without being read
/// (it can't be cleared unread); a larger system file the check needs
/// (`/etc/environment`, a `profile.d` script, `sshd_config`) makes the file
/// system unreadable.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// `/etc/passwd` and `/etc/shadow` list every account: larger on images
/// with many, still small.
const MAX_ACCOUNTS_BYTES: u64 = 8 << 20;
/// Home directories checked on one file system; more is refused as
/// unreadable rather than read for ever.
pub const MAX_HOMES: usize = 10_000;

/// Histories, by name in a home: non-empty is a finding.
const HISTORIES: [&str; 10] = [
    ".bash_history",
    ".zsh_history",
    ".sh_history",
    ".ash_history",
    ".python_history",
    ".mysql_history",
    ".psql_history",
    ".node_repl_history",
    ".lesshst",
    ".viminfo",
];

const AUTHORIZED_KEYS: [&str; 2] = [".ssh/authorized_keys", ".ssh/authorized_keys2"];

/// When a credential file in a home is a finding (besides holding an AWS
/// access key id, which always is).
#[derive(Clone, Copy)]
enum Holds {
    /// Anything but blank lines and `#` comments (and INI section headers
    /// for the AWS CLI's files).
    Anything,
    /// `aws_secret_access_key` or `aws_session_token` with a value.
    AwsSecret,
    /// A non-empty `auths` object (`docker login`).
    DockerAuths,
    /// `_authToken`, `_auth` or `_password` with a value.
    NpmToken,
    /// A token or a client key (a kubeconfig's user).
    KubeToken,
}

const CREDENTIALS: [(&str, Holds); 9] = [
    (".aws/credentials", Holds::Anything),
    (".aws/config", Holds::AwsSecret),
    (".docker/config.json", Holds::DockerAuths),
    (".git-credentials", Holds::Anything),
    (".netrc", Holds::Anything),
    (".pgpass", Holds::Anything),
    (".npmrc", Holds::NpmToken),
    (".config/gh/hosts.yml", Holds::Anything),
    (".kube/config", Holds::KubeToken),
];

/// What reading a path gave.
enum Read {
    /// Nothing there to judge.
    Absent,
    /// A regular file over the bound.
    TooLarge,
    Bytes(Vec<u8>),
}

/// An error that means "nothing there": absent, not a file, a loop.
fn absent(e: &DiskError) -> bool {
    matches!(
        e,
        DiskError::NotFound(_)
            | DiskError::NotADirectory(_)
            | DiskError::NotAFile(_)
            | DiskError::TooManySymlinks(_)
    )
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

struct Scan<'a> {
    fs: &'a mut FileSystem,
    findings: Vec<Finding>,
}

impl Scan<'_> {
    fn found(&mut self, kind: Kind, path: &[u8], account: Option<&str>) {
        self.findings.push(Finding::new(kind, path, account));
    }

    /// Metadata with symlinks followed, `None` when nothing is there.
    fn meta(&mut self, path: &[u8]) -> Result<Option<Metadata>, DiskError> {
        match self.fs.metadata(path) {
            Ok(m) => Ok(Some(m)),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A regular file (symlinks followed) with something in it: enough to
    /// be a finding for a history, a host key, user data, without reading it.
    fn non_empty_file(&mut self, path: &[u8]) -> Result<bool, DiskError> {
        Ok(self
            .meta(path)?
            .is_some_and(|m| m.kind == FileKind::File && m.size > 0))
    }

    fn read(&mut self, path: &[u8], max: u64) -> Result<Read, DiskError> {
        match self.fs.read_file(path, max) {
            Ok(bytes) => Ok(Read::Bytes(bytes)),
            Err(DiskError::TooLarge { .. }) => Ok(Read::TooLarge),
            Err(e) if absent(&e) => Ok(Read::Absent),
            Err(e) => Err(e),
        }
    }

    /// A system file the check must read whole: over the bound, it can't be judged.
    fn read_needed(&mut self, path: &[u8], max: u64) -> Result<Option<Vec<u8>>, DiskError> {
        match self.fs.read_file(path, max) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&mut self, dir: &[u8]) -> Result<Vec<DirEntry>, DiskError> {
        match self.fs.read_dir(dir) {
            Ok(entries) => Ok(entries),
            Err(e) if absent(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `/etc/ssh/ssh_host_*_key`: a non-empty regular file (a symlink to one too).
    fn host_keys(&mut self) -> Result<(), DiskError> {
        for entry in self.list(b"/etc/ssh")? {
            let name = &entry.name;
            // The glob `ssh_host_*_key`: `*` may be empty.
            let is_key = name.len() >= b"ssh_host__key".len()
                && name.starts_with(b"ssh_host_")
                && name.ends_with(b"_key");
            if !is_key {
                continue;
            }
            let path = join(b"/etc/ssh", name);
            if self.non_empty_file(&path)? {
                self.found(Kind::HostKeys, &path, None);
            }
        }
        Ok(())
    }

    /// `/etc/shadow`: every account with a usable password or none at all.
    fn shadow(&mut self) -> Result<(), DiskError> {
        let Some(bytes) = self.read_needed(b"/etc/shadow", MAX_ACCOUNTS_BYTES)? else {
            return Ok(());
        };
        for account in accounts_with_password(&bytes) {
            self.found(Kind::PasswordLogin, b"/etc/shadow", Some(&account));
        }
        Ok(())
    }

    /// sshd's configuration as sshd reads it (src/content/sshd.rs).
    fn sshd(&mut self) -> Result<(), DiskError> {
        for path in sshd::password_logins(self)? {
            self.found(Kind::PasswordLogin, path.as_bytes(), None);
        }
        Ok(())
    }

    /// cloud-init's copy of the build instance's user data.
    fn instance_data(&mut self) -> Result<(), DiskError> {
        let dir = b"/var/lib/cloud/instances";
        for entry in self.list(dir)? {
            let path = join(&join(dir, &entry.name), b"user-data.txt");
            if self.non_empty_file(&path)? {
                self.found(Kind::InstanceData, &path, None);
            }
        }
        Ok(())
    }

    /// An AWS access key id in the environment every login shell reads.
    fn environment(&mut self) -> Result<(), DiskError> {
        let mut paths = vec![b"/etc/environment".to_vec()];
        for entry in self.list(b"/etc/profile.d")? {
            if entry.kind != FileKind::Directory {
                paths.push(join(b"/etc/profile.d", &entry.name));
            }
        }
        for path in paths {
            if let Some(bytes) = self.read_needed(&path, MAX_FILE_BYTES)?
                && has_access_key_id(&bytes)
            {
                self.found(Kind::Credentials, &path, None);
            }
        }
        Ok(())
    }

    /// One home directory: its keys, histories and credential files. Looks
    /// up only the names its listing has (one listing, few lookups).
    fn home(&mut self, home: &[u8], account: Option<&str>) -> Result<(), DiskError> {
        let names: HashSet<Vec<u8>> = self.list(home)?.into_iter().map(|e| e.name).collect();
        let first = |rel: &str| -> Vec<u8> {
            rel.split('/')
                .next()
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        };
        for rel in AUTHORIZED_KEYS {
            if !names.contains(&first(rel)) {
                continue;
            }
            let path = join(home, rel.as_bytes());
            match self.read(&path, MAX_FILE_BYTES)? {
                Read::Absent => {}
                Read::TooLarge => self.found(Kind::AuthorizedKeys, &path, account),
                Read::Bytes(bytes) => {
                    if has_lines(&bytes, b"#", false) {
                        self.found(Kind::AuthorizedKeys, &path, account);
                    }
                }
            }
        }
        for name in HISTORIES {
            if !names.contains(name.as_bytes()) {
                continue;
            }
            // Non-empty is enough: nothing of it needs reading. A history
            // linked to /dev/null (a common way to keep none) is no file.
            let path = join(home, name.as_bytes());
            if self.non_empty_file(&path)? {
                self.found(Kind::Histories, &path, account);
            }
        }
        for (rel, holds) in CREDENTIALS {
            if !names.contains(&first(rel)) {
                continue;
            }
            let path = join(home, rel.as_bytes());
            let found = match self.read(&path, MAX_FILE_BYTES)? {
                Read::Absent => false,
                Read::TooLarge => true,
                Read::Bytes(bytes) => has_access_key_id(&bytes) || holds_credentials(holds, &bytes),
            };
            if found {
                self.found(Kind::Credentials, &path, account);
            }
        }
        Ok(())
    }

    /// Every home: those `/etc/passwd` names (with their account), `/root`,
    /// every directory under `/home`; on a file system without `/etc` (a
    /// volume mounted at `/home`, say), its top and its top-level
    /// directories. Each directory once, however many names lead to it.
    fn homes(&mut self, is_root: bool) -> Result<(), DiskError> {
        let mut homes: Vec<(Vec<u8>, Option<String>)> = Vec::new();
        if let Some(passwd) = self.read_needed(b"/etc/passwd", MAX_ACCOUNTS_BYTES)? {
            homes.extend(
                passwd_homes(&passwd)
                    .into_iter()
                    .map(|(account, home)| (home, Some(account))),
            );
        }
        homes.push((b"/root".to_vec(), Some("root".to_owned())));
        let mut dirs = vec![b"/home".to_vec()];
        if !is_root {
            homes.push((b"/".to_vec(), None));
            dirs.push(b"/".to_vec());
        }
        for dir in dirs {
            for entry in self.list(&dir)? {
                if matches!(entry.kind, FileKind::Directory | FileKind::Symlink) {
                    homes.push((join(&dir, &entry.name), None));
                }
            }
        }
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        for (home, account) in homes {
            let canonical = match self.fs.canonicalize(&home) {
                Ok(c) => c,
                Err(e) if absent(&e) => continue,
                Err(e) => return Err(e),
            };
            // The canonical path is shown lossily: two names that are not
            // UTF-8 may show alike. Such a home is keyed by its own bytes,
            // so it is never skipped as another's (at worst read twice).
            let key = if canonical.contains(char::REPLACEMENT_CHARACTER) {
                [b"\0".as_slice(), &home].concat()
            } else {
                canonical.into_bytes()
            };
            if !seen.insert(key) {
                continue;
            }
            if seen.len() > MAX_HOMES {
                return Err(DiskError::OverBudget(format!(
                    "more than {MAX_HOMES} home directories"
                )));
            }
            match self.meta(&home)? {
                Some(m) if m.kind == FileKind::Directory => {}
                _ => continue,
            }
            self.home(&home, account.as_deref())?;
        }
        Ok(())
    }
}

impl Loader for Scan<'_> {
    fn load(&mut self, path: &[u8]) -> Result<Option<Vec<u8>>, DiskError> {
        self.read_needed(path, MAX_FILE_BYTES)
    }

    fn list(&mut self, dir: &[u8]) -> Result<Vec<Vec<u8>>, DiskError> {
        Ok(Scan::list(self, dir)?.into_iter().map(|e| e.name).collect())
    }
}

/// Whether this file system is a root (has an `/etc` directory).
pub(crate) fn is_root(fs: &mut FileSystem) -> Result<bool, DiskError> {
    match fs.metadata("/etc") {
        Ok(m) => Ok(m.kind == FileKind::Directory),
        Err(e) if absent(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The check of one file system: every finding of issue 20's table on it,
/// sorted, or the error that kept it from being read through. Synchronous:
/// run it where the file system was opened (inside the blocking closure of
/// src/snapshot.rs). Paths are the file system's own (`/etc/shadow`).
pub fn check_file_system(fs: &mut FileSystem) -> Result<Vec<Finding>, DiskError> {
    let root = is_root(fs)?;
    let mut scan = Scan {
        fs,
        findings: Vec::new(),
    };
    scan.host_keys()?;
    scan.shadow()?;
    scan.sshd()?;
    scan.instance_data()?;
    scan.environment()?;
    scan.homes(root)?;
    let mut findings = scan.findings;
    findings.sort();
    findings.dedup();
    Ok(findings)
}

// ------------------------------------------------------------ the judging

fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|&b| b == b'\n').map(<[u8]>::trim_ascii)
}

/// A line that is neither blank nor a comment (starting with one of
/// `comments`), nor, with `sections`, an INI `[section]` header.
fn has_lines(bytes: &[u8], comments: &[u8], sections: bool) -> bool {
    lines(bytes).any(|l| {
        let section = sections && l.starts_with(b"[") && l.ends_with(b"]");
        !(l.is_empty() || comments.contains(&l[0]) || section)
    })
}

/// `AKIA` or `ASIA` and 16 uppercase letters or digits, not inside a longer
/// word: an AWS access key id (long-term or temporary).
pub(crate) fn has_access_key_id(bytes: &[u8]) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric();
    let key = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    bytes.windows(20).enumerate().any(|(i, w)| {
        (w.starts_with(b"AKIA") || w.starts_with(b"ASIA"))
            && w[4..].iter().all(|&b| key(b))
            && (i == 0 || !word(bytes[i - 1]))
            && bytes.get(i + 20).is_none_or(|&b| !word(b))
    })
}

/// The value of a `key = value` / `key: value` line whose key is one of
/// `keys` (case as written), when it is non-empty.
fn has_value_for(bytes: &[u8], keys: &[&[u8]], separators: &[u8]) -> bool {
    lines(bytes).any(|l| {
        // A YAML list item (`- name: x`) holds keys too.
        let l = l.strip_prefix(b"- ").unwrap_or(l).trim_ascii();
        let Some(at) = l.iter().position(|b| separators.contains(b)) else {
            return false;
        };
        let (key, value) = (l[..at].trim_ascii(), l[at + 1..].trim_ascii());
        // An npmrc key may be scoped: `//registry.npmjs.org/:_authToken`.
        let key = key.rsplit(|&b| b == b':').next().unwrap_or(key);
        keys.contains(&key) && !matches!(value, b"" | b"\"\"" | b"''" | b"null" | b"~")
    })
}

fn holds_credentials(holds: Holds, bytes: &[u8]) -> bool {
    match holds {
        Holds::Anything => has_lines(bytes, b"#", true),
        Holds::AwsSecret => has_value_for(
            bytes,
            &[b"aws_secret_access_key", b"aws_session_token"],
            b"=",
        ),
        Holds::DockerAuths => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(config) => config
                .get("auths")
                .and_then(serde_json::Value::as_object)
                .is_some_and(|auths| !auths.is_empty()),
            // Not JSON Docker can read either; but fail closed when it names auths.
            Err(_) => bytes.windows(7).any(|w| w == b"\"auths\""),
        },
        Holds::NpmToken => has_value_for(bytes, &[b"_authToken", b"_auth", b"_password"], b"="),
        Holds::KubeToken => has_value_for(
            bytes,
            &[
                b"token",
                b"id-token",
                b"refresh-token",
                b"access-token",
                b"client-key",
                b"client-key-data",
            ],
            b":",
        ),
    }
}

/// The accounts of `/etc/shadow` someone could log in to with a password:
/// a password field that is empty (no password at all) or holds anything
/// not starting with `!` or `*` (locked). NIS `+`/`-` lines are no accounts.
pub(crate) fn accounts_with_password(shadow: &[u8]) -> Vec<String> {
    let mut accounts = Vec::new();
    for line in lines(shadow) {
        let mut fields = line.split(|&b| b == b':');
        let (Some(name), Some(password)) = (fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(b"+") || name.starts_with(b"-") {
            continue;
        }
        if password.is_empty() || !(password.starts_with(b"!") || password.starts_with(b"*")) {
            accounts.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    accounts
}

/// `/etc/passwd`'s accounts and their home directories (absolute ones).
pub(crate) fn passwd_homes(passwd: &[u8]) -> Vec<(String, Vec<u8>)> {
    lines(passwd)
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
            let (name, home) = (fields.first()?, fields.get(5)?);
            if name.is_empty() || name.starts_with(b"+") || !home.starts_with(b"/") {
                return None;
            }
            Some((String::from_utf8_lossy(name).into_owned(), home.to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_ids_are_akia_or_asia_and_16_more_not_inside_a_word() {
        assert!(has_access_key_id(b"AKIAPLANTED000000000"));
        assert!(has_access_key_id(
            b"export AWS_ACCESS_KEY_ID=ASIAABCDEFGHIJKLMNOP\n"
        ));
        assert!(has_access_key_id(b"key=\"AKIA0123456789ABCDEF\""));
        assert!(!has_access_key_id(b"AKIAEXAMPLE0001"), "too short");
        assert!(!has_access_key_id(b"AKIAPLANTED0000000000"), "too long");
        assert!(
            !has_access_key_id(b"XAKIAPLANTED000000000"),
            "inside a word"
        );
        assert!(!has_access_key_id(b"AKIAplanted000000000"), "lower case");
        assert!(!has_access_key_id(b"AKIA"));
        assert!(!has_access_key_id(&[0xff; 64]));
    }

    #[test]
    fn shadow_accounts_with_a_usable_or_empty_password() {
        let shadow = b"root:*:19000:0:99999:7:::\n\
            locked:!$6$salt$hash:19000::::::\n\
            star:!!:19000::::::\n\
            ann:$6$salt$hash:19000::::::\n\
            empty::19000::::::\n\
            +nis::::::::\n\
            garbage\n\
            \n";
        assert_eq!(accounts_with_password(shadow), ["ann", "empty"]);
        assert!(accounts_with_password(b"\xff\xfe:\x00").len() == 1);
    }

    #[test]
    fn passwd_gives_accounts_and_absolute_homes() {
        let passwd = b"root:x:0:0:root:/root:/bin/bash\n\
            svc:x:998:998::/var/lib/svc:/sbin/nologin\n\
            odd:x:1:1::relative:/bin/sh\n\
            short:x:1\n\
            +::::::\n";
        assert_eq!(
            passwd_homes(passwd),
            [
                ("root".to_owned(), b"/root".to_vec()),
                ("svc".to_owned(), b"/var/lib/svc".to_vec())
            ]
        );
    }

    #[test]
    fn credential_files_by_what_they_hold() {
        use Holds::*;
        let yes = |h, text: &str| holds_credentials(h, text.as_bytes());
        assert!(yes(Anything, "https://u:p@github.com\n"));
        assert!(!yes(Anything, "# nothing\n\n  \n"));
        assert!(!yes(Anything, "[default]\n# emptied\n"));
        assert!(yes(AwsSecret, "[default]\naws_secret_access_key = abc\n"));
        assert!(yes(AwsSecret, "[profile x]\naws_session_token=abc\n"));
        assert!(!yes(
            AwsSecret,
            "[default]\nregion = us-east-1\naws_secret_access_key =\n"
        ));
        assert!(yes(
            DockerAuths,
            r#"{"auths": {"registry": {"auth": "eA=="}}}"#
        ));
        assert!(!yes(
            DockerAuths,
            r#"{"auths": {}, "credsStore": "ecr-login"}"#
        ));
        assert!(!yes(DockerAuths, r#"{"credHelpers": {}}"#));
        assert!(yes(DockerAuths, r#"{"auths": {"x": "#));
        assert!(yes(NpmToken, "//registry.npmjs.org/:_authToken=npm_x\n"));
        assert!(yes(NpmToken, "_auth = eA==\n"));
        assert!(!yes(NpmToken, "registry=https://registry.npmjs.org/\n"));
        assert!(yes(
            KubeToken,
            "users:\n- name: a\n  user:\n    token: abc\n"
        ));
        assert!(yes(
            KubeToken,
            "users:\n- name: a\n  user:\n    client-key-data: LS0t\n"
        ));
        assert!(!yes(
            KubeToken,
            "users:\n- name: a\n  user:\n    exec:\n      command: aws\n"
        ));
        assert!(!yes(KubeToken, "    token: \"\"\n"));
    }

    #[test]
    fn authorized_keys_of_only_comments_are_empty() {
        assert!(!has_lines(b"# keys go here\n\n   # none\n", b"#", false));
        assert!(has_lines(b"# ci\nssh-ed25519 AAAA ci\n", b"#", false));
        assert!(has_lines(b"\xff\xfe", b"#", false));
    }
}
