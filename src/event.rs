//! Incoming payloads: EventBridge events and direct invocations, parsed
//! loosely into one [`Trigger`]. Fields the function does not use are
//! ignored; a payload of no known shape is a clear error naming what came.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

use crate::config::Config;
use crate::model::{ImageId, Intent, RegionName};

/// The key under which a payload that is not JSON reaches the handler (see
/// [`NotJsonLayer`]): Lambda's runtime would otherwise refuse it before the
/// function could say what was wrong.
pub const NOT_JSON: &str = "ami-publisher:not-json";

/// An invocation's payload, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub trigger: Trigger,
    /// A dry run: report every step, make none (direct `"dry_run": true`).
    pub preview: bool,
}

impl From<Trigger> for Request {
    fn from(trigger: Trigger) -> Self {
        Self {
            trigger,
            preview: false,
        }
    }
}

/// What an invocation asks the function to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Reconcile one AMI toward its desired state, or take it down.
    Image {
        image_id: ImageId,
        region: RegionName,
        cause: Cause,
        intent: Intent,
    },
    /// Reconcile every AMI of the account in the region tagged for publishing.
    Sweep { region: RegionName },
    /// An event the function acknowledges and does nothing about.
    Ignored { reason: String },
}

/// Why an AMI is being reconciled; logged and reported, never decisive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    Available,
    TagChanged,
    Direct,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("unsupported event: source `{event_source}`, detail-type `{detail_type}`{extra}")]
    Unsupported {
        event_source: String,
        detail_type: String,
        extra: String,
    },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error(
        "unrecognised payload: neither an EventBridge event (source, detail-type, detail) nor a direct invocation {{\"image_id\": \"ami-...\", \"region\": \"...\", \"action\": \"publish\" or \"unpublish\"}}: {reason}"
    )]
    Unrecognised { reason: String },
}

const AMI_STATE_CHANGE: (&str, &str) = ("aws.ec2", "EC2 AMI State Change");
const TAG_CHANGE: (&str, &str) = ("aws.tag", "Tag Change on Resource");
const SCHEDULED: (&str, &str) = ("aws.events", "Scheduled Event");

#[derive(Deserialize)]
struct AmiStateChange {
    #[serde(rename = "ImageId")]
    image_id: String,
    #[serde(rename = "State")]
    state: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TagChange {
    changed_tag_keys: Vec<String>,
    service: String,
    resource_type: String,
    // `tags` (the tag set after the change) is not read: the AMI's current
    // tags come from EC2, which a late or repeated event can't contradict.
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    #[serde(default)]
    image_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    action: Option<DirectAction>,
    /// A sweep of the region rather than one AMI.
    #[serde(default)]
    sweep: bool,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum DirectAction {
    /// Reconcile, as the events do (the default).
    Publish,
    /// The emergency path: private now, with its copies, whatever its tags.
    Unpublish,
}

/// Parses a payload. `publish_tag_key` decides which tag changes matter;
/// `home_region` is the region of a direct invocation that names none.
/// Parses a payload for the function configured by `config`: the publish
/// key decides which tag changes matter, the function's region is the
/// region of a direct invocation that names none and the only one a
/// scheduled sweep may name, and its partition the only one an ARN may name.
/// `account`, when known (from the invoked function's ARN), is the only
/// account an ARN may name.
pub fn parse(
    payload: &Value,
    config: &Config,
    account: Option<&str>,
) -> Result<Request, EventError> {
    let home_region = &config.home_region;
    if let Some(excerpt) = payload.get(NOT_JSON).and_then(Value::as_str) {
        return Err(EventError::Unrecognised {
            reason: format!("the payload is not JSON: {excerpt:?}"),
        });
    }
    if !payload.is_object() {
        return Err(EventError::Unrecognised {
            reason: format!("expected a JSON object, got {}", kind_of(payload)),
        });
    }
    if payload.get("detail-type").is_some() || payload.get("source").is_some() {
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(payload.clone()).map_err(|e| EventError::Malformed {
                what: "EventBridge event",
                reason: e.to_string(),
            })?;
        let function = Function {
            publish_tag_key: &config.publish_tag_key,
            region: home_region,
            account,
        };
        return parse_eventbridge(event, &function).map(Request::from);
    }
    let direct: Direct =
        serde_json::from_value(payload.clone()).map_err(|e| EventError::Unrecognised {
            reason: e.to_string(),
        })?;
    let region = match direct.region.as_deref() {
        None | Some("") => home_region.clone(),
        Some(r) => RegionName::parse(r).map_err(|reason| EventError::Malformed {
            what: "direct invocation region",
            reason,
        })?,
    };
    let intent = match direct.action {
        None | Some(DirectAction::Publish) => Intent::Reconcile,
        Some(DirectAction::Unpublish) => Intent::Unpublish,
    };
    let trigger = match (direct.sweep, direct.image_id) {
        (true, None) if intent == Intent::Reconcile => Trigger::Sweep { region },
        (true, _) => {
            return Err(EventError::Malformed {
                what: "direct invocation",
                reason: "a sweep names no image_id and no action".into(),
            });
        }
        (false, None) => {
            return Err(EventError::Unrecognised {
                reason: "no image_id (or \"sweep\": true)".into(),
            });
        }
        (false, Some(id)) => Trigger::Image {
            image_id: ImageId::parse(&id).map_err(|reason| EventError::Malformed {
                what: "direct invocation image_id",
                reason,
            })?,
            region,
            cause: Cause::Direct,
            intent,
        },
    };
    Ok(Request {
        trigger,
        preview: direct.dry_run,
    })
}

/// What an event is checked against.
struct Function<'a> {
    publish_tag_key: &'a str,
    region: &'a RegionName,
    account: Option<&'a str>,
}

fn parse_eventbridge(
    event: EventBridgeEvent<Value>,
    function: &Function<'_>,
) -> Result<Trigger, EventError> {
    let publish_tag_key = function.publish_tag_key;
    let kind = (event.source.as_str(), event.detail_type.as_str());
    if kind == AMI_STATE_CHANGE {
        let region = envelope_region(&event)?;
        let detail: AmiStateChange = detail(&event, "EC2 AMI State Change detail")?;
        let image_id =
            ImageId::parse(&detail.image_id).map_err(|reason| EventError::Malformed {
                what: "EC2 AMI State Change detail.ImageId",
                reason,
            })?;
        if detail.state != "available" {
            return Ok(Trigger::Ignored {
                reason: format!("{image_id} in {region} became {}", detail.state),
            });
        }
        Ok(Trigger::Image {
            image_id,
            region,
            cause: Cause::Available,
            intent: Intent::Reconcile,
        })
    } else if kind == TAG_CHANGE {
        let detail: TagChange = detail(&event, "Tag Change on Resource detail")?;
        if (detail.service.as_str(), detail.resource_type.as_str()) != ("ec2", "image") {
            return Err(EventError::Unsupported {
                event_source: event.source,
                detail_type: event.detail_type,
                extra: format!(
                    " on service `{}` resource-type `{}` (only ec2 images are published)",
                    detail.service, detail.resource_type
                ),
            });
        }
        let (image_id, region) = image_from_resources(&event, function)?;
        if !detail.changed_tag_keys.iter().any(|k| k == publish_tag_key) {
            return Ok(Trigger::Ignored {
                reason: format!(
                    "tag change on {image_id} in {region} does not touch `{publish_tag_key}`"
                ),
            });
        }
        Ok(Trigger::Image {
            image_id,
            region,
            cause: Cause::TagChanged,
            intent: Intent::Reconcile,
        })
    } else if kind == SCHEDULED {
        // A schedule sweeps the region of the stack that owns it: one naming
        // another region is not this function's.
        let region = envelope_region(&event)?;
        if region != *function.region {
            return Err(EventError::Malformed {
                what: "Scheduled Event region",
                reason: format!(
                    "`{region}` is not the function's region {}: each stack sweeps its own region",
                    function.region
                ),
            });
        }
        Ok(Trigger::Sweep { region })
    } else {
        Err(EventError::Unsupported {
            event_source: event.source,
            detail_type: event.detail_type,
            extra: String::new(),
        })
    }
}

fn detail<T: serde::de::DeserializeOwned>(
    event: &EventBridgeEvent<Value>,
    what: &'static str,
) -> Result<T, EventError> {
    serde_json::from_value(event.detail.clone()).map_err(|e| EventError::Malformed {
        what,
        reason: e.to_string(),
    })
}

fn envelope_region(event: &EventBridgeEvent<Value>) -> Result<RegionName, EventError> {
    let text = event
        .region
        .as_deref()
        .ok_or_else(|| EventError::Malformed {
            what: "EventBridge event",
            reason: "no `region`".into(),
        })?;
    RegionName::parse(text).map_err(|reason| EventError::Malformed {
        what: "EventBridge event region",
        reason,
    })
}

/// The AMI of a tag change: `resources[0]` is
/// `arn:PARTITION:ec2:REGION:[ACCOUNT]:image/ami-...`, in the function's
/// partition, in the event's region, of no account or the function's own.
fn image_from_resources(
    event: &EventBridgeEvent<Value>,
    function: &Function<'_>,
) -> Result<(ImageId, RegionName), EventError> {
    let malformed = |reason: String| EventError::Malformed {
        what: "Tag Change on Resource resources",
        reason,
    };
    let arn = event
        .resources
        .as_deref()
        .and_then(<[String]>::first)
        .ok_or_else(|| malformed("no resource ARN".into()))?;
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "ec2", region, account, resource] = parts[..] else {
        return Err(malformed(format!(
            "`{arn}` is not an EC2 ARN (arn:PARTITION:ec2:REGION:ACCOUNT:image/ami-...)"
        )));
    };
    let id = resource
        .strip_prefix("image/")
        .ok_or_else(|| malformed(format!("`{arn}` is not an image ARN")))?;
    let image_id = ImageId::parse(id).map_err(malformed)?;
    let region = RegionName::parse(region).map_err(malformed)?;
    let own_partition = function.region.partition();
    if partition != own_partition {
        return Err(malformed(format!(
            "`{arn}` is in partition {partition}, not the function's ({own_partition})"
        )));
    }
    let event_region = envelope_region(event)?;
    if region != event_region {
        return Err(malformed(format!(
            "`{arn}` names region {region}, the event came from {event_region}"
        )));
    }
    let own_account = function.account.or(event.account.as_deref());
    if !account.is_empty() && Some(account) != own_account {
        return Err(malformed(format!(
            "`{arn}` names account {account}, not the function's ({})",
            own_account.unwrap_or("unknown")
        )));
    }
    Ok((image_id, region))
}

/// A layer of the Lambda runtime that hands the handler a payload that is
/// not JSON as `{"ami-publisher:not-json": "<its first 100 characters>"}`,
/// so that it gets the answer every invalid event gets (`InvalidEvent`,
/// naming what came) rather than the runtime deserializer's. (Lambda's own
/// Invoke API refuses payloads that are not JSON; a runtime API that passes
/// one on must still get a clear answer.)
#[derive(Clone, Copy, Debug, Default)]
pub struct NotJsonLayer;

impl<S> lambda_runtime::tower::Layer<S> for NotJsonLayer {
    type Service = NotJson<S>;

    fn layer(&self, inner: S) -> NotJson<S> {
        NotJson(inner)
    }
}

/// The service of [`NotJsonLayer`].
#[derive(Clone, Debug)]
pub struct NotJson<S>(S);

impl<S> lambda_runtime::Service<lambda_runtime::LambdaInvocation> for NotJson<S>
where
    S: lambda_runtime::Service<lambda_runtime::LambdaInvocation>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        invocation.body = wrap_if_not_json(&invocation.body).into();
        self.0.call(invocation)
    }
}

/// The payload as it is when it is JSON, else wrapped for [`parse`].
/// "JSON" is what the runtime can read into the handler's `Value`: text
/// that only looks like JSON (a number out of `f64`'s range, a lone
/// surrogate escape, bytes that are not UTF-8 inside a string) passes a
/// syntax check but not that, and would be the runtime's own error.
fn wrap_if_not_json(body: &[u8]) -> Vec<u8> {
    if serde_json::from_slice::<Value>(body).is_ok() {
        return body.to_vec();
    }
    let excerpt: String = String::from_utf8_lossy(body).chars().take(100).collect();
    serde_json::json!({ NOT_JSON: excerpt })
        .to_string()
        .into_bytes()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn home() -> RegionName {
        RegionName::parse("us-east-1").unwrap()
    }

    fn parse_json(value: Value) -> Result<Trigger, EventError> {
        parse(&value, &config(), None).map(|r| r.trigger)
    }

    fn config() -> Config {
        Config::from_vars(&[("AWS_REGION", "us-east-1")]).unwrap()
    }

    fn image(id: &str, region: &str, cause: Cause) -> Trigger {
        Trigger::Image {
            image_id: ImageId::parse(id).unwrap(),
            region: RegionName::parse(region).unwrap(),
            cause,
            intent: Intent::Reconcile,
        }
    }

    /// The EC2 AMI State Change sample from the EC2 documentation, verbatim.
    const AWS_AMI_SAMPLE: &str = r#"{"version":"0","id":"example-9f07-51db-246b-d8b8441bcdf0","detail-type":"EC2 AMI State Change","source":"aws.ec2","account":"012345678901","time":"2024-01-01T00:00:00Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1::image/ami-0123456789example"],"detail":{"RequestId":"example-9dcc-40a6-aa77-7ce457d5442b","ImageId":"ami-0123456789example","State":"available","ErrorMessage":""}}"#;

    /// The Tag Change on Resource sample from the EventBridge documentation, verbatim.
    const AWS_TAG_SAMPLE: &str = r#"{"version":"0","id":"bddcf1d6-0251-35a1-aab0-adc1fb47c11c","detail-type":"Tag Change on Resource","source":"aws.tag","account":"123456789012","time":"2018-09-18T20:41:38Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-0000000aaaaaaaaaa"],"detail":{"changed-tag-keys":["a-new-key","an-updated-key","a-deleted-key"],"tags":{"a-new-key":"tag-value-on-new-key-just-added","an-updated-key":"tag-value-was-just-changed","an-unchanged-key":"tag-value-still-the-same"},"service":"ec2","resource-type":"instance","version":3}}"#;

    fn sample(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn aws_ami_available_sample_reconciles_its_image() {
        assert_eq!(
            parse_json(sample(AWS_AMI_SAMPLE)),
            Ok(image(
                "ami-0123456789example",
                "us-east-1",
                Cause::Available
            ))
        );
    }

    #[test]
    fn other_ami_states_are_ignored() {
        for state in ["failed", "deregistered", "disabled", "pending"] {
            let mut event = sample(AWS_AMI_SAMPLE);
            event["detail"]["State"] = json!(state);
            let Ok(Trigger::Ignored { reason }) = parse_json(event) else {
                panic!("state {state} should be ignored");
            };
            assert!(reason.contains(state), "{reason}");
        }
    }

    #[test]
    fn aws_tag_change_sample_on_an_instance_is_unsupported() {
        let err = parse_json(sample(AWS_TAG_SAMPLE)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("aws.tag") && text.contains("resource-type `instance`"),
            "{text}"
        );
    }

    /// The AWS sample, on an image, coming from the ARN's region.
    fn tag_change(arn: &str, changed: &[&str]) -> Value {
        let mut event = sample(AWS_TAG_SAMPLE);
        event["resources"] = json!([arn]);
        if let Some(region) = arn.split(':').nth(3).filter(|r| !r.is_empty()) {
            event["region"] = json!(region);
        }
        event["detail"]["resource-type"] = json!("image");
        event["detail"]["changed-tag-keys"] = json!(changed);
        event
    }

    #[test]
    fn tag_change_of_the_publish_key_reconciles_the_image_with_or_without_account() {
        for arn in [
            "arn:aws:ec2:eu-west-1::image/ami-0a1b2c3d4e5f60001",
            "arn:aws:ec2:eu-west-1:123456789012:image/ami-0a1b2c3d4e5f60001",
        ] {
            assert_eq!(
                parse_json(tag_change(arn, &["Name", "publish"])),
                Ok(image(
                    "ami-0a1b2c3d4e5f60001",
                    "eu-west-1",
                    Cause::TagChanged
                )),
                "{arn}"
            );
        }
    }

    #[test]
    fn tag_change_of_other_keys_is_ignored_even_status_tags() {
        let event = tag_change(
            "arn:aws:ec2:us-east-1::image/ami-0a1b2c3d4e5f60001",
            &["publish:status", "publish:reason"],
        );
        assert!(matches!(parse_json(event), Ok(Trigger::Ignored { .. })));
    }

    #[test]
    fn tag_change_with_a_bad_arn_is_malformed() {
        for (arn, names) in [
            (
                "arn:aws:ec2:us-east-1::snapshot/snap-0123",
                "not an image ARN",
            ),
            ("arn:aws:ec2:us-east-1::image/not-an-ami", "not an AMI id"),
            ("nonsense", "not an EC2 ARN"),
            (
                "ec2:us-east-1::image/ami-0a1b2c3d4e5f60001",
                "not an EC2 ARN",
            ),
            (
                "aws:ec2:us-east-1::image/ami-0a1b2c3d4e5f60001:x",
                "not an EC2 ARN",
            ),
            (
                "arn:aws-cn:ec2:us-east-1::image/ami-0a1b2c3d4e5f60001",
                "partition aws-cn",
            ),
            (
                "arn:aws:ec2:us-east-1:210987654321:image/ami-0a1b2c3d4e5f60001",
                "account 210987654321",
            ),
        ] {
            let err = parse_json(tag_change(arn, &["publish"])).unwrap_err();
            assert!(matches!(err, EventError::Malformed { .. }), "{arn}: {err}");
            assert!(err.to_string().contains(names), "{arn}: {err}");
        }
        // The ARN's region must be the event's.
        let mut elsewhere = tag_change(
            "arn:aws:ec2:eu-west-1::image/ami-0a1b2c3d4e5f60001",
            &["publish"],
        );
        elsewhere["region"] = json!("us-east-1");
        let err = parse_json(elsewhere).unwrap_err().to_string();
        assert!(err.contains("the event came from us-east-1"), "{err}");
    }

    #[test]
    fn an_arns_account_must_be_the_functions_when_it_is_known() {
        let arn = "arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b2c3d4e5f60001";
        let mut event = tag_change(arn, &["publish"]);
        event["account"] = json!("111122223333");
        // Known from the invoked function's ARN: another account is refused,
        // whatever the envelope says.
        let err = parse(&event, &config(), Some("123456789012")).unwrap_err();
        assert!(err.to_string().contains("account 111122223333"), "{err}");
        assert!(parse(&event, &config(), Some("111122223333")).is_ok());
    }

    #[test]
    fn scheduled_event_sweeps_the_functions_region_only() {
        let mut event = json!({"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2015-10-08T16:53:06Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"],"detail":{}});
        assert_eq!(
            parse_json(event.clone()),
            Ok(Trigger::Sweep { region: home() })
        );
        event["region"] = json!("us-west-2");
        let err = parse_json(event).unwrap_err();
        assert!(
            matches!(err, EventError::Malformed { .. }) && err.to_string().contains("us-west-2"),
            "{err}"
        );
    }

    #[test]
    fn a_payload_that_is_not_json_is_an_invalid_event_naming_it() {
        // The last five look like JSON to a syntax check and are not JSON
        // the runtime can read into a `Value` (found by fuzzing the entry).
        for body in [
            &b"not json at all"[..],
            b"{\"image_id\": ",
            b"\xff\xfe",
            b"1e999",
            b"[1e400]",
            br#""\ud800""#,
            b"\"\xff\"",
            b"{\"image_id\": \"ami-\xc3\"}",
        ] {
            let wrapped: Value = serde_json::from_slice(&wrap_if_not_json(body)).unwrap();
            let err = parse_json(wrapped).unwrap_err();
            assert!(
                matches!(err, EventError::Unrecognised { .. })
                    && err.to_string().contains("not JSON"),
                "{err}"
            );
        }
        let json = br#"{"image_id": "ami-12345678"}"#;
        assert_eq!(
            wrap_if_not_json(json),
            json.to_vec(),
            "JSON passes untouched"
        );
    }

    #[test]
    fn direct_payload_with_and_without_region() {
        assert_eq!(
            parse_json(json!({"image_id": "ami-12345678", "region": "eu-central-1"})),
            Ok(image("ami-12345678", "eu-central-1", Cause::Direct))
        );
        assert_eq!(
            parse_json(json!({"image_id": "ami-12345678"})),
            Ok(image("ami-12345678", "us-east-1", Cause::Direct))
        );
    }

    #[test]
    fn direct_payload_may_ask_to_unpublish_or_publish() {
        let Ok(Trigger::Image { intent, .. }) =
            parse_json(json!({"image_id": "ami-12345678", "action": "unpublish"}))
        else {
            panic!()
        };
        assert_eq!(intent, Intent::Unpublish);
        assert_eq!(
            parse_json(json!({"image_id": "ami-12345678", "action": "publish"})),
            Ok(image("ami-12345678", "us-east-1", Cause::Direct))
        );
        let err = parse_json(json!({"image_id": "ami-12345678", "action": "deregister"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("deregister"), "{err}");
    }

    #[test]
    fn direct_payload_may_ask_for_a_dry_run_of_an_ami_or_a_sweep() {
        let request = parse(
            &json!({"image_id": "ami-12345678", "dry_run": true}),
            &config(),
            None,
        );
        assert_eq!(
            request,
            Ok(Request {
                trigger: image("ami-12345678", "us-east-1", Cause::Direct),
                preview: true
            })
        );
        let request = parse(
            &json!({"sweep": true, "region": "us-east-1", "dry_run": true}),
            &config(),
            None,
        );
        assert_eq!(
            request,
            Ok(Request {
                trigger: Trigger::Sweep { region: home() },
                preview: true
            })
        );
        assert!(parse_json(json!({"sweep": true, "image_id": "ami-12345678"})).is_err());
        assert!(matches!(
            parse_json(json!({"region": "us-east-1"})),
            Err(EventError::Unrecognised { .. })
        ));
    }

    #[test]
    fn direct_payload_with_malformed_id_or_region_names_the_field() {
        let err = parse_json(json!({"image_id": "ami-XYZ"})).unwrap_err();
        assert!(err.to_string().contains("image_id") && err.to_string().contains("ami-XYZ"));
        let err = parse_json(json!({"image_id": "ami-12345678", "region": "Mars"})).unwrap_err();
        assert!(err.to_string().contains("region") && err.to_string().contains("Mars"));
    }

    #[test]
    fn unknown_eventbridge_event_names_source_and_detail_type() {
        let event = json!({"version":"0","id":"x","detail-type":"Object Created","source":"aws.s3","region":"us-east-1","resources":[],"detail":{}});
        let text = parse_json(event).unwrap_err().to_string();
        assert!(
            text.contains("aws.s3") && text.contains("Object Created"),
            "{text}"
        );
    }

    #[test]
    fn payloads_of_no_known_shape_are_unrecognised() {
        for payload in [
            json!({"hello": "world"}),
            json!([1, 2]),
            json!("ami-12345678"),
            json!(null),
        ] {
            let err = parse_json(payload.clone()).unwrap_err();
            assert!(
                matches!(err, EventError::Unrecognised { .. }),
                "{payload}: {err}"
            );
        }
    }

    /// The samples in `events/`, as the deployed rules deliver them.
    fn fixture(text: &str) -> Result<Trigger, EventError> {
        parse_json(sample(text))
    }

    #[test]
    fn events_fixtures_parse_to_their_triggers() {
        assert_eq!(
            fixture(include_str!("../events/ami-available.json")),
            Ok(image(
                "ami-0a1b2c3d4e5f60001",
                "us-east-1",
                Cause::Available
            ))
        );
        assert!(matches!(
            fixture(include_str!("../events/ami-failed.json")),
            Ok(Trigger::Ignored { .. })
        ));
        for (text, id) in [
            (
                include_str!("../events/tag-added.json"),
                "ami-0a1b2c3d4e5f60002",
            ),
            (
                include_str!("../events/tag-added-product-code.json"),
                "ami-0a1b2c3d4e5f60003",
            ),
            (
                include_str!("../events/tag-removed.json"),
                "ami-0a1b2c3d4e5f60004",
            ),
        ] {
            assert_eq!(fixture(text), Ok(image(id, "us-east-1", Cause::TagChanged)));
        }
        assert!(matches!(
            fixture(include_str!("../events/tag-status-changed.json")),
            Ok(Trigger::Ignored { .. })
        ));
        assert!(matches!(
            fixture(include_str!("../events/tag-change-instance.json")),
            Err(EventError::Unsupported { .. })
        ));
        assert_eq!(
            fixture(include_str!("../events/scheduled-sweep.json")),
            Ok(Trigger::Sweep {
                region: RegionName::parse("us-east-1").unwrap()
            })
        );
        assert_eq!(
            fixture(include_str!("../events/direct.json")),
            Ok(image("ami-0a1b2c3d4e5f60001", "us-east-1", Cause::Direct))
        );
        assert_eq!(
            fixture(include_str!("../events/unpublish.json")),
            Ok(Trigger::Image {
                image_id: ImageId::parse("ami-0a1b2c3d4e5f60001").unwrap(),
                region: home(),
                cause: Cause::Direct,
                intent: Intent::Unpublish,
            })
        );
        assert!(matches!(
            fixture(include_str!("../events/malformed.json")),
            Err(EventError::Unrecognised { .. })
        ));
        // What the function itself sends to the default bus: not for it.
        assert!(matches!(
            fixture(include_str!("../events/outcome-published.json")),
            Err(EventError::Unsupported { .. })
        ));
    }

    #[test]
    fn eventbridge_event_missing_its_detail_is_malformed() {
        let event = json!({"detail-type":"EC2 AMI State Change","source":"aws.ec2","region":"us-east-1","detail":{"State":"available"}});
        let text = parse_json(event).unwrap_err().to_string();
        assert!(text.contains("ImageId"), "{text}");
    }
}
