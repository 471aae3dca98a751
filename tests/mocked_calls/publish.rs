//! Publishing one AMI: eligibility refused without a write, the order of
//! the writes, the quota, protection, fresh facts, refusals.

use super::*;

#[tokio::test]
async fn eligible_ami_is_made_public_with_one_modify_call_and_tagged_public() {
    let describe = describe_owned(Some(eligible().build()));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = make_public_ok();
    let tag = create_tags_expecting(&[
        ("publish:status", "public"),
        ("publish:reason", "public in us-east-1"),
    ]);
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &tag]))],
    );

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Published);
    assert_eq!(outcome.images[0].status, Some(Status::Public));
    assert_eq!(
        (
            describe.num_calls(),
            bpa.num_calls(),
            modify.num_calls(),
            tag.num_calls()
        ),
        (1, 1, 1, 1)
    );
}

/// Runs the function on an AMI that must not become public and checks it
/// made no ModifyImageAttribute call and tagged it rejected with `reason`.
async fn assert_rejected(image: Image, bpa_rule: Rule, reason: &str) {
    let owned = image.owner_id() == Some("123456789012");
    let describe_self = describe_owned(owned.then(|| image.clone()));
    let describe_shared = describe_any(Some(image));
    let modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let tag = create_tags_ok();
    let p = publisher(
        config(&[]),
        vec![(
            HOME,
            client(&[&describe_self, &describe_shared, &bpa_rule, &modify, &tag]),
        )],
    );

    let outcome = run(&p, direct()).await.unwrap();

    let image = &outcome.images[0];
    assert_eq!(image.action, Action::Rejected, "{outcome:?}");
    assert!(
        image.reasons.iter().any(|r| r.contains(reason)),
        "{:?} lacks {reason}",
        image.reasons
    );
    assert_eq!(
        modify.num_calls(),
        0,
        "an ineligible AMI is never passed to ModifyImageAttribute"
    );
    // The role may write status tags only on the account's own AMIs.
    let (status, tag_calls) = if owned {
        (Some(Status::Rejected), 1)
    } else {
        (None, 0)
    };
    assert_eq!((image.status, tag.num_calls()), (status, tag_calls));
}

#[tokio::test]
async fn encrypted_ami_gets_no_modify_call() {
    let image = eligible()
        .set_block_device_mappings(Some(vec![
            BlockDeviceMapping::builder()
                .device_name("/dev/sdb")
                .ebs(EbsBlockDevice::builder().encrypted(true).build())
                .build(),
        ]))
        .build();
    assert_rejected(
        image,
        bpa("unblocked", ManagedBy::Account),
        "encrypted EBS volume: /dev/sdb",
    )
    .await;
}

#[tokio::test]
async fn ebs_volume_of_unknown_encryption_gets_no_modify_call() {
    // Fail closed: no Encrypted flag is not "unencrypted".
    let image = eligible()
        .set_block_device_mappings(Some(vec![
            BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(
                    EbsBlockDevice::builder()
                        .snapshot_id("snap-0123456789abcdef0")
                        .build(),
                )
                .build(),
        ]))
        .build();
    assert_rejected(
        image,
        bpa("unblocked", ManagedBy::Account),
        "EC2 does not say whether EBS volume /dev/xvda is encrypted",
    )
    .await;
}

#[tokio::test]
async fn ami_with_product_code_gets_no_modify_call() {
    let image = eligible()
        .product_codes(
            ProductCode::builder()
                .product_code_id("8fbbk9yqlz2s")
                .build(),
        )
        .build();
    assert_rejected(
        image,
        bpa("unblocked", ManagedBy::Account),
        "product code: 8fbbk9yqlz2s",
    )
    .await;
}

#[tokio::test]
async fn ami_of_another_account_gets_no_modify_call() {
    let image = eligible().owner_id("210987654321").build();
    assert_rejected(
        image,
        bpa("unblocked", ManagedBy::Account),
        "owned by account 210987654321",
    )
    .await;
}

#[tokio::test]
async fn bpa_blocked_by_the_account_gets_no_modify_call() {
    let rule = bpa("block-new-sharing", ManagedBy::Account);
    assert_rejected(eligible().build(), rule, "managed by the account").await;
}

#[tokio::test]
async fn bpa_blocked_by_a_declarative_policy_gets_no_modify_call() {
    let rule = bpa("block-new-sharing", ManagedBy::DeclarativePolicy);
    assert_rejected(eligible().build(), rule, "declarative policy").await;
}

#[tokio::test]
async fn already_public_ami_with_its_status_gets_no_call_beyond_describe() {
    let image = eligible()
        .public(true)
        .set_tags(Some(tags(&[
            ("publish", "public"),
            ("publish:status", "public"),
            ("publish:reason", "public in us-east-1"),
        ])))
        .build();

    let (outcome, calls) = run_owned(image, "block-new-sharing").await;

    assert_eq!(outcome.images[0].action, Action::AlreadyPublic);
    assert_eq!(
        calls,
        (0, 0, 0),
        "no BPA, ModifyImageAttribute or CreateTags call"
    );
}

#[tokio::test]
async fn deprecation_is_set_before_the_ami_is_made_public() {
    let describe = describe_owned(Some(eligible().build()));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let deprecate = mock!(Client::enable_image_deprecation)
        .match_requests(|r| {
            r.image_id() == Some(SOURCE_ID)
                && r.deprecate_at().map(|d| d.secs())
                    == Some(datetime!(2027-01-30 00:00 UTC).unix_timestamp())
        })
        .then_output(|| {
            EnableImageDeprecationOutput::builder()
                .r#return(true)
                .build()
        });
    let modify = make_public_ok();
    let tag = create_tags_ok();
    // Sequential: a ModifyImageAttribute before EnableImageDeprecation fails
    // the test; the quota is counted right before the AMI is made public.
    let (public, bin) = (count_public(0), recycle_bin(0));
    let c = mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&describe, &bpa, &deprecate, &public, &bin, &modify, &tag]
    );
    let p = publisher(config(&[("DEPRECATE_AFTER_DAYS", "90")]), vec![(HOME, c)]);

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(
        outcome.images[0].deprecation_time.as_deref(),
        Some("2027-01-30T00:00:00Z")
    );
    assert_eq!((deprecate.num_calls(), modify.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_quota_refusal_from_ec2_is_an_outcome_saying_how_to_raise_the_quota() {
    // The count said there was room (public AMIs in the Recycle Bin, which
    // EC2 does not say were public, may fill it): EC2's answer decides.
    let describe = describe_owned(Some(eligible().build()));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = mock!(Client::modify_image_attribute).then_error(|| {
        ModifyImageAttributeError::generic(
            ErrorMetadata::builder()
                .code("ResourceLimitExceeded")
                .message("You have reached your quota of 5 for the number of public images")
                .build(),
        )
    });
    let tag = create_tags_expecting(&[("publish:status", "rejected")]);
    let (public, bin) = (count_public(3), recycle_bin(2));
    let p = publisher(
        config(&[]),
        vec![(
            HOME,
            client(&[&describe, &bpa, &public, &bin, &modify, &tag]),
        )],
    );

    let outcome = run(&p, direct())
        .await
        .expect("a quota is not retried: the invocation succeeds");

    let image = &outcome.images[0];
    assert_eq!(
        (image.action, image.status),
        (Action::Rejected, Some(Status::Rejected))
    );
    let reason = image.reasons.join(" ");
    assert!(
        reason.contains("quota")
            && reason.contains("Service Quotas")
            && reason.contains("L-0E3CBAB9"),
        "{reason}"
    );
    assert_eq!((modify.num_calls(), tag.num_calls()), (1, 1));
    assert_eq!(outcome.quotas[0].in_recycle_bin, 2);
}

#[tokio::test]
async fn no_headroom_in_the_public_ami_quota_means_no_modify_call() {
    let describe = describe_owned(Some(eligible().build()));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = make_public_ok();
    let tag = create_tags_expecting(&[("publish:status", "rejected")]);
    let public = count_public(5);
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&describe, &bpa, &public, &modify, &tag]))],
    );

    let outcome = run(&p, direct()).await.unwrap();

    let image = &outcome.images[0];
    assert_eq!(
        (image.action, image.status),
        (Action::Rejected, Some(Status::Rejected))
    );
    let reason = image.reasons.join(" ");
    assert!(
        reason.contains("the public AMI quota in us-east-1 is reached: 5 public of 5")
            && reason.contains("assumed: AWS's default"),
        "{reason}"
    );
    assert_eq!(modify.num_calls(), 0, "no call that AWS would refuse");
    let quota = &outcome.quotas[0];
    assert_eq!((quota.quota, quota.public, quota.headroom), (5, 5, 0));
}

#[tokio::test]
async fn event_for_an_unconfigured_region_is_an_error_before_any_call() {
    let describe = describe_owned(Some(eligible().build()));
    let p = publisher(config(&[]), vec![(HOME, client(&[&describe]))]);

    let err = run(&p, json!({"image_id": SOURCE_ID, "region": "sa-east-1"}))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UnknownRegion { .. }), "{err}");
    assert_eq!(describe.num_calls(), 0);
}

#[tokio::test]
async fn untagged_ami_becoming_available_is_skipped_without_any_write() {
    let image = eligible()
        .set_tags(Some(tags(&[("Name", "other")])))
        .build();

    let (outcome, calls) = run_owned(image, "unblocked").await;

    assert_eq!(outcome.images[0].action, Action::Skipped);
    assert_eq!(
        calls,
        (0, 0, 0),
        "no BPA, ModifyImageAttribute or CreateTags call"
    );
}

#[tokio::test]
async fn a_sweep_reads_an_ami_again_before_making_it_public_on_an_old_listing() {
    // Listed tagged; untagged by its owner since; the listing is too old.
    let listed = eligible().build();
    let now = eligible().set_tags(Some(tags(&[("Name", "demo")]))).build();
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .then_output(move || {
            DescribeImagesOutput::builder()
                .images(listed.clone())
                .build()
        });
    let reread = describe_owned(Some(now));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let tag = create_tags_ok();
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&list, &reread, &bpa, &modify, &tag]))],
    )
    .with_fresh_facts(Duration::ZERO);

    let outcome = run(&p, sweep_event(HOME)).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Skipped, "{outcome:?}");
    assert_eq!(
        (list.num_calls(), reread.num_calls(), modify.num_calls()),
        (1, 1, 0),
        "read again, and not made public"
    );
}

#[tokio::test]
async fn a_published_ami_is_protected_from_deregistration_and_the_marker_written() {
    let describe = describe_owned(Some(eligible().build()));
    let (bpa, modify) = (bpa("unblocked", ManagedBy::Account), make_public_ok());
    let protect = mock!(Client::enable_image_deregistration_protection)
        .match_requests(|r| r.image_id() == Some(SOURCE_ID) && r.with_cooldown() == Some(false))
        .then_output(|| {
            aws_sdk_ec2::operation::enable_image_deregistration_protection::EnableImageDeregistrationProtectionOutput::builder().build()
        });
    let tag = create_tags_expecting(&[("publish:status", "public"), ("publish:protected", "true")]);
    let p = publisher(
        config(&[("PROTECT_PUBLIC", "true")]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &protect, &tag]))],
    );

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Published);
    assert_eq!(
        (modify.num_calls(), protect.num_calls(), tag.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_step_refused_after_the_publish_leaves_the_ami_in_error_not_rejected() {
    // Public now, its protection refused for good: `rejected` would make it
    // look like an AMI the function never published, never to be taken
    // down when its tag is removed.
    let describe = describe_owned(Some(eligible().build()));
    let (bpa, modify) = (bpa("unblocked", ManagedBy::Account), make_public_ok());
    let protect = mock!(Client::enable_image_deregistration_protection).then_error(|| {
        aws_sdk_ec2::operation::enable_image_deregistration_protection::EnableImageDeregistrationProtectionError::generic(unauthorized())
    });
    let tag = create_tags_expecting(&[("publish:status", "error")]);
    let p = publisher(
        config(&[("PROTECT_PUBLIC", "true")]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &protect, &tag]))],
    );

    let outcome = run(&p, direct()).await.expect("a refusal is an outcome");

    assert_eq!(outcome.images[0].status, Some(Status::Error), "{outcome:?}");
    assert_eq!(
        (modify.num_calls(), protect.num_calls(), tag.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn make_public_sends_nothing_once_its_turn_comes_after_the_facts_expire() {
    let modify = make_public_ok();
    let sdk = client(&[&modify]);
    let ec2 = ami_publisher::ec2::Client::new(sdk, ami_publisher::pace::Pace::new(true));
    let expired = std::time::Instant::now() - Duration::from_secs(1);

    let refused = ami_publisher::ec2::make_public(
        &ec2,
        &region(HOME),
        &ami_publisher::model::ImageId::parse(SOURCE_ID).unwrap(),
        expired,
    )
    .await
    .unwrap_err();

    assert_eq!(refused.code, ami_publisher::ec2::FACTS_TOO_OLD);
    assert_eq!(modify.num_calls(), 0);
}

#[tokio::test]
async fn service_quotas_unavailable_for_now_is_an_error_to_retry_not_a_quota_of_5() {
    // Assuming AWS's default of 5 would reject an AMI a raised quota has
    // room for: a failure a retry may fix is retried instead.
    let unavailable = mock!(aws_sdk_servicequotas::Client::get_service_quota).then_error(|| {
        aws_sdk_servicequotas::operation::get_service_quota::GetServiceQuotaError::generic(
            ErrorMetadata::builder()
                .code("ServiceUnavailable")
                .message("injected")
                .build(),
        )
    });
    let quotas = mock_client!(
        aws_sdk_servicequotas,
        RuleMode::MatchAny,
        &[&unavailable],
        |c| c.retry_config(aws_sdk_servicequotas::config::retry::RetryConfig::disabled())
    );
    let describe = describe_owned(Some(eligible().build()));
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_ok(),
    );
    let clients =
        Clients::from_clients([(region(HOME), client(&[&describe, &bpa, &modify, &tag]))])
            .with_quota_clients([(region(HOME), quotas)]);
    let p = Publisher::new(config(&[]), clients).with_clock(now);

    let result = run(&p, direct()).await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(modify.num_calls(), 0);
    assert!(unavailable.num_calls() >= 1);
}

#[tokio::test]
async fn a_read_refused_for_good_is_rejected_with_what_to_do_and_not_retried() {
    let describe = describe_owned(Some(eligible().build()));
    let bpa = mock!(Client::get_image_block_public_access_state).then_error(|| {
        aws_sdk_ec2::operation::get_image_block_public_access_state::GetImageBlockPublicAccessStateError::generic(unauthorized())
    });
    let tag = create_tags_expecting(&[("publish:status", "rejected")]);
    let modify = make_public_ok();
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &tag]))],
    );

    let outcome = run(&p, direct()).await.expect("an outcome, not a retry");

    assert_eq!(outcome.images[0].status, Some(Status::Rejected));
    assert_eq!((modify.num_calls(), tag.num_calls()), (0, 1));
}
