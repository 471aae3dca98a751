//! The ledger: the function's own memory of what it made public, in a
//! DynamoDB table (template.yaml, `LedgerTable`; `LEDGER_TABLE`). One item
//! per AMI and copy, keyed by the AMI's region and id, with its state, a
//! version that every change raises, the source of a copy, and the history
//! of changes with their reasons. The only module that speaks
//! aws-sdk-dynamodb, as free functions over a [`Ledger`].
//!
//! Why it exists: an AMI's tags are all the function otherwise remembers,
//! and anyone can delete them (`delete-tags` with no tag list deletes every
//! user tag), while EC2 can't write a tag conditionally. So:
//! - before the group `all` is added, the intent (`publishing`) is recorded;
//!   after, the result (`public`), on the condition that nothing was
//!   recorded in between (a hold or a take-down by another run wins, and
//!   the run that published reads the AMI again and decides again);
//! - take-downs are recorded whatever was there (they win);
//! - a sweep reads its region's entries with one Query, and takes down what
//!   the ledger says the function published even when the AMI lost every
//!   tag.
//!
//! Nothing is made public when the intent can't be recorded (fail closed).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::ec2::Ec2Error;
use crate::model::{ImageId, RegionName, format_time};

/// The most characters of a reason kept in an entry's history.
const MAX_REASON_CHARS: usize = 256;

/// The ledger's table, through a client in the function's region (a cheap
/// handle).
#[derive(Clone, Debug)]
pub struct Ledger {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    /// The table's region (errors name it).
    pub region: RegionName,
}

/// What the ledger says of an AMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// About to get the group `all` (the intent, recorded first).
    Publishing,
    /// Made public by the function.
    Public,
    /// Made private because its owner no longer asks (the publish tag was
    /// removed from it or its source).
    Withdrawn,
    /// Made private by an unpublish request.
    Held,
    /// Made private by rotation.
    Retired,
    /// Private past its deprecation time.
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publishing => "publishing",
            Self::Public => "public",
            Self::Withdrawn => "withdrawn",
            Self::Held => "held",
            Self::Retired => "retired",
            Self::Expired => "expired",
        }
    }

    pub const ALL: [State; 6] = [
        Self::Publishing,
        Self::Public,
        Self::Withdrawn,
        Self::Held,
        Self::Retired,
        Self::Expired,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the function made (or was about to make) the AMI public.
    pub fn published(self) -> bool {
        matches!(self, Self::Publishing | Self::Public)
    }
}

/// The content check's verdict on an AMI, as the ledger keeps it: bound to
/// the AMI's snapshots (an AMI's snapshots never change, so a verdict for
/// the same snapshots is the verdict for the same content), the verdict as
/// JSON (kinds, paths and accounts: never any content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentRecord {
    /// The AMI's snapshot ids, in block device order, comma-separated.
    pub snapshots: String,
    /// `content::Outcome`, serialized.
    pub verdict: String,
}

/// One AMI's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub region: RegionName,
    pub image_id: ImageId,
    pub state: State,
    pub version: u64,
}

/// How a write on the condition of a version ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Recorded; the entry's version now.
    At(u64),
    /// Another run recorded a change since that version: read the AMI
    /// again and decide again.
    Overtaken,
}

/// Records the intent to make the AMI public, before the group `all` is
/// added; the version to make the result conditional on.
pub async fn intend_public(
    ledger: &Ledger,
    region: &RegionName,
    id: &ImageId,
    why: &str,
    now: OffsetDateTime,
    content: Option<&ContentRecord>,
) -> Result<u64, Ec2Error> {
    let mut request = update(ledger, region, id, State::Publishing, why, now, None);
    if let Some(content) = content {
        request = with_content(request, content);
    }
    match written(ledger, id, request.send().await)? {
        Written::At(version) => Ok(version),
        // Unconditional: never overtaken.
        Written::Overtaken => Err(Ec2Error::permanent(
            "UpdateItem",
            &ledger.region,
            Some(id),
            "ConditionalCheckFailed",
            "the ledger refused an unconditional write".into(),
        )),
    }
}

/// Records a state: on the condition that the entry is still at `version`
/// when one is given (a publish's result), whatever is there otherwise (a
/// take-down wins).
pub async fn record(
    ledger: &Ledger,
    region: &RegionName,
    id: &ImageId,
    state: State,
    reason: &str,
    now: OffsetDateTime,
    version: Option<u64>,
) -> Result<Written, Ec2Error> {
    let request = update(ledger, region, id, state, reason, now, version);
    written(ledger, id, request.send().await)
}

/// How an `UpdateItem` of [`update`] ended.
fn written(
    ledger: &Ledger,
    id: &ImageId,
    sent: Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        >,
    >,
) -> Result<Written, Ec2Error> {
    match sent {
        Ok(output) => {
            let version = output
                .attributes()
                .and_then(|a| a.get("version"))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    Ec2Error::permanent(
                        "UpdateItem",
                        &ledger.region,
                        Some(id),
                        "MalformedAnswer",
                        "the ledger's answer has no version".into(),
                    )
                })?;
            Ok(Written::At(version))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(Written::Overtaken)
        }
        Err(e) => Err(Ec2Error::new("UpdateItem", &ledger.region, Some(id), e)),
    }
}

/// The `UpdateItem` of [`record`], built outside the async fn (a debug
/// build keeps every builder temporary in the poll frame, deep in a run's
/// stack otherwise).
fn update(
    ledger: &Ledger,
    region: &RegionName,
    id: &ImageId,
    state: State,
    reason: &str,
    now: OffsetDateTime,
    version: Option<u64>,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    let at = format_time(now);
    let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
    let change = AttributeValue::M(
        [
            ("at".to_owned(), AttributeValue::S(at.clone())),
            ("state".to_owned(), AttributeValue::S(state.as_str().into())),
            ("reason".to_owned(), AttributeValue::S(reason)),
        ]
        .into(),
    );
    let mut request = ledger
        .client
        .update_item()
        .table_name(&ledger.table)
        .set_key(Some(key(region, id)))
        .update_expression(
            "SET #state = :state, #version = if_not_exists(#version, :zero) + :one, \
             updated_at = :at, history = list_append(if_not_exists(history, :empty), :change)",
        )
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#version", "version")
        .expression_attribute_values(":state", AttributeValue::S(state.as_str().into()))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":at", AttributeValue::S(at))
        .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
        .expression_attribute_values(":change", AttributeValue::L(vec![change]))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew);
    if let Some(version) = version {
        request = request
            .condition_expression("#version = :read")
            .expression_attribute_values(":read", AttributeValue::N(version.to_string()));
    }
    request
}

/// An entry's key: its AMI's region and id.
fn key(region: &RegionName, id: &ImageId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "region".to_owned(),
            AttributeValue::S(region.as_str().into()),
        ),
        ("image_id".to_owned(), AttributeValue::S(id.as_str().into())),
    ])
}

/// The attributes of a content verdict, set by an `UpdateItem` (its
/// values: [`content_values`]).
const SET_CONTENT: &str = "content_snapshots = :snapshots, content = :verdict";

fn content_values(
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    content: &ContentRecord,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    request
        .expression_attribute_values(":snapshots", AttributeValue::S(content.snapshots.clone()))
        .expression_attribute_values(":verdict", AttributeValue::S(content.verdict.clone()))
}

/// The content verdict added to an `UpdateItem` of [`update`].
fn with_content(
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    content: &ContentRecord,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    let expression = request.get_update_expression().clone().unwrap_or_default();
    content_values(
        request.update_expression(format!("{expression}, {SET_CONTENT}")),
        content,
    )
}

/// Records a content verdict alone (an AMI it keeps private), the state
/// and version as they are.
pub async fn record_content(
    ledger: &Ledger,
    region: &RegionName,
    id: &ImageId,
    content: &ContentRecord,
) -> Result<(), Ec2Error> {
    let request = ledger
        .client
        .update_item()
        .table_name(&ledger.table)
        .set_key(Some(key(region, id)))
        .update_expression(format!("SET {SET_CONTENT}"));
    content_values(request, content)
        .send()
        .await
        .map_err(|e| Ec2Error::new("UpdateItem", &ledger.region, Some(id), e))?;
    Ok(())
}

/// The content verdict the ledger keeps for an AMI, if any.
pub async fn content_of(
    ledger: &Ledger,
    region: &RegionName,
    id: &ImageId,
) -> Result<Option<ContentRecord>, Ec2Error> {
    let output = ledger
        .client
        .get_item()
        .table_name(&ledger.table)
        .set_key(Some(key(region, id)))
        .projection_expression("content_snapshots, content")
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| Ec2Error::new("GetItem", &ledger.region, Some(id), e))?;
    let text = |k: &str| {
        output
            .item()
            .and_then(|item| item.get(k))
            .and_then(|v| v.as_s().ok())
            .cloned()
    };
    Ok(text("content_snapshots")
        .zip(text("content"))
        .map(|(snapshots, verdict)| ContentRecord { snapshots, verdict }))
}

/// What the ledger says of one AMI (`None`: nothing).
pub async fn state_of(
    ledger: &Ledger,
    region: &RegionName,
    id: &ImageId,
) -> Result<Option<State>, Ec2Error> {
    let output = ledger
        .client
        .get_item()
        .table_name(&ledger.table)
        .set_key(Some(key(region, id)))
        .projection_expression("#state")
        .expression_attribute_names("#state", "state")
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| Ec2Error::new("GetItem", &ledger.region, Some(id), e))?;
    Ok(output
        .item()
        .and_then(|item| item.get("state"))
        .and_then(|v| v.as_s().ok())
        .and_then(|s| State::parse(s)))
}

/// Every entry of `region` whose AMI the function made (or was making)
/// public, read with one Query (paginated).
pub async fn published_in(ledger: &Ledger, region: &RegionName) -> Result<Vec<Entry>, Ec2Error> {
    let mut pages = ledger
        .client
        .query()
        .table_name(&ledger.table)
        .key_condition_expression("#region = :region")
        .filter_expression("#state IN (:publishing, :public)")
        .expression_attribute_names("#region", "region")
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":region", AttributeValue::S(region.as_str().into()))
        .expression_attribute_values(
            ":publishing",
            AttributeValue::S(State::Publishing.as_str().into()),
        )
        .expression_attribute_values(":public", AttributeValue::S(State::Public.as_str().into()))
        .into_paginator()
        .send();
    let mut entries = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Ec2Error::new("Query", &ledger.region, None, e))?;
        for item in page.items() {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok());
            let entry = (|| {
                Some(Entry {
                    region: RegionName::parse(text("region")?).ok()?,
                    image_id: ImageId::parse(text("image_id")?).ok()?,
                    state: State::parse(text("state")?)?,
                    version: item.get("version")?.as_n().ok()?.parse().ok()?,
                })
            })();
            // An entry the function did not write is no fact of its own.
            entries.extend(entry);
        }
    }
    Ok(entries)
}

/// One change in an entry's history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub at: String,
    pub state: String,
    pub reason: String,
}

/// An AMI's entry with its history, oldest change first.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    pub region: String,
    pub image_id: String,
    pub state: String,
    pub version: u64,
    pub history: Vec<Change>,
}

/// The entries of `region` (one AMI's when `image` is given), with their
/// history: a Query, paginated.
pub async fn history(
    ledger: &Ledger,
    region: &RegionName,
    image: Option<&ImageId>,
) -> Result<Vec<Record>, Ec2Error> {
    let mut query = ledger
        .client
        .query()
        .table_name(&ledger.table)
        .expression_attribute_names("#region", "region")
        .expression_attribute_values(":region", AttributeValue::S(region.as_str().into()));
    query = match image {
        Some(id) => query
            .key_condition_expression("#region = :region AND image_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(id.as_str().into())),
        None => query.key_condition_expression("#region = :region"),
    };
    let mut pages = query.into_paginator().send();
    let mut records = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Ec2Error::new("Query", &ledger.region, image, e))?;
        records.extend(page.items().iter().map(record_of));
    }
    Ok(records)
}

fn record_of(item: &HashMap<String, AttributeValue>) -> Record {
    let text = |item: &HashMap<String, AttributeValue>, k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let history = item
        .get("history")
        .and_then(|v| v.as_l().ok())
        .map(|changes| {
            changes
                .iter()
                .filter_map(|c| c.as_m().ok())
                .map(|c| Change {
                    at: text(c, "at"),
                    state: text(c, "state"),
                    reason: text(c, "reason"),
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        region: text(item, "region"),
        image_id: text(item, "image_id"),
        state: text(item, "state"),
        version: item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or_default(),
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        assert_eq!(State::parse("PUBLIC"), None);
        assert!(State::Publishing.published() && State::Public.published());
        assert!(!State::Withdrawn.published() && !State::Held.published());
    }
}
