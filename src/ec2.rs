//! The one module that speaks aws-sdk-ec2: free functions over `&Client`
//! that turn SDK types into the crate's plain [`model`](crate::model) types,
//! and SDK errors into [`Ec2Error`]s that say where they happened.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::primitives::DateTime;
use aws_sdk_ec2::types::{
    Filter, LaunchPermission, LaunchPermissionModifications, PermissionGroup, ResourceType, Tag,
    TagSpecification,
};
use time::OffsetDateTime;

use crate::model::{
    BlockPublicAccess, BpaManager, Image, ImageId, ImageState, RegionName, parse_time,
};

/// An EC2 call that failed, with where and what.
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
}

impl Ec2Error {
    fn new<E, R>(
        operation: &'static str,
        region: &RegionName,
        image_id: Option<&ImageId>,
        error: aws_sdk_ec2::error::SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = error.code().map(str::to_owned).unwrap_or_else(|| {
            match &error {
                aws_sdk_ec2::error::SdkError::ConstructionFailure(_) => "ConstructionFailure",
                aws_sdk_ec2::error::SdkError::TimeoutError(_) => "TimeoutError",
                aws_sdk_ec2::error::SdkError::DispatchFailure(_) => "DispatchFailure",
                aws_sdk_ec2::error::SdkError::ResponseError(_) => "ResponseError",
                _ => "Unknown",
            }
            .to_owned()
        });
        let message = error
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| aws_sdk_ec2::error::DisplayErrorContext(&error).to_string());
        Self {
            operation,
            region: region.clone(),
            image_id: image_id.cloned(),
            code,
            message,
        }
    }
}

/// EC2 clients by region, each built on first use (and only once):
/// building a client sets up its configuration, work an invocation that
/// needs no EC2 call, or no call in that region, should not pay for. Any
/// region of the partition can be served (a copy's source may live in a
/// region the function does not publish in); which regions the function
/// acts in is the publisher's rule, not this map's.
#[derive(Debug, Default)]
pub struct Clients {
    sdk: Option<aws_config::SdkConfig>,
    built: Mutex<HashMap<RegionName, Client>>,
}

impl Clients {
    /// Clients sharing one SDK configuration (credentials, retry, endpoint,
    /// HTTP client), each with its own region; none is built yet.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            sdk: Some(sdk.clone()),
            built: Mutex::default(),
        }
    }

    /// Clients given by hand (tests: mocks per region); no other region is served.
    pub fn from_clients(clients: impl IntoIterator<Item = (RegionName, Client)>) -> Self {
        Self {
            sdk: None,
            built: Mutex::new(clients.into_iter().collect()),
        }
    }

    /// The region's client (a cheap handle on shared state); `None` only for
    /// a region missing from clients given by hand.
    pub fn get(&self, region: &RegionName) -> Option<Client> {
        // A poisoned lock only means another thread panicked while holding
        // it; the map itself is never left half-updated.
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = built.get(region) {
            return Some(client.clone());
        }
        let sdk = self.sdk.as_ref()?;
        let conf = aws_sdk_ec2::config::Builder::from(sdk)
            .region(aws_config::Region::new(region.as_str().to_owned()))
            .build();
        let client = Client::from_conf(conf);
        built.insert(region.clone(), client.clone());
        Some(client)
    }
}

fn image_from_sdk(
    image: &aws_sdk_ec2::types::Image,
    region: &RegionName,
    owned: bool,
) -> Option<Image> {
    let id = ImageId::parse(image.image_id()?).ok()?;
    let encrypted_devices = image
        .block_device_mappings()
        .iter()
        .filter(|m| m.ebs().and_then(|e| e.encrypted()).unwrap_or(false))
        .map(|m| m.device_name().unwrap_or("(unnamed device)").to_owned())
        .collect();
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

/// The account's AMIs in the region carrying any of the tag `keys`
/// (whatever the value), all pages.
pub async fn list_owned_images_with_tag_keys(
    client: &Client,
    region: &RegionName,
    keys: &[&str],
) -> Result<Vec<Image>, Ec2Error> {
    let mut pages = client
        .describe_images()
        .owners("self")
        .filters(
            Filter::builder()
                .name("tag-key")
                .set_values(Some(keys.iter().map(|k| (*k).to_owned()).collect()))
                .build(),
        )
        .max_results(1000)
        .into_paginator()
        .send();
    let mut images = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Ec2Error::new("DescribeImages", region, None, e))?;
        images.extend(
            page.images()
                .iter()
                .filter_map(|i| image_from_sdk(i, region, true)),
        );
    }
    Ok(images)
}

pub async fn block_public_access(
    client: &Client,
    region: &RegionName,
) -> Result<BlockPublicAccess, Ec2Error> {
    let output = client
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
        .enable_image_deprecation()
        .image_id(id.as_str())
        .deprecate_at(DateTime::from_secs(at.unix_timestamp()))
        .send()
        .await
        .map_err(|e| Ec2Error::new("EnableImageDeprecation", region, Some(id), e))?;
    Ok(())
}

/// Adds the group `all` to the AMI's launch permission.
pub async fn make_public(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
) -> Result<(), Ec2Error> {
    let everyone = LaunchPermissionModifications::builder().add(all()).build();
    modify_launch_permission(client, region, id, everyone).await
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
    modify_launch_permission(client, region, id, nobody).await
}

fn all() -> LaunchPermission {
    LaunchPermission::builder()
        .group(PermissionGroup::All)
        .build()
}

async fn modify_launch_permission(
    client: &Client,
    region: &RegionName,
    id: &ImageId,
    change: LaunchPermissionModifications,
) -> Result<(), Ec2Error> {
    client
        .modify_image_attribute()
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
        .create_tags()
        .resources(id.as_str())
        .set_tags(Some(to_sdk_tags(tags)))
        .send()
        .await
        .map_err(|e| Ec2Error::new("CreateTags", region, Some(id), e))?;
    Ok(())
}

/// The account's AMI in `region` tagged `tag_key=tag_value` (a copy found
/// by its provenance tag), if any.
pub async fn find_tagged_owned_image(
    client: &Client,
    region: &RegionName,
    tag_key: &str,
    tag_value: &str,
) -> Result<Option<Image>, Ec2Error> {
    let output = client
        .describe_images()
        .owners("self")
        .filters(
            Filter::builder()
                .name(format!("tag:{tag_key}"))
                .values(tag_value)
                .build(),
        )
        .send()
        .await
        .map_err(|e| Ec2Error::new("DescribeImages", region, None, e))?;
    // Oldest first, should a copy ever have been made twice.
    let mut images: Vec<Image> = output
        .images()
        .iter()
        .filter_map(|i| image_from_sdk(i, region, true))
        .filter(|i| i.tags.get(tag_key).map(String::as_str) == Some(tag_value))
        .collect();
    images.sort_by_key(|i| i.creation_date);
    Ok(images.into_iter().next())
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
    let fail = |code: &str, message: String| Ec2Error {
        operation: "CopyImage",
        region: request.target_region.clone(),
        image_id: Some(source.id.clone()),
        code: code.to_owned(),
        message,
    };
    let output = client
        .copy_image()
        .source_region(source.region.as_str())
        .source_image_id(source.id.as_str())
        .name(source.name.clone().unwrap_or_else(|| source.id.to_string()))
        .set_description(source.description.clone())
        .client_token(request.client_token)
        .copy_image_tags(false)
        // The new snapshots carry the same tags as the new AMI: the
        // provenance tag is what the role's CopyImage statement for created
        // resources asks for.
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
