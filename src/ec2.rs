//! The one module that speaks aws-sdk-ec2: free functions over a region's
//! [`Client`] that keep to the pace of EC2's request buckets, turn SDK types
//! into the crate's plain [`model`](crate::model) types, and SDK errors into
//! [`Ec2Error`]s that say where they happened.

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Instant;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::primitives::DateTime;
use aws_sdk_ec2::types::{
    Filter, LaunchPermission, LaunchPermissionModifications, PermissionGroup, ResourceType, Tag,
    TagSpecification,
};
use time::OffsetDateTime;

use crate::model::{
    BlockPublicAccess, BpaManager, EbsSnapshot, Image, ImageId, ImageState, RegionName, parse_time,
};
use crate::pace::Pace;

/// A region's EC2 client, and the pace its calls keep (pace.rs).
#[derive(Clone, Debug)]
pub struct Client {
    sdk: aws_sdk_ec2::Client,
    pace: Arc<Pace>,
}

impl Client {
    pub fn new(sdk: aws_sdk_ec2::Client, pace: Arc<Pace>) -> Self {
        Self { sdk, pace }
    }

    /// Waits for `action`'s turn, then lends the SDK client to call it.
    async fn turn(&self, action: &str) -> &aws_sdk_ec2::Client {
        self.pace.turn(action).await;
        &self.sdk
    }
}

/// An EC2 call that failed, with where and what, and whether a retry can
/// fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {}in {region} failed: {code}: {message}", image_id.as_ref().map(|i| format!("on {i} ")).unwrap_or_default())]
pub struct Ec2Error {
    pub operation: &'static str,
    pub region: RegionName,
    pub image_id: Option<ImageId>,
    /// The EC2 error code (`RequestLimitExceeded`, ...), or the kind of
    /// failure when the request got no answer (`DispatchFailure`, ...).
    pub code: String,
    pub message: String,
    /// Throttling, a server error, a timeout or no answer at all: the same
    /// call may succeed later. Anything else (a quota, a refusal, a
    /// condition only the owner can change) is permanent.
    pub transient: bool,
}

/// How a failed call of any AWS SDK client is told: the kind of failure
/// when the request got no answer (`DispatchFailure`, ...), the error code
/// (`NoCredentials` when there were none to sign with), and a one-line
/// message.
pub(crate) fn described<E>(
    error: &aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
) -> (Option<&'static str>, String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_ec2::error::SdkError;
    let kind = match error {
        SdkError::ConstructionFailure(_) => Some("ConstructionFailure"),
        SdkError::TimeoutError(_) => Some("TimeoutError"),
        SdkError::DispatchFailure(_) => Some("DispatchFailure"),
        SdkError::ResponseError(_) => Some("ResponseError"),
        _ => None,
    };
    let no_credentials = source_of::<CredentialsError>(error).is_some();
    let code = if no_credentials {
        NO_CREDENTIALS
    } else {
        error.code().or(kind).unwrap_or("Unknown")
    };
    let message = match error.message() {
        Some(message) => message.to_owned(),
        None if no_credentials => {
            "no AWS credentials were found (environment, profile, SSO, web identity, container or instance metadata)".to_owned()
        }
        None => causes(error),
    };
    (kind, code.to_owned(), message)
}

/// The code of a request the SDK could not sign: no credentials anywhere
/// it looks.
pub const NO_CREDENTIALS: &str = "NoCredentials";

/// The first error of `T` in `error`'s chain of sources.
pub(crate) fn source_of<'e, T: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// An error and its sources, on one line: the first line of each, without
/// the SDK's debug dump of nested structs (a person reads this, in a status
/// tag, a log line or the `plan` command's error).
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        let line = text.lines().next().unwrap_or_default().trim().to_owned();
        if !line.is_empty() && parts.last() != Some(&line) {
            parts.push(line);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Error codes AWS services answer when a retry may succeed (throttling and
/// server-side trouble), as the SDKs' standard retry classifies them.
const TRANSIENT_CODES: [&str; 18] = [
    // DynamoDB's (the ledger): its capacity and request-rate errors, and
    // a transaction conflict, are retried ("Error handling with DynamoDB":
    // ProvisionedThroughputExceeded, RequestLimitExceeded, ThrottlingException,
    // TransactionConflict, InternalServerError).
    "ProvisionedThroughputExceededException",
    "RequestLimitExceededException",
    "TransactionConflictException",
    "InternalServerError",
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
];

impl Ec2Error {
    pub(crate) fn new<E>(
        operation: &'static str,
        region: &RegionName,
        image_id: Option<&ImageId>,
        error: aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (kind, code, message) = described(&error);
        let server_error = error
            .raw_response()
            .is_some_and(|r| r.status().is_server_error());
        let transient = match kind {
            Some("ConstructionFailure") => false,
            Some(_) => true,
            None => server_error || TRANSIENT_CODES.contains(&code.as_str()),
        };
        Self {
            operation,
            region: region.clone(),
            image_id: image_id.cloned(),
            code,
            message,
            transient,
        }
    }

    /// A permanent failure of the function's own making (no such client, a
    /// malformed answer).
    pub(crate) fn permanent(
        operation: &'static str,
        region: &RegionName,
        image_id: Option<&ImageId>,
        code: &str,
        message: String,
    ) -> Self {
        Self {
            operation,
            region: region.clone(),
            image_id: image_id.cloned(),
            code: code.to_owned(),
            message,
            transient: false,
        }
    }

    /// What the AMI's owner can do about a permanent failure, in a sentence
    /// for the status reason.
    pub fn advice(&self) -> String {
        let region = &self.region;
        match (self.operation, self.code.as_str()) {
            ("ModifyImageAttribute", "ResourceLimitExceeded") => format!(
                "the public AMI quota in {region} is reached ({}): make public AMIs private or deregister them (public AMIs in the Recycle Bin count too), or raise the quota (Service Quotas, Amazon EC2, Public AMIs, L-0E3CBAB9)",
                self.message
            ),
            ("CopyImage", "ResourceLimitExceeded") => format!(
                "too many copies in progress into {region} ({}): the next sweep starts this one",
                self.message
            ),
            ("CopyImage", "UnauthorizedOperation" | "AccessDenied") => format!(
                "IAM refused CopyImage of {} into {region}: the role's CopyFromOwnImages or CopyCreatesMarkedImage does not allow it, or DenyPublishAndFamilyTagKeys refused the tags it copies (README, First deploy, says how to tell)",
                self.image_id.as_ref().map_or("the AMI", ImageId::as_str)
            ),
            (_, "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException") => format!(
                "the function's role may not call {} in {region}: check its policy (README, IAM permissions)",
                self.operation
            ),
            (_, "OptInRequired" | "InvalidRegion" | "UnknownRegion" | "AuthFailure")
                if self.image_id.is_none() || self.operation == "CopyImage" =>
            {
                format!(
                    "{region} does not answer this account ({}: {}): enable the region, or remove it from TARGET_REGIONS",
                    self.code, self.message
                )
            }
            _ => format!(
                "EC2 refused {} in {region}: {}: {}",
                self.operation, self.code, self.message
            ),
        }
    }
}

fn image_from_sdk(
    image: &aws_sdk_ec2::types::Image,
    region: &RegionName,
    owned: bool,
) -> Option<Image> {
    let id = ImageId::parse(image.image_id()?).ok()?;
    let device = |m: &aws_sdk_ec2::types::BlockDeviceMapping| {
        m.device_name().unwrap_or("(unnamed device)").to_owned()
    };
    let ebs = || {
        image
            .block_device_mappings()
            .iter()
            .filter(|m| m.ebs().is_some())
    };
    let encrypted_devices = ebs()
        .filter(|m| m.ebs().and_then(|e| e.encrypted()) == Some(true))
        .map(device)
        .collect();
    // Fail closed: an EBS mapping without the flag is not known to be
    // unencrypted.
    let unknown_encryption = ebs()
        .filter(|m| m.ebs().and_then(|e| e.encrypted()).is_none())
        .map(device)
        .collect();
    // The root device's snapshot first (reading looks for the root file
    // system there first), then the others in mapping order.
    let root = image.root_device_name();
    let mut snapshots: Vec<EbsSnapshot> = ebs()
        .filter_map(|m| {
            let snapshot_id = m.ebs()?.snapshot_id()?.to_owned();
            Some(EbsSnapshot {
                device: device(m),
                snapshot_id,
            })
        })
        .collect();
    snapshots.sort_by_key(|s| Some(s.device.as_str()) != root);
    let product_codes = image
        .product_codes()
        .iter()
        .map(|p| p.product_code_id().unwrap_or("(unnamed)").to_owned())
        .collect();
    let tags: BTreeMap<String, String> = image
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    Some(Image {
        id,
        region: region.clone(),
        name: image.name().map(str::to_owned),
        description: image.description().map(str::to_owned),
        owner_id: image.owner_id().map(str::to_owned),
        owned,
        state: ImageState::parse(image.state().map(|s| s.as_str()).unwrap_or("unknown")),
        public: image.public().unwrap_or(false),
        encrypted_devices,
        unknown_encryption,
        instance_store: image.root_device_type().map(|t| t.as_str()) == Some("instance-store"),
        snapshots,
        // "enabled-with-cooldown", "enabled-without-cooldown"; "disabled"
        // (and, during a cool-down, "disabled-until ...") otherwise.
        deregistration_protected: image
            .deregistration_protection()
            .is_some_and(|p| p.starts_with("enabled")),
        product_codes,
        creation_date: image.creation_date().and_then(parse_time),
        deprecation_time: image.deprecation_time().and_then(parse_time),
        tags,
    })
}

fn is_not_found(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable")
    )
}

/// The AMI as this account sees it: first among the account's own AMIs
/// (`Owners=["self"]`, the ownership test), else among those shared with it.
/// `None` when it does not exist or is not visible to the account.
pub async fn describe_image(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
) -> Result<Option<Image>, Ec2Error> {
    for (owners, owned) in [(Some("self"), true), (None, false)] {
        let result = client
            .turn("DescribeImages")
            .await
            .describe_images()
            .image_ids(id.as_str())
            .set_owners(owners.map(|o| vec![o.to_owned()]))
            .send()
            .await;
        match result {
            Ok(output) => {
                // Trust nothing: the answer must be the AMI that was asked for.
                if let Some(image) = output
                    .images()
                    .iter()
                    .find(|i| i.image_id() == Some(id.as_str()))
                {
                    return Ok(image_from_sdk(image, region, owned));
                }
            }
            Err(e) if is_not_found(e.code()) => return Ok(None),
            Err(e) => return Err(Ec2Error::new("DescribeImages", region, Some(id), e)),
        }
    }
    Ok(None)
}

/// What `DescribeImages` says of one of the account's AMIs by id.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// Listed, in this state.
    Found(ImageState),
    /// An empty answer: EC2 returns recently deregistered AMIs for a short
    /// while, then empty results (DescribeImages API reference).
    Gone,
    /// `InvalidAMIID.NotFound`: never existed, long gone, or (eventual
    /// consistency) created a moment ago and not visible yet.
    Unknown,
}

/// One of the account's AMIs by id, as EC2 sees it now.
pub async fn describe_own_image(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
) -> Result<Seen, Ec2Error> {
    let result = client
        .turn("DescribeImages")
        .await
        .describe_images()
        .image_ids(id.as_str())
        .owners("self")
        .include_disabled(true)
        .send()
        .await;
    match result {
        Ok(output) => Ok(output
            .images()
            .iter()
            .find(|i| i.image_id() == Some(id.as_str()))
            .map_or(Seen::Gone, |i| {
                Seen::Found(ImageState::parse(
                    i.state().map_or("unknown", |s| s.as_str()),
                ))
            })),
        Err(e) if is_not_found(e.code()) => Ok(Seen::Unknown),
        Err(e) => Err(Ec2Error::new("DescribeImages", region, Some(id), e)),
    }
}

/// The account's AMIs in the region carrying any of the tag `keys`
/// (whatever the value), all pages; disabled ones too (a disabled copy is a
/// dead one, to be replaced). Only those `keep` says yes to are kept, page
/// by page: a sweep holds the AMIs it has work for, not every one listed.
pub async fn list_owned_images_with_tag_keys(
    client: &Client,
    region: &RegionName,
    keys: &[&str],
    keep: impl FnMut(&Image) -> bool,
) -> Result<Vec<Image>, Ec2Error> {
    let filter = Filter::builder()
        .name("tag-key")
        .set_values(Some(keys.iter().map(|k| (*k).to_owned()).collect()))
        .build();
    list_owned(client, region, filter, keep).await
}

/// The account's AMIs in the region tagged `key=value`, all pages, disabled
/// ones too (the copies of a source, found by their provenance tag).
pub async fn list_owned_images_tagged(
    client: &Client,
    region: &RegionName,
    key: &str,
    value: &str,
) -> Result<Vec<Image>, Ec2Error> {
    let filter = Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build();
    // EC2's filter values take `*` and `?` as wildcards: only the exact
    // value is kept (a family `web*` must not take in `web-2`'s AMIs).
    list_owned(client, region, filter, |image| {
        image.tags.get(key).is_some_and(|v| v == value)
    })
    .await
}

/// How many of the account's AMIs are public in the region.
pub async fn count_public_images(client: &Client, region: &RegionName) -> Result<usize, Ec2Error> {
    let filter = Filter::builder().name("is-public").values("true").build();
    let mut public = 0;
    list_owned(client, region, filter, |_| {
        public += 1;
        false
    })
    .await?;
    Ok(public)
}

async fn list_owned(
    client: &Client,
    region: &RegionName,
    filter: Filter,
    mut keep: impl FnMut(&Image) -> bool,
) -> Result<Vec<Image>, Ec2Error> {
    // 1000 a page, the most EC2 allows: a sweep of 10,000 AMIs is 10 calls.
    let mut pages = client
        .sdk
        .describe_images()
        .owners("self")
        .include_disabled(true)
        .filters(filter)
        .max_results(1000)
        .into_paginator()
        .send();
    let mut images = Vec::new();
    while let Some(page) = {
        client.pace.turn("DescribeImages").await;
        pages.next().await
    } {
        let page = page.map_err(|e| Ec2Error::new("DescribeImages", region, None, e))?;
        images.extend(
            page.images()
                .iter()
                .filter_map(|i| image_from_sdk(i, region, true))
                .filter(|i| keep(i)),
        );
    }
    Ok(images)
}

/// How many of the account's AMIs are in the region's Recycle Bin (EC2 does
/// not say which of them were public; those count toward the quota).
pub async fn count_images_in_recycle_bin(
    client: &Client,
    region: &RegionName,
) -> Result<usize, Ec2Error> {
    let mut pages = client
        .sdk
        .list_images_in_recycle_bin()
        .max_results(1000)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = {
        client.pace.turn("ListImagesInRecycleBin").await;
        pages.next().await
    } {
        let page = page.map_err(|e| Ec2Error::new("ListImagesInRecycleBin", region, None, e))?;
        count += page.images().len();
    }
    Ok(count)
}

/// Whether EBS encryption by default is on for the account in the region:
/// copies made there come out encrypted, and can't be public.
pub async fn ebs_encryption_by_default(
    client: &Client,
    region: &RegionName,
) -> Result<bool, Ec2Error> {
    let output = client
        .turn("GetEbsEncryptionByDefault")
        .await
        .get_ebs_encryption_by_default()
        .send()
        .await
        .map_err(|e| Ec2Error::new("GetEbsEncryptionByDefault", region, None, e))?;
    // Fail closed: no answer counts as on.
    Ok(output.ebs_encryption_by_default().unwrap_or(true))
}

pub async fn block_public_access(
    client: &Client,
    region: &RegionName,
) -> Result<BlockPublicAccess, Ec2Error> {
    let output = client
        .turn("GetImageBlockPublicAccessState")
        .await
        .get_image_block_public_access_state()
        .send()
        .await
        .map_err(|e| Ec2Error::new("GetImageBlockPublicAccessState", region, None, e))?;
    match output.image_block_public_access_state() {
        Some("unblocked") => Ok(BlockPublicAccess::Unblocked),
        // Fail closed: any state but `unblocked` blocks.
        _ => Ok(BlockPublicAccess::BlockNewSharing {
            managed_by: match output.managed_by().map(|m| m.as_str()) {
                Some("account") => BpaManager::Account,
                Some("declarative-policy") => BpaManager::DeclarativePolicy,
                other => BpaManager::Other(other.unwrap_or("unknown").to_owned()),
            },
        }),
    }
}

pub async fn enable_deprecation(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
    at: OffsetDateTime,
) -> Result<(), Ec2Error> {
    client
        .turn("EnableImageDeprecation")
        .await
        .enable_image_deprecation()
        .image_id(id.as_str())
        .deprecate_at(DateTime::from_secs(at.unix_timestamp()))
        .send()
        .await
        .map_err(|e| Ec2Error::new("EnableImageDeprecation", region, Some(id), e))?;
    Ok(())
}

/// The code of [`make_public`]'s refusal to call EC2 after `not_after`.
pub const FACTS_TOO_OLD: &str = "FactsTooOld";

/// Adds the group `all` to the AMI's launch permission, unless the call's
/// turn in EC2's bucket comes after `not_after` (when the facts it was
/// decided on are too old): then nothing is sent, and the error's code is
/// [`FACTS_TOO_OLD`].
pub async fn make_public(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
    not_after: Instant,
) -> Result<(), Ec2Error> {
    let everyone = LaunchPermissionModifications::builder().add(all()).build();
    let sdk = client.turn("ModifyImageAttribute").await;
    if Instant::now() > not_after {
        return Err(Ec2Error::permanent(
            "ModifyImageAttribute",
            region,
            Some(id),
            FACTS_TOO_OLD,
            "not sent: the facts it was decided on are too old".into(),
        ));
    }
    send_launch_permission(sdk, region, id, everyone).await
}

/// Turns the AMI's deregistration protection on, without a cool-down (so
/// that retiring it later can turn it off at once), or off.
pub async fn set_deregistration_protection(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
    on: bool,
) -> Result<(), Ec2Error> {
    if on {
        client
            .turn("EnableImageDeregistrationProtection")
            .await
            .enable_image_deregistration_protection()
            .image_id(id.as_str())
            .with_cooldown(false)
            .send()
            .await
            .map_err(|e| {
                Ec2Error::new("EnableImageDeregistrationProtection", region, Some(id), e)
            })?;
    } else {
        client
            .turn("DisableImageDeregistrationProtection")
            .await
            .disable_image_deregistration_protection()
            .image_id(id.as_str())
            .send()
            .await
            .map_err(|e| {
                Ec2Error::new("DisableImageDeregistrationProtection", region, Some(id), e)
            })?;
    }
    Ok(())
}

/// Removes the group `all` from the AMI's launch permission; sharing with
/// accounts, organizations and OUs is left as it is.
pub async fn make_private(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
) -> Result<(), Ec2Error> {
    let nobody = LaunchPermissionModifications::builder()
        .remove(all())
        .build();
    send_launch_permission(
        client.turn("ModifyImageAttribute").await,
        region,
        id,
        nobody,
    )
    .await
}

fn all() -> LaunchPermission {
    LaunchPermission::builder()
        .group(PermissionGroup::All)
        .build()
}

async fn send_launch_permission(
    sdk: &aws_sdk_ec2::Client,
    region: &RegionName,
    id: &ImageId,
    change: LaunchPermissionModifications,
) -> Result<(), Ec2Error> {
    sdk.modify_image_attribute()
        .image_id(id.as_str())
        .launch_permission(change)
        .send()
        .await
        .map_err(|e| Ec2Error::new("ModifyImageAttribute", region, Some(id), e))?;
    Ok(())
}

pub async fn create_tags(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
    tags: &[(String, String)],
) -> Result<(), Ec2Error> {
    client
        .turn("CreateTags")
        .await
        .create_tags()
        .resources(id.as_str())
        .set_tags(Some(to_sdk_tags(tags)))
        .send()
        .await
        .map_err(|e| Ec2Error::new("CreateTags", region, Some(id), e))?;
    Ok(())
}

/// What `CopyImage` needs to copy a source AMI into another region.
pub struct CopyRequest<'a> {
    pub source: &'a Image,
    pub target_region: &'a RegionName,
    pub client_token: &'a str,
    pub tags: &'a [(String, String)],
}

/// Starts a copy (issued in the target region) and returns its id.
pub async fn copy_image(client: &Client, request: CopyRequest<'_>) -> Result<ImageId, Ec2Error> {
    let source = request.source;
    let fail = |code: &str, message: String| {
        Ec2Error::permanent(
            "CopyImage",
            request.target_region,
            Some(&source.id),
            code,
            message,
        )
    };
    let output = client
        .turn("CopyImage")
        .await
        .copy_image()
        .source_region(source.region.as_str())
        .source_image_id(source.id.as_str())
        .name(source.name.clone().unwrap_or_else(|| source.id.to_string()))
        .set_description(source.description.clone())
        .client_token(request.client_token)
        // The source's user tags, the publish tag among them, come from EC2:
        // the role may never put the publish or family key in a request
        // (template.yaml, DenyPublishAndFamilyTagKeys).
        .copy_image_tags(true)
        // The new snapshots carry the same tags as the new AMI: the
        // provenance tag is what the role's CopyCreatesMarkedImage asks for.
        .set_tag_specifications(Some(
            [ResourceType::Image, ResourceType::Snapshot]
                .into_iter()
                .map(|resource_type| {
                    TagSpecification::builder()
                        .resource_type(resource_type)
                        .set_tags(Some(to_sdk_tags(request.tags)))
                        .build()
                })
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| Ec2Error::new("CopyImage", request.target_region, Some(&source.id), e))?;
    let id = output
        .image_id()
        .ok_or_else(|| fail("MissingImageId", "CopyImage returned no ImageId".into()))?;
    ImageId::parse(id).map_err(|e| fail("MalformedImageId", e))
}

fn to_sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}
