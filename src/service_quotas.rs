//! The one module that speaks aws-sdk-servicequotas: the account's public
//! AMI quota in a region.

use crate::ec2::Ec2Error;
use crate::model::RegionName;

/// Service Quotas' code of the EC2 quota "Public AMIs" (per region).
pub const PUBLIC_AMIS_QUOTA_CODE: &str = "L-0E3CBAB9";
/// AWS's default for it (EC2 User Guide, "Amazon EC2 AMI quotas").
pub const DEFAULT_PUBLIC_AMIS: u32 = 5;

/// The quota as applied to the account (raised or the default).
pub async fn public_amis(
    client: &aws_sdk_servicequotas::Client,
    region: &RegionName,
) -> Result<u32, Ec2Error> {
    let output = client
        .get_service_quota()
        .service_code("ec2")
        .quota_code(PUBLIC_AMIS_QUOTA_CODE)
        .send()
        .await
        .map_err(|e| Ec2Error::new("GetServiceQuota", region, None, e))?;
    let value = output.quota().and_then(|q| q.value()).ok_or_else(|| {
        Ec2Error::permanent(
            "GetServiceQuota",
            region,
            None,
            "MissingValue",
            format!("the quota {PUBLIC_AMIS_QUOTA_CODE} came without a value"),
        )
    })?;
    // A count of AMIs: whole and not negative; anything else is not trusted.
    if value.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&value) {
        return Err(Ec2Error::permanent(
            "GetServiceQuota",
            region,
            None,
            "MalformedValue",
            format!("the quota {PUBLIC_AMIS_QUOTA_CODE} is {value}"),
        ));
    }
    Ok(value as u32)
}
