//! `ami-publisher ls`: a directory of an AMI's root file system, read
//! through the EBS direct APIs (src/snapshot.rs) with the person's own
//! credentials: what the function sees inside an image.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::{Arg, parse_options, say, sdk_config, snapshots_of, unknown};
use crate::clients::Clients;
use crate::disk::DiskError;
use crate::model::{ImageId, RegionName};

/// `ls --region R ami-... PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ls {
    pub region: RegionName,
    pub profile: Option<String>,
    pub image: ImageId,
    /// Bytes, as given (a Linux name need not be UTF-8).
    pub path: Vec<u8>,
}

/// `ls --region R [--profile P] ami-... PATH`.
pub(super) fn parse<'a>(args: impl Iterator<Item = &'a str>) -> Result<Ls, String> {
    let (mut image, mut path) = (None, None);
    let common = parse_options(args, false, |arg, _| {
        match arg {
            Arg::Flag(flag) => return Err(unknown(flag)),
            Arg::Word(id) if image.is_none() => image = Some(ImageId::parse(id)?),
            Arg::Word(p) if path.is_none() => {
                if !p.starts_with('/') {
                    return Err(format!(
                        "`{p}` is not an absolute path (it starts at the root: /etc)"
                    ));
                }
                path = Some(p.as_bytes().to_vec());
            }
            Arg::Word(extra) => {
                return Err(format!(
                    "ls takes one AMI id and one path; `{extra}` is one too many"
                ));
            }
        }
        Ok(())
    })?;
    Ok(Ls {
        region: common.region,
        profile: common.profile,
        image: image.ok_or("name an AMI id and a path")?,
        path: path.ok_or("name the path to list, e.g. /etc")?,
    })
}

/// Prints the listing: 0, or 1 with one line saying why it could not be read.
pub(super) async fn run(ls: &Ls) -> ExitCode {
    let sdk = sdk_config(&ls.region, ls.profile.as_deref()).await;
    let clients = Clients::from_sdk_config(&sdk);
    match list(ls, &clients).await {
        Ok(listing) => {
            say(&listing);
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("ami-publisher: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Lists `ls.path` in the AMI's root file system: the AMI described with
/// EC2 (its snapshots), then read through the EBS direct APIs. The error is
/// one line for a person: "could not read: ...".
pub async fn list(ls: &Ls, clients: &Clients) -> Result<String, String> {
    let snapshots = snapshots_of(clients, &ls.region, &ls.image).await?;
    let ebs = clients
        .ebs(&ls.region)
        .ok_or_else(|| format!("could not read: no EBS client for {}", ls.region))?;
    let path = ls.path.clone();
    let (entries, _, _) = crate::snapshot::read_root(
        &ebs,
        &snapshots,
        crate::snapshot::ReadOptions::default(),
        move |root| root.read_dir(&path),
    )
    .await
    .map_err(|e: DiskError| e.report())?;
    Ok(render_listing(entries))
}

/// One entry a line, sorted by name's bytes, as `ls -F` marks them: `/` a
/// directory, `@` a symbolic link.
pub fn render_listing(mut entries: Vec<crate::disk::DirEntry>) -> String {
    use crate::disk::FileKind;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for entry in entries {
        let mark = match entry.kind {
            FileKind::Directory => "/",
            FileKind::Symlink => "@",
            FileKind::File | FileKind::Other => "",
        };
        let _ = writeln!(out, "{}{mark}", entry.name_lossy());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Command, parse, test_args as args};
    use super::*;

    #[test]
    fn ls_takes_a_region_an_ami_and_an_absolute_path() {
        assert_eq!(
            parse(&args("ls --region eu-west-1 ami-12345678 /etc/ssh")),
            Ok(Command::Ls(Ls {
                region: RegionName::parse("eu-west-1").unwrap(),
                profile: None,
                image: ImageId::parse("ami-12345678").unwrap(),
                path: b"/etc/ssh".to_vec(),
            }))
        );
        for (line, says) in [
            ("ls ami-12345678 /etc", "--region is required"),
            ("ls --region us-east-1 /etc", "is not an AMI id"),
            ("ls --region us-east-1 ami-12345678", "name the path"),
            (
                "ls --region us-east-1 ami-12345678 etc",
                "not an absolute path",
            ),
            ("ls --region us-east-1 ami-12345678 / /etc", "one too many"),
            (
                "ls --region us-east-1 --recursive ami-12345678 /",
                "unknown option",
            ),
        ] {
            let err = parse(&args(line)).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn a_listing_is_sorted_and_marked_like_ls_f() {
        use crate::disk::{DirEntry, FileKind};
        let entry = |name: &[u8], kind| DirEntry {
            name: name.to_vec(),
            kind,
        };
        let text = render_listing(vec![
            entry(b"ssh", FileKind::Directory),
            entry(b"passwd", FileKind::File),
            entry(b"localtime", FileKind::Symlink),
            entry(b"caf\xe9", FileKind::File),
        ]);
        assert_eq!(text, "caf\u{fffd}\nlocaltime@\npasswd\nssh/\n");
    }
}
