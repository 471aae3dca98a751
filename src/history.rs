//! `ami-publisher history`: what the function did to each AMI and when, as
//! its ledger ([`ledger`](crate::ledger)) recorded it, rendered for a person
//! (or as JSON). Reads only.

use std::fmt::Write as _;

use crate::ledger::{self, Ledger, Record};
use crate::model::{ImageId, RegionName};

/// The records of `region` (one AMI's when `image` is given), or the error
/// as one line for a person.
pub async fn read(
    ledger: &Ledger,
    region: &RegionName,
    image: Option<&ImageId>,
) -> Result<Vec<Record>, String> {
    ledger::history(ledger, region, image).await.map_err(|e| {
        format!(
            "could not read the ledger {} in {}: {e}",
            ledger.table, ledger.region
        )
    })
}

/// One block per AMI: its state now, then each change, oldest first.
pub fn render(records: &[Record]) -> String {
    if records.is_empty() {
        return "The ledger has nothing for these AMIs: the function never made them public.\n"
            .to_owned();
    }
    let mut out = String::new();
    for record in records {
        let _ = writeln!(
            out,
            "{} ({}): {} (version {})",
            record.image_id, record.region, record.state, record.version
        );
        // The times as recorded (RFC 3339, fractions of a second as long
        // as they need): padded to the longest, so the columns line up.
        let width = record.history.iter().map(|c| c.at.len()).max().unwrap_or(0);
        for change in &record.history {
            let _ = writeln!(
                out,
                "  {:<width$}  {:<11} {}",
                change.at, change.state, change.reason
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Change;

    #[test]
    fn each_ami_then_its_changes_oldest_first() {
        let record = Record {
            region: "us-east-1".into(),
            image_id: "ami-0123456789abcdef0".into(),
            state: "held".into(),
            version: 3,
            history: vec![
                Change {
                    at: "2026-12-01T10:00:00Z".into(),
                    state: "publishing".into(),
                    reason: "about to add the group all".into(),
                },
                Change {
                    at: "2026-12-01T10:00:01.5Z".into(),
                    state: "public".into(),
                    reason: "public in us-east-1".into(),
                },
                Change {
                    at: "2026-12-02T09:00:00Z".into(),
                    state: "held".into(),
                    reason: "an unpublish request".into(),
                },
            ],
        };
        let text = render(&[record]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ami-0123456789abcdef0 (us-east-1): held (version 3)"
        );
        assert!(lines[1].contains("publishing") && lines[1].starts_with("  2026-12-01T10:00:00Z"));
        assert!(lines[3].contains("held") && lines[3].ends_with("an unpublish request"));
        // The columns line up whatever the times' fractions.
        let state_at = |line: &str| {
            line.find("publishing")
                .or_else(|| line.find("public"))
                .or_else(|| line.find("held"))
        };
        assert_eq!(state_at(lines[1]), state_at(lines[2]));
        assert_eq!(state_at(lines[1]), state_at(lines[3]));
        assert!(render(&[]).starts_with("The ledger has nothing"));
    }
}
