//! `ami-publisher history`: what the function did to each AMI and when, as
//! its ledger recorded it (src/history.rs renders it), read with the
//! person's own credentials.

use std::process::ExitCode;

use super::{Arg, parse_options, say, sdk_config, unknown};
use crate::ledger::Ledger;
use crate::model::{ImageId, RegionName};

/// `history --region R [--table T] [--table-region H] [--json] [ami-...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// The region whose AMIs to show.
    pub region: RegionName,
    /// Where the ledger's table is: the stack's own region, which records
    /// its copies in other regions too (`--table-region`; default
    /// `--region`).
    pub table_region: RegionName,
    pub profile: Option<String>,
    /// The ledger's table: `--table`, else LEDGER_TABLE.
    pub table: String,
    pub image: Option<ImageId>,
    pub json: bool,
}

/// `history --region R [--profile P] [--table T] [--table-region H]
/// [--json] [ami-...]`; the table is `--table`, else `ledger_table`
/// (LEDGER_TABLE), in `--table-region`, else `--region`.
pub(super) fn parse<'a>(
    args: impl Iterator<Item = &'a str>,
    ledger_table: Option<String>,
) -> Result<History, String> {
    let (mut table, mut image) = (ledger_table.filter(|t| !t.is_empty()), None);
    let mut table_region = None;
    let common = parse_options(args, true, |arg, rest| {
        match arg {
            Arg::Flag("--table") => {
                table = Some(rest.next().ok_or("--table needs a name")?.to_owned());
            }
            Arg::Flag("--table-region") => {
                let region = rest.next().ok_or("--table-region needs a region")?;
                table_region = Some(RegionName::parse(region)?);
            }
            Arg::Flag(flag) => return Err(unknown(flag)),
            Arg::Word(id) if image.is_none() => image = Some(ImageId::parse(id)?),
            Arg::Word(extra) => {
                return Err(format!(
                    "history takes at most one AMI id; `{extra}` is one too many"
                ));
            }
        }
        Ok(())
    })?;
    Ok(History {
        table_region: table_region.unwrap_or_else(|| common.region.clone()),
        region: common.region,
        profile: common.profile,
        table: table.ok_or(
            "name the ledger's table: --table NAME or LEDGER_TABLE (the stack's output LedgerTableName)",
        )?,
        image,
        json: common.json,
    })
}

/// Prints the ledger's records: 0, or 1 with why they could not be read.
pub(super) async fn run(history: &History) -> ExitCode {
    let sdk = sdk_config(&history.table_region, history.profile.as_deref()).await;
    let ledger = Ledger {
        client: aws_sdk_dynamodb::Client::new(&sdk),
        table: history.table.clone(),
        region: history.table_region.clone(),
    };
    match crate::history::read(&ledger, &history.region, history.image.as_ref()).await {
        Ok(records) if history.json => {
            say(&format!(
                "{}\n",
                serde_json::to_string_pretty(&records).unwrap_or_default()
            ));
            ExitCode::SUCCESS
        }
        Ok(records) => {
            say(&crate::history::render(&records));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ami-publisher: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_args as args;
    use super::*;

    #[test]
    fn history_takes_its_table_from_the_flag_or_ledger_table() {
        let parsed = |line: &str, env: Option<&str>| {
            let args = args(line);
            parse(
                args.iter().skip(1).map(String::as_str),
                env.map(str::to_owned),
            )
        };
        let history = parsed(
            "history --region us-east-1 ami-12345678 --json",
            Some("from-env"),
        )
        .unwrap();
        assert_eq!(history.table, "from-env");
        assert_eq!(
            history.image.as_ref().map(ImageId::as_str),
            Some("ami-12345678")
        );
        assert!(history.json);
        let named = parsed("history --region us-east-1 --table mine", Some("from-env")).unwrap();
        assert_eq!((named.table.as_str(), named.image), ("mine", None));
        assert_eq!(
            named.table_region.as_str(),
            "us-east-1",
            "the table's region: --region"
        );
        // A copy's entry is in the stack's own table, in its home region.
        let copies = parsed(
            "history --region us-west-2 --table-region us-east-1",
            Some("t"),
        )
        .unwrap();
        assert_eq!(
            (copies.region.as_str(), copies.table_region.as_str()),
            ("us-west-2", "us-east-1")
        );
        for (line, env, says) in [
            (
                "history --region us-east-1",
                None,
                "name the ledger's table",
            ),
            (
                "history --region us-east-1",
                Some(""),
                "name the ledger's table",
            ),
            ("history --table t", None, "--region is required"),
            (
                "history --region us-east-1 --table t ami-12345678 ami-87654321",
                None,
                "one too many",
            ),
        ] {
            let err = parsed(line, env).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }
}
