//! sshd's configuration as sshd reads it, for two keywords:
//! `PasswordAuthentication` and `PermitRootLogin`, a finding when `yes`.
//!
//! As sshd_config(5) says, and servconf.c does:
//! - the first value obtained for a keyword wins;
//! - `Include` is processed where it stands, its glob patterns expanded in
//!   lexical order, relative ones under `/etc/ssh`, to a depth of 16
//!   (SERVCONF_MAX_DEPTH); an `Include` inside a `Match` block includes
//!   into that block, and the included file's own `Match` blocks end with
//!   the file;
//! - a value inside a `Match` block applies to the connections that match,
//!   over the global one: it is not the global first value, but a `yes`
//!   there (the first value of its block) still lets those connections log
//!   in with a password, so it is a finding too.
//!
//! Unset keywords take sshd's defaults and are no finding: upstream's
//! `PasswordAuthentication` default is `yes`, but then only an account with
//! a usable password can use it, and `/etc/shadow`'s check finds those.

use std::collections::HashSet;

use crate::disk::DiskError;

/// The main file, and where relative `Include`s are taken from.
const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
const SSH_DIR: &[u8] = b"/etc/ssh";
/// SERVCONF_MAX_DEPTH in OpenSSH: deeper includes are an error in sshd.
const MAX_DEPTH: usize = 16;
/// Files read in all, however the includes fan out.
const MAX_FILES: usize = 256;

/// glob(3) refuses longer patterns (OpenSSH's glob: MAXPATHLEN).
const PATH_MAX: usize = 4096;
/// Steps of glob matching over a whole configuration: real ones take a few
/// thousand; this is about a second of matching at worst.
const MAX_GLOB_WORK: u64 = 50_000_000;

const KEYWORDS: [&str; 2] = ["passwordauthentication", "permitrootlogin"];

/// What the walk needs from a file system: a file's bytes (bounded, `None`
/// when absent) and a directory's names (empty when absent).
pub(crate) trait Loader {
    fn load(&mut self, path: &[u8]) -> Result<Option<Vec<u8>>, DiskError>;
    fn list(&mut self, dir: &[u8]) -> Result<Vec<Vec<u8>>, DiskError>;
}

/// The context a line is read in.
#[derive(Clone, Default)]
struct Block {
    in_match: bool,
    /// Keywords already given a value in the current `Match` block.
    seen: HashSet<&'static str>,
    /// `Match` lines read so far: tells whether an included file started
    /// blocks of its own.
    matches: usize,
}

struct Walk<'a, L: Loader> {
    loader: &'a mut L,
    /// Keywords given a global value already (later ones are ignored).
    global: HashSet<&'static str>,
    files: usize,
    /// Glob matching done so far, in pattern x name steps.
    glob_work: u64,
    /// The files with a `yes` that counts, in the order found.
    found: Vec<String>,
}

/// The files whose `yes` lets a password (or root) log in: the global first
/// value of either keyword, or the first in a `Match` block.
pub(crate) fn password_logins<L: Loader>(loader: &mut L) -> Result<Vec<String>, DiskError> {
    let mut walk = Walk {
        loader,
        global: HashSet::new(),
        files: 0,
        glob_work: 0,
        found: Vec::new(),
    };
    let mut block = Block::default();
    walk.file(SSHD_CONFIG.as_bytes(), &mut block, 0)?;
    Ok(walk.found)
}

impl<L: Loader> Walk<'_, L> {
    fn file(&mut self, path: &[u8], block: &mut Block, depth: usize) -> Result<(), DiskError> {
        if depth > MAX_DEPTH {
            return Err(DiskError::corrupt(
                "sshd configuration",
                format!(
                    "{}: includes nested deeper than {MAX_DEPTH}",
                    String::from_utf8_lossy(path)
                ),
            ));
        }
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(DiskError::corrupt(
                "sshd configuration",
                format!("more than {MAX_FILES} files included"),
            ));
        }
        let Some(bytes) = self.loader.load(path)? else {
            return Ok(());
        };
        let shown = String::from_utf8_lossy(path).into_owned();
        for line in bytes.split(|&b| b == b'\n') {
            let Some((keyword, args)) = split_line(line) else {
                continue;
            };
            let keyword = keyword.to_ascii_lowercase();
            if keyword == b"match" {
                block.in_match = true;
                block.seen.clear();
                block.matches += 1;
                continue;
            }
            if keyword == b"include" {
                for pattern in args {
                    for included in self.expand(&pattern)? {
                        let mut inner = block.clone();
                        self.file(&included, &mut inner, depth + 1)?;
                        // Without a Match of its own, the included file
                        // went on with this block (what it set is set);
                        // its own Match blocks end with it.
                        if inner.matches == block.matches {
                            *block = inner;
                        }
                    }
                }
                continue;
            }
            let Some(keyword) = KEYWORDS.iter().find(|k| k.as_bytes() == keyword) else {
                continue;
            };
            let yes = args.first().is_some_and(|v| v.eq_ignore_ascii_case(b"yes"));
            let first = if block.in_match {
                block.seen.insert(keyword)
            } else {
                self.global.insert(keyword)
            };
            if first && yes && !self.found.contains(&shown) {
                self.found.push(shown.clone());
            }
        }
        Ok(())
    }

    /// The files an `Include` pattern names, in lexical order: glob(3)
    /// over each component, relative patterns under /etc/ssh.
    fn expand(&mut self, pattern: &[u8]) -> Result<Vec<Vec<u8>>, DiskError> {
        if pattern.len() >= PATH_MAX {
            return Err(DiskError::corrupt(
                "sshd configuration",
                format!("an Include pattern of {} bytes", pattern.len()),
            ));
        }
        let mut paths: Vec<Vec<u8>> = vec![if pattern.starts_with(b"/") {
            Vec::new()
        } else {
            SSH_DIR.to_vec()
        }];
        for component in pattern.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let mut next = Vec::new();
            for dir in &paths {
                let here = |name: &[u8]| {
                    let mut p = dir.clone();
                    p.push(b'/');
                    p.extend_from_slice(name);
                    p
                };
                if !is_glob(component) {
                    next.push(here(component));
                    continue;
                }
                let shown = if dir.is_empty() {
                    b"/".to_vec()
                } else {
                    dir.clone()
                };
                let listed = self.loader.list(&shown)?;
                // Matching costs at most pattern x name steps each: counted
                // before it is done, so hostile patterns over a large
                // directory end in an error, not in hours of matching.
                for name in &listed {
                    let cost = (component.len() as u64 + 1) * (name.len() as u64 + 1);
                    self.glob_work = self.glob_work.saturating_add(cost);
                }
                if self.glob_work > MAX_GLOB_WORK {
                    return Err(DiskError::corrupt(
                        "sshd configuration",
                        "its Include patterns take too long to expand",
                    ));
                }
                let mut names: Vec<Vec<u8>> = listed
                    .into_iter()
                    .filter(|n| glob_match(component, n))
                    .collect();
                names.sort();
                next.extend(names.iter().map(|n| here(n)));
                if next.len() > MAX_FILES {
                    return Err(DiskError::corrupt(
                        "sshd configuration",
                        format!("an Include names more than {MAX_FILES} files"),
                    ));
                }
            }
            paths = next;
        }
        Ok(paths.into_iter().filter(|p| !p.is_empty()).collect())
    }
}

/// A line's keyword and arguments, as sshd splits them: `Keyword value`,
/// `Keyword=value` or `Keyword = value`; arguments separated by blanks,
/// double quotes around one with blanks in it. `None` for blank lines and
/// comments.
fn split_line(line: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let line = line.trim_ascii();
    if line.is_empty() || line.starts_with(b"#") {
        return None;
    }
    let end = line
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_vec();
    let mut rest = line[end..].trim_ascii_start();
    if let Some(after) = rest.strip_prefix(b"=") {
        rest = after.trim_ascii_start();
    }
    let mut args = Vec::new();
    let mut current = Vec::new();
    let (mut quoted, mut any) = (false, false);
    for &b in rest {
        match b {
            b'"' => {
                quoted = !quoted;
                any = true;
            }
            b if b.is_ascii_whitespace() && !quoted => {
                if any {
                    args.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            b'#' if !quoted && !any => break,
            b => {
                current.push(b);
                any = true;
            }
        }
    }
    if any {
        args.push(current);
    }
    Some((keyword, args))
}

fn is_glob(component: &[u8]) -> bool {
    component.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// glob(3)'s match of one name: `*`, `?`, `[...]` (with `!`/`^` and
/// ranges); a leading `.` only matched by a `.` in the pattern. Iterative,
/// backtracking only to the last `*`: linear in practice, quadratic at
/// worst, whatever the bytes.
pub(crate) fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.starts_with(b".") && !pattern.starts_with(b".") {
        return false;
    }
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => match class(&pattern[p..], name[n]) {
                    Some((true, len)) => {
                        p += len;
                        n += 1;
                        continue;
                    }
                    // An unclosed `[` is a literal.
                    None if name[n] == b'[' => {
                        p += 1;
                        n += 1;
                        continue;
                    }
                    _ => {}
                },
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// A bracket expression at the start of `pattern` against `c`: whether it
/// matches and its length, or `None` when it is not closed.
fn class(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *pattern.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|b| *b != b']') {
            let hi = pattern[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Files by path; directories listed from them.
    struct Files(BTreeMap<String, String>);

    impl Loader for Files {
        fn load(&mut self, path: &[u8]) -> Result<Option<Vec<u8>>, DiskError> {
            Ok(self
                .0
                .get(std::str::from_utf8(path).unwrap())
                .map(|t| t.as_bytes().to_vec()))
        }
        fn list(&mut self, dir: &[u8]) -> Result<Vec<Vec<u8>>, DiskError> {
            let dir = format!(
                "{}/",
                std::str::from_utf8(dir).unwrap().trim_end_matches('/')
            );
            let mut names: Vec<Vec<u8>> = self
                .0
                .keys()
                .filter_map(|p| p.strip_prefix(&dir))
                .map(|rest| rest.split('/').next().unwrap().as_bytes().to_vec())
                .collect();
            names.dedup();
            Ok(names)
        }
    }

    fn found(files: &[(&str, &str)]) -> Vec<String> {
        let mut files = Files(
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        );
        password_logins(&mut files).unwrap()
    }

    const MAIN: &str = "/etc/ssh/sshd_config";

    #[test]
    fn the_first_global_value_wins() {
        assert_eq!(found(&[(MAIN, "PasswordAuthentication yes\n")]), [MAIN]);
        assert_eq!(found(&[(MAIN, "passwordauthentication=YES\n")]), [MAIN]);
        assert_eq!(
            found(&[(MAIN, "PermitRootLogin = \"yes\" # why not\n")]),
            [MAIN]
        );
        assert!(
            found(&[(
                MAIN,
                "PasswordAuthentication no\nPasswordAuthentication yes\n"
            )])
            .is_empty()
        );
        assert!(
            found(&[(
                MAIN,
                "PermitRootLogin prohibit-password\n#PermitRootLogin yes\n"
            )])
            .is_empty()
        );
        assert!(found(&[(MAIN, "PasswordAuthentication\n")]).is_empty());
        assert!(found(&[]).is_empty());
    }

    #[test]
    fn includes_are_read_where_they_stand_in_lexical_order() {
        // Ubuntu's layout: the include comes first, so its value wins.
        let files = [
            (
                MAIN,
                "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n",
            ),
            (
                "/etc/ssh/sshd_config.d/50-cloud-init.conf",
                "PasswordAuthentication yes\n",
            ),
            (
                "/etc/ssh/sshd_config.d/60-later.conf",
                "PasswordAuthentication no\n",
            ),
            (
                "/etc/ssh/sshd_config.d/.hidden.conf",
                "PermitRootLogin yes\n",
            ),
            ("/etc/ssh/sshd_config.d/README", "PermitRootLogin yes\n"),
        ];
        assert_eq!(found(&files), ["/etc/ssh/sshd_config.d/50-cloud-init.conf"]);
        // After the main file's own value, an include changes nothing.
        let files = [
            (
                MAIN,
                "PasswordAuthentication no\nInclude sshd_config.d/*.conf\n",
            ),
            (
                "/etc/ssh/sshd_config.d/50-cloud-init.conf",
                "PasswordAuthentication yes\n",
            ),
        ];
        assert!(found(&files).is_empty());
        // Relative to /etc/ssh, several patterns, a missing one ignored.
        let files = [
            (MAIN, "Include missing.conf extra/[a-c]?.conf\n"),
            ("/etc/ssh/extra/b1.conf", "PermitRootLogin yes\n"),
            ("/etc/ssh/extra/d1.conf", "PasswordAuthentication yes\n"),
        ];
        assert_eq!(found(&files), ["/etc/ssh/extra/b1.conf"]);
    }

    #[test]
    fn a_value_in_a_match_block_is_not_the_global_one_but_a_yes_there_counts() {
        // The block's `yes` lets its matches in. `Match all` starts a
        // block too: the `no` after it is not a global value either.
        let files = [(
            MAIN,
            "Match User deploy\n  PasswordAuthentication yes\nMatch all\nPasswordAuthentication no\n",
        )];
        assert_eq!(found(&files), [MAIN]);
        // A `no` in a Match block does not hide a later global `yes`...
        let files = [(
            MAIN,
            "Match Address 10.0.0.0/8\n PasswordAuthentication no\n",
        )];
        assert!(found(&files).is_empty());
        // ...and a global `yes` before it is found.
        let files = [(
            "/etc/ssh/sshd_config",
            "PermitRootLogin yes\nMatch User x\nPermitRootLogin no\n",
        )];
        assert_eq!(found(&files), [MAIN]);
        // An included file's Match block ends with the file.
        let files = [
            (MAIN, "Include a.conf\nPasswordAuthentication yes\n"),
            (
                "/etc/ssh/a.conf",
                "Match User x\nPasswordAuthentication no\n",
            ),
        ];
        assert_eq!(found(&files), [MAIN]);
        // A value an include sets in the block is the block's first.
        let files = [
            (MAIN, "Match User x\nInclude a.conf\nPermitRootLogin yes\n"),
            ("/etc/ssh/a.conf", "PermitRootLogin no\n"),
        ];
        assert!(found(&files).is_empty());
        // The first value in a block wins within it.
        let files = [(
            MAIN,
            "Match User x\nPermitRootLogin no\nPermitRootLogin yes\n",
        )];
        assert!(found(&files).is_empty());
    }

    #[test]
    fn include_loops_end_in_an_error_not_a_hang() {
        let mut files = Files(BTreeMap::from([(
            MAIN.to_owned(),
            "Include sshd_config\n".to_owned(),
        )]));
        let err = password_logins(&mut files).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 16"), "{err}");
        // Shallow but wide: 1 + 8 + 64 + 512 files.
        let mut fan = Files(BTreeMap::from([
            (MAIN.to_owned(), "Include a a a a a a a a\n".to_owned()),
            (
                "/etc/ssh/a".to_owned(),
                "Include b b b b b b b b\n".to_owned(),
            ),
            (
                "/etc/ssh/b".to_owned(),
                "Include c c c c c c c c\n".to_owned(),
            ),
        ]));
        let err = password_logins(&mut fan).unwrap_err();
        assert!(err.to_string().contains("more than 256 files"), "{err}");
    }

    #[test]
    fn hostile_include_patterns_end_in_an_error_not_hours_of_matching() {
        let star = "*a".repeat(2000);
        let mut files = Files(
            (0..2000)
                .map(|i| (format!("/d/{}", "a".repeat(200 + i % 50)), String::new()))
                .chain([(MAIN.to_owned(), format!("Include /d/{star}b\n").repeat(100))])
                .collect(),
        );
        let err = password_logins(&mut files).unwrap_err();
        assert!(err.to_string().contains("take too long"), "{err}");
        let mut long = Files(BTreeMap::from([(
            MAIN.to_owned(),
            format!("Include /{}\n", "x".repeat(5000)),
        )]));
        assert!(password_logins(&mut long).is_err());
    }

    #[test]
    fn glob_matches_like_glob3() {
        assert!(glob_match(b"*.conf", b"50-cloud-init.conf"));
        assert!(!glob_match(b"*.conf", b".hidden.conf"));
        assert!(glob_match(b".*", b".hidden"));
        assert!(glob_match(b"[a-c]?", b"b1"));
        assert!(!glob_match(b"[!a-c]?", b"b1"));
        assert!(glob_match(b"[]]", b"]"));
        assert!(glob_match(b"a[", b"a["));
        assert!(!glob_match(b"a*b", b"a"));
        assert!(glob_match(
            b"*a*a*a*a*b",
            &[b'a'; 40].iter().chain(b"b").copied().collect::<Vec<_>>()
        ));
        assert!(!glob_match(b"*a*a*a*a*b", &[b'a'; 2000]));
    }

    #[test]
    fn lines_split_like_sshd() {
        assert_eq!(
            split_line(b"  Include \"/etc/ssh/with space.conf\" b.conf "),
            Some((
                b"Include".to_vec(),
                vec![b"/etc/ssh/with space.conf".to_vec(), b"b.conf".to_vec()]
            ))
        );
        assert_eq!(split_line(b"# comment"), None);
        assert_eq!(split_line(b""), None);
        assert_eq!(
            split_line(b"Key=v"),
            Some((b"Key".to_vec(), vec![b"v".to_vec()]))
        );
    }
}
